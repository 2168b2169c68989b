"""Data: split views (clean + N DynMix views) and their collate, the transform factory, datasets, seeded subsets.

* :mod:`~timm_dynmix.data.views`: :class:`DynMixViews`, :class:`DynMixDataset`, :func:`collate_splits`;
* :mod:`~timm_dynmix.data.transforms_factory`: :func:`create_transform`, :class:`CheckImage`;
* :mod:`~timm_dynmix.data.datasets`: :func:`load_image_data` (Hub, local folders, npz, the embedded digits) and
  the decoded datasets;
* :mod:`~timm_dynmix.data.sampler`: :func:`subset_indices`, :func:`balanced_subset_indices`,
  :class:`EpochShardSampler`;
* :mod:`~timm_dynmix.data.memory`: :class:`MemoryImages`, :func:`crop_flip_batch` (the in-memory path).

``from timm_dynmix.data import create_transform`` (and the other names of the former ``data`` module) keeps working;
the names load their module on first use.
"""

from __future__ import annotations

from timm_dynmix import _lazy

_EXPORTS = {
    "DynMixViews": "timm_dynmix.data.views", "DynMixDataset": "timm_dynmix.data.views",
    "collate_splits": "timm_dynmix.data.views", "CheckImage": "timm_dynmix.data.transforms_factory",
    "create_transform": "timm_dynmix.data.transforms_factory", "is_dynmix": "timm_dynmix.augment.config",
    "SMALL_IMAGE_MAX": "timm_dynmix.augment.config",
}

__all__ = ["DynMixViews", "DynMixDataset", "CheckImage", "collate_splits", "create_transform", "is_dynmix",
           "SMALL_IMAGE_MAX"]


__getattr__, __dir__ = _lazy.attach(__name__, _EXPORTS)
