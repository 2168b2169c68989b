"""Where models run: whether an accelerator is present, and the device-side normalization of uint8 batches.

One implementation for the evaluation (:mod:`timm_dynmix.robustness.evaluate`) and the training loop.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["has_accelerator", "cpu_model", "Uint8Normalize"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what :mod:`platform` knows; for benchmark headers."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def has_accelerator() -> bool:
    """Whether torch sees a CUDA, XPU or MPS device (Accelerate then runs there unless told ``cpu=True``)."""
    xpu = getattr(torch, "xpu", None)
    mps = getattr(torch.backends, "mps", None)
    return bool(torch.cuda.is_available() or (xpu is not None and xpu.is_available())
                or (mps is not None and mps.is_available()))


class Uint8Normalize(nn.Module):
    """``(x / 255 - mean) / std`` for uint8 (or 0-255 float) batches ``(B, C, H, W)``, computed in float32.

    Args:
        mean: One value per channel, or one for all (in [0, 1] units, as timm's ``pretrained_cfg``).
        std: As ``mean``; every value > 0.

    Raises:
        ValueError: if ``mean`` and ``std`` have different numbers of values, none, or ``std`` has a value <= 0.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        m = torch.as_tensor(mean, dtype=torch.float32).flatten()
        s = torch.as_tensor(std, dtype=torch.float32).flatten()
        if m.numel() == 0 or m.numel() != s.numel():
            raise ValueError(f"mean and std need the same number of values (one per channel), got mean={list(mean)} "
                             f"and std={list(std)}")
        if bool((s <= 0).any()):
            raise ValueError(f"std values must be > 0, got {s.tolist()}")
        self.register_buffer("mean", m.view(1, -1, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", s.view(1, -1, 1, 1) * 255.0, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std
