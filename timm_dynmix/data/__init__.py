"""Data: split views (clean + N DynMix views) and their collate, the transform factory, image datasets.

* :mod:`~timm_dynmix.data.views`: :class:`DynMixViews`, :class:`DynMixDataset`, :func:`collate_splits`;
* :mod:`~timm_dynmix.data.transforms_factory`: :func:`create_transform`, :class:`CheckImage`;
* :mod:`~timm_dynmix.data.datasets`: :func:`load_image_data` (Hub, local folders, npz, the embedded digits) and
  the decoded datasets.

``from timm_dynmix.data import create_transform`` (and the other names of the former ``data`` module) keeps working.
"""

from __future__ import annotations

from timm_dynmix.augment.config import SMALL_IMAGE_MAX, is_dynmix
from timm_dynmix.data.transforms_factory import CheckImage, create_transform
from timm_dynmix.data.views import DynMixDataset, DynMixViews, collate_splits

__all__ = ["DynMixViews", "DynMixDataset", "CheckImage", "collate_splits", "create_transform", "is_dynmix",
           "SMALL_IMAGE_MAX"]
