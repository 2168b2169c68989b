"""Seeded sampling: which rows a run uses (``--max-train-samples``, ``max_per_cell``, class-balanced make-c) and
the per-epoch, rank-sharded training order (:class:`EpochShardSampler`).

A subset or an order depends only on its arguments and the seed, so equal-sized cells, ranks and resumed runs agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from timm_dynmix.rng import derive_seed

__all__ = ["subset_indices", "balanced_subset_indices", "EpochShardSampler"]


def subset_indices(n: int, max_n: int | None, seed: int = 0) -> np.ndarray:
    """Positions ``0..n-1``, or a sorted, seeded random subset of ``max_n`` of them.

    The subset depends only on ``(n, max_n, seed)``: equal-sized cells get the same positions. It is the training
    set of ``--max-train-samples`` (and the eval set of ``--max-eval-samples``) as well as a benchmark cell's
    ``max_per_cell`` rows: ``numpy.random.default_rng(derive_seed(seed, split="subset")).choice(n, max_n,
    replace=False)``, sorted.
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


class EpochShardSampler(torch.utils.data.Sampler[int]):
    """A seeded per-epoch shuffle, split into disjoint per-rank shards, resumable at a batch.

    Epoch ``e``'s order is a permutation from ``derive_seed(seed, e, split="sampler")``; it is cut to a multiple of
    ``batch_size * world_size`` (the remainder is dropped, as with ``drop_last``) and rank ``r`` takes every
    ``world_size``-th index starting at ``r``. ``set_epoch(e, start_batch=k)`` skips the first ``k`` batches of this
    rank's shard, which is how a run resumes mid-epoch.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        if num_samples < batch_size * world_size:
            raise ValueError(f"the training set has {num_samples} samples, fewer than one global batch "
                             f"({batch_size} x {world_size} processes)")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch, self.start_batch = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def indices(self, epoch: int) -> list[int]:
        """This rank's indices of epoch ``epoch`` (all batches)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch, split="sampler"))
            order = torch.randperm(self.num_samples, generator=g)
        else:
            order = torch.arange(self.num_samples)
        usable = self.batches_per_epoch * self.batch_size * self.world_size
        return order[:usable][self.rank::self.world_size].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices(self.epoch)[self.start_batch * self.batch_size:])

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size
