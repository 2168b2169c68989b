"""The per-image transform of an :class:`~timm_dynmix.augment.spec.AugSpec` (what runs after the crop, per image, in
DataLoader workers): the papers' baselines or timm's own augmentations. Used by
:func:`timm_dynmix.data.transforms_factory.create_transform` and by the preview; it takes the parsed spec and never
parses a string again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from timm_dynmix.augment.config import SMALL_IMAGE_MAX
from timm_dynmix.augment.spec import AugSpec

__all__ = ["per_image_augmentation"]


def per_image_augmentation(spec: AugSpec, size: tuple[int, int], mean: Sequence[float], interpolation: str,
                           output: str = "tensor") -> Callable[..., Any]:
    """The per-image transform of ``spec`` after the crop: the papers' baselines (official AugMix, float views unless
    ``output="pil"``; AA*, Random AA*) or timm's own augmentation (its AugMix, policies, RandAugment).

    Raises:
        ValueError: for a family without a per-image transform (none, mixup, cutmix, DynMix: see
            :func:`create_transform`; PRIME: batched only).
    """
    from timm_dynmix.augment.baselines import AugMix, create_baseline
    from timm_dynmix.augment.timm_aug import timm_augmentation

    if spec.timm_string is not None:
        return timm_augmentation(spec.timm_string, size, mean, interpolation, validated=True)
    if spec.family == "augmix":
        return AugMix(spec.params, output=output)
    if spec.family in ("autoaugment", "random-autoaugment"):  # AA*, Random AA*
        transform = create_baseline(spec.params, max(size) <= SMALL_IMAGE_MAX, output=output)
        if transform is None:  # the spec parser only gives these families parameters that name a baseline
            raise ValueError(f"--aug {spec.canonical} ({spec.family}): parameters {spec.params!r} name no baseline")
        return transform
    raise ValueError(f"--aug {spec.canonical} ({spec.family}) has no per-image transform"
                     + (": PRIME runs batched in the training step only" if spec.family == "prime" else ""))
