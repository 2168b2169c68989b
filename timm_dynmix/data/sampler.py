"""Seeded subsets: which rows of a dataset or benchmark cell a run uses (``max_per_cell``, class-balanced make-c).

A subset depends only on its arguments and the seed, so equal-sized cells, workers and resumed runs agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from timm_dynmix.rng import derive_seed

__all__ = ["subset_indices", "balanced_subset_indices"]


def subset_indices(n: int, max_n: int | None, seed: int = 0) -> np.ndarray:
    """Positions ``0..n-1``, or a sorted, seeded random subset of ``max_n`` of them.

    The subset depends only on ``(n, max_n, seed)``: equal-sized cells get the same positions.
    """
    if max_n is None or max_n >= n:
        return np.arange(n)
    if isinstance(max_n, bool) or not isinstance(max_n, (int, np.integer)) or max_n < 1:
        raise ValueError(f"max_per_cell must be a positive integer, got {max_n!r}")
    rng = np.random.default_rng(derive_seed(seed, split="subset"))
    return np.sort(rng.choice(n, size=int(max_n), replace=False))


def balanced_subset_indices(labels: Sequence[int] | np.ndarray, max_n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted positions of a class-balanced, seeded random subset of ``max_n`` of ``labels``' rows.

    Every class present gets ``max_n // K`` rows (K classes; the remainder goes one each to the classes that come
    first in a seeded order), drawn without replacement from that class's rows. The subset depends only on
    ``(labels, max_n, seed)``. ``max_n`` of None or at least ``len(labels)`` selects every row.

    Raises:
        ValueError: if ``max_n`` is not a positive integer, or a class has fewer rows than its share.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if max_n is None or max_n >= n:
        return np.arange(n)
    if isinstance(max_n, bool) or not isinstance(max_n, (int, np.integer)) or max_n < 1:
        raise ValueError(f"max_per_cell must be a positive integer, got {max_n!r}")
    classes = np.unique(labels)
    rng = np.random.default_rng(derive_seed(seed, split="balanced-subset"))
    share = np.full(len(classes), int(max_n) // len(classes))
    share[rng.permutation(len(classes))[: int(max_n) % len(classes)]] += 1
    rows = []
    for c, k in zip(classes, share):
        members = np.flatnonzero(labels == c)
        if k > len(members):
            raise ValueError(f"a class-balanced subset of {max_n} needs {k} images of class {c}, "
                             f"but the set has only {len(members)}")
        rows.append(rng.choice(members, size=int(k), replace=False))
    return np.sort(np.concatenate(rows))
