"""Where models run: the accelerator and the CPU (cores, native bf16), the device-side normalization of uint8
batches, and the evaluation loop over processes.

One implementation for the evaluation (:mod:`timm_dynmix.robustness.evaluate`) and the training loop
(:mod:`timm_dynmix.train.loop`).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["has_accelerator", "cpu_model", "cpu_has_native_bf16", "usable_cpus", "Uint8Normalize",
           "gathered_outputs"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what :mod:`platform` knows; for benchmark headers."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively: the AVX512_BF16 or AMX-BF16 flag in ``/proc/cpuinfo`` (Linux).

    Elsewhere (no such file, other CPUs) it answers False, and CPU training stays in float32.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool({"avx512_bf16", "amx_bf16"} & set(line.split(":", 1)[1].split()))
    return False


def usable_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


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

    mean: torch.Tensor
    std: torch.Tensor

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


def gathered_outputs(model: nn.Module, batches: Iterable[Any], accelerator: Any,
                     forward: Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]) -> Iterator[dict[str, Any]]:
    """The evaluation loop: ``forward(model, batch)`` on this process's batches, gathered across processes.

    Each yielded dict holds every process's per-sample outputs of one step, from
    ``accelerator.gather_for_metrics``, which drops the samples Accelerate repeats to even out the last batches;
    so sums and counts over the yielded values are those of one process over the whole set. Runs without
    gradients; the caller sets ``model.eval()`` and any autocast.

    Args:
        model: The model (prepared or not).
        batches: This process's batches (a prepared DataLoader).
        accelerator: The ``accelerate.Accelerator``.
        forward: Maps ``(model, batch)`` to a dict of tensors whose first dimension is the sample.
    """
    for batch in batches:
        with torch.no_grad():
            out = forward(model, batch)
        yield accelerator.gather_for_metrics(dict(out))
