"""Explicit, reproducible randomness.

Every random draw of an augmentation comes from a generator derived from ``(seed, epoch, sample index, view)``
(plus the split name), with :class:`numpy.random.SeedSequence`. A resumed run therefore sees exactly the
augmentations of an uninterrupted one, and DataLoader workers and distributed ranks never repeat each other's
draws, whatever the number of workers.

Transforms that use the global RNGs (torchvision's random crop/flip use torch's, timm's ``random``'s and
numpy's) are made reproducible in the same way with :func:`seeded`, which runs them on forked global states.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["derive_seed", "sample_rng", "seeded", "seed_from_torch"]

_MASK64 = (1 << 64) - 1


def _check_key(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def derive_seed(seed: int, epoch: int = 0, index: int = 0, view: int = 0, split: str = "train") -> int:
    """A 63-bit seed derived from ``(seed, epoch, index, view, split)``.

    Different keys give statistically independent seeds (``SeedSequence`` hashing); equal keys give equal seeds
    in any process, worker or machine.
    """
    seed = _check_key("seed", seed) & _MASK64
    keys = (_check_key("epoch", epoch), _check_key("index", index), _check_key("view", view),
            zlib.crc32(split.encode("utf-8")))
    state = np.random.SeedSequence(entropy=seed, spawn_key=keys).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def sample_rng(seed: int, epoch: int = 0, index: int = 0, view: int = 0, split: str = "train") -> np.random.Generator:
    """A ``numpy.random.Generator`` seeded with :func:`derive_seed` of the same keys."""
    return np.random.default_rng(derive_seed(seed, epoch, index, view, split))


def seed_from_torch() -> int:
    """A 63-bit seed drawn from torch's global CPU generator.

    Used when a transform is called without an explicit generator: DataLoader seeds torch differently in every
    worker (and ``torch.manual_seed`` / ``accelerate.utils.set_seed`` control it), so workers do not repeat each
    other, unlike a numpy generator copied into every forked worker.
    """
    return int(torch.randint(0, 2**63 - 1, (1,), dtype=torch.int64).item())


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's CPU, Python's and numpy's global RNGs seeded from ``seed``, then restore them.

    Makes transforms that draw from the global RNGs (torchvision, timm) reproducible per sample without
    disturbing the caller's random state. Only torch's CPU generator is touched (``torch.manual_seed`` would also
    reseed every accelerator's generator, lazily and without restoring it, at a cost of about 0.5 ms per call).
    """
    seed = _check_key("seed", seed)
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.default_generator.get_state()
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    try:
        yield
    finally:
        torch.default_generator.set_state(torch_state)
        random.setstate(py_state)
        np.random.set_state(np_state)
