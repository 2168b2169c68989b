"""Seeded subsets: sorted, reproducible, class-balanced on request; the readers' names are the same functions."""

from __future__ import annotations

import numpy as np
import pytest

from timm_dynmix.data.sampler import balanced_subset_indices, subset_indices


def test_subset_indices():
    a = subset_indices(100, 10, seed=3)
    assert len(a) == 10 and np.all(np.diff(a) > 0) and np.array_equal(a, subset_indices(100, 10, seed=3))
    assert not np.array_equal(a, subset_indices(100, 10, seed=4))
    assert np.array_equal(subset_indices(5, 10), np.arange(5)) and np.array_equal(subset_indices(5, None),
                                                                                   np.arange(5))
    with pytest.raises(ValueError, match=r"max_per_cell must be a positive integer"):
        subset_indices(10, 0)


def test_balanced_subset_indices():
    labels = np.repeat(np.arange(10), [30, 40, 50, 60, 70, 80, 90, 100, 110, 120])
    a = balanced_subset_indices(labels, 200, seed=1)
    assert len(a) == 200 and np.all(np.diff(a) > 0)
    assert np.bincount(labels[a], minlength=10).tolist() == [20] * 10   # equal shares however unequal the classes
    assert np.array_equal(a, balanced_subset_indices(labels, 200, seed=1))
    assert not np.array_equal(a, balanced_subset_indices(labels, 200, seed=2))
    counts = np.bincount(labels[balanced_subset_indices(labels, 205, seed=0)], minlength=10)
    assert counts.sum() == 205 and set(counts.tolist()) == {20, 21}        # remainder spread one per class
    assert np.array_equal(balanced_subset_indices(labels, None), np.arange(len(labels)))
    with pytest.raises(ValueError, match="needs 40 images of class 0, but the set has only 30"):
        balanced_subset_indices(labels, 400)
    with pytest.raises(ValueError, match="positive integer"):
        balanced_subset_indices(labels, 0)


def test_readers_keep_the_old_names():
    from timm_dynmix.robustness import readers

    assert readers.subset_indices is subset_indices and readers.balanced_subset_indices is balanced_subset_indices


def test_subset_indices_is_the_one_selection():
    # one subset sampler: --max-train-samples and max_per_cell pick the same rows, those benchmark cells have used
    # since 0.1.0 (a sorted draw without replacement, seeded by derive_seed(seed, split="subset")), so published
    # corruption subsets do not change; the trainer's --max-train-samples rows differ from 0.1.0's
    from timm_dynmix.rng import derive_seed

    want = np.sort(np.random.default_rng(derive_seed(7, split="subset")).choice(1437, size=64, replace=False))
    assert np.array_equal(subset_indices(1437, 64, seed=7), want)
    from timm_dynmix.train.data import _subset

    class Rows:
        def __len__(self):
            return 1437

        def select(self, idx):
            return idx

    assert _subset(Rows(), 64, 7) == want.tolist()


def test_epoch_shard_sampler_lives_here():
    from timm_dynmix.data.sampler import EpochShardSampler
    from timm_dynmix.train import EpochShardSampler as old_name

    assert old_name is EpochShardSampler and len(EpochShardSampler(10, 3, seed=0)) == 9
