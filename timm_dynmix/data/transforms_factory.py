"""``create_transform``: CIFAR-style or ImageNet-style pipelines with DynMix, timm's augmentations or none.

Mirrors timm's ``create_transform`` arguments. CIFAR-style (pad-crop + flip) up to ``SMALL_IMAGE_MAX`` (64) pixels
(CIFAR, SVHN, digits), where a config string without an op set also runs the cifar set; ImageNet-style (random
resized crop + flip) above it, with the imagenet set. Every pipeline starts with :class:`CheckImage`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.data.transforms import MaybePILToTensor, MaybeToTensor, RandomResizedCropAndInterpolation, str_to_pil_interp
from torchvision import transforms

from timm_dynmix.augment.config import SMALL_IMAGE_MAX, DynMixConfig
from timm_dynmix.augment.dynmix import DynamicMixup
from timm_dynmix.augment.ops import SUPPORTED_MODES
from timm_dynmix.augment.per_image import per_image_augmentation
from timm_dynmix.augment.spec import AugSpec, UnknownAugmentationError, create_aug_spec
from timm_dynmix.augment.timm_aug import timm_augmentation as _timm_augmentation  # noqa: F401  (its 0.1 home)
from timm_dynmix.data.views import DynMixViews

__all__ = ["create_transform", "CheckImage", "SMALL_IMAGE_MAX"]


class CheckImage:
    """The first step of :func:`create_transform`'s pipelines: refuse images that later steps would mangle.

    PIL images must have mode L, RGB or RGBA (16-bit, float, CMYK, palette ... images get a clear ``ValueError``
    instead of a failure deep inside torchvision or silently unscaled values), and as many channels as the
    normalization has values. Tensors pass unchanged.

    Args:
        channels: The number of values of the mean/std, or None when the pipeline does not normalize.
    """

    def __init__(self, channels: int | None = None):
        self.channels = channels

    def __call__(self, img: Any) -> Any:
        if isinstance(img, torch.Tensor):
            return img
        if not isinstance(img, Image.Image):
            raise TypeError(f"create_transform's pipelines take PIL images (or tensors), got {type(img).__name__}")
        if img.mode not in SUPPORTED_MODES:
            raise ValueError(f"create_transform's pipelines take PIL images of mode {', '.join(SUPPORTED_MODES)}, "
                             f"got mode {img.mode!r}; convert first, e.g. img.convert('RGB')")
        bands = len(img.getbands())
        if self.channels is not None and bands != self.channels:
            raise ValueError(f"a mode {img.mode!r} image has {bands} channel(s) but mean and std have "
                             f"{self.channels} values; convert the image (e.g. img.convert('RGB')) or pass a mean "
                             f"and std of {bands} value(s)")
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"


def _img_size(input_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(input_size, int):
        return (input_size, input_size)
    size = tuple(int(s) for s in input_size)
    if len(size) == 3:
        size = size[1:]
    if len(size) != 2:
        raise ValueError(f"input_size must be an int, (H, W) or (C, H, W), got {input_size!r}")
    return size


def create_transform(
        input_size: int | Sequence[int] = 224,
        is_training: bool = False,
        aug: str | AugSpec | DynMixConfig | None = None,
        mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        std: Sequence[float] = IMAGENET_DEFAULT_STD,
        interpolation: str = "bilinear",
        scale: tuple[float, float] | None = None,
        ratio: tuple[float, float] | None = None,
        hflip: float = 0.5,
        crop_padding: int | None = None,
        crop_pct: float | None = None,
        num_mixes: int | None = None,
        normalize: bool = True,
        separate: bool = False,
) -> Any:
    """Build a train or eval transform, CIFAR-style for small images and ImageNet-style for large ones.

    Training: images up to 64 px get a random crop with zero padding (``crop_padding``, default ``size // 8``,
    4 for 32 px) and a horizontal flip, as in the AugMix CIFAR recipe; larger images get timm's random resized
    crop (``scale``, ``ratio``, ``interpolation``) and a flip. Then, by ``aug``:

    * ``None``/``"none"``: ToTensor + Normalize; returns one transform. A string is parsed once into an
      :class:`~timm_dynmix.augment.spec.AugSpec` (:func:`~timm_dynmix.augment.spec.create_aug_spec`); an ``AugSpec``
      is used as it is (none, mixup and cutmix: no per-image augmentation).
    * ``"dynmix..."`` (or a DynMixConfig): returns a :class:`DynMixViews` (image -> ``(clean, mix_1..mix_N)``),
      or with ``separate=True`` timm's 3-stage tuple ``(base, DynamicMixup, final)`` for ``AugMixDataset``.
      A string without an ``o`` key gets the op set for the image size: ``cifar`` up to 64 px, ``imagenet``
      (adds ``downscale``) above; the transform's ``config_str`` names the set that runs.
    * the papers' baselines (:mod:`timm_dynmix.augment.baselines`): ``augmix`` / ``augmix_official-...`` (the official
      AugMix, float [0, 1] tensor output, not rounded), ``autoaugment`` (AA*: the CIFAR-10 policy for small images,
      the ImageNet policy for large ones; or ``autoaugment-cifar10``/``-imagenet``), ``random-autoaugment``
      (Random AA*); and any timm string (``augmix-timm`` = timm's ``augmix-m3-w3``, ``augmix-...``, ``rand-...``,
      ``original``, ``v0``, ...): timm's own transform. Applied after the crop; one transform, or the 3-stage tuple
      with ``separate=True`` (for AugMix + JSD splits).

    Eval: 64 px and smaller are resized (a no-op at the native size) and centre cropped; larger images use
    timm's eval transform (resize by ``crop_pct``, centre crop). ``normalize=False`` returns uint8 tensors
    (for augmentation on the device).

    Every pipeline starts with :class:`CheckImage`: PIL images must be L, RGB or RGBA, with as many channels as
    ``mean`` has values when normalizing (``ValueError`` otherwise, before any transform runs).

    Args mirror ``timm.data.create_transform`` where they exist; ``aug`` replaces its ``auto_augment``.
    """
    size = _img_size(input_size)
    small = max(size) <= SMALL_IMAGE_MAX
    if normalize:
        norm = transforms.Normalize(mean=torch.tensor(mean), std=torch.tensor(std))
        final = transforms.Compose([MaybeToTensor(), norm])
    else:
        norm = None
        final = MaybePILToTensor()
    if isinstance(aug, str) and aug.lower() == "none":
        aug = None
    check = CheckImage(len(mean) if normalize else None)

    if not is_training:
        if aug is not None or separate:
            raise ValueError(f"eval transforms take no augmentation; got aug={aug!r}, separate={separate}")
        if small:
            return transforms.Compose([check, transforms.Resize(size, interpolation=str_to_pil_interp(interpolation)),
                                       transforms.CenterCrop(size), final])
        from timm.data.transforms_factory import transforms_imagenet_eval
        ev = transforms_imagenet_eval(size, interpolation=interpolation, mean=tuple(mean), std=tuple(std),
                                      crop_pct=crop_pct, normalize=normalize, use_prefetcher=not normalize)
        return transforms.Compose([check, *ev.transforms])

    base: list[Callable[..., Any]] = [check]
    if small:
        pad = size[0] // 8 if crop_padding is None else crop_padding
        base.append(transforms.RandomCrop(size, padding=pad or None))
    else:
        base.append(RandomResizedCropAndInterpolation(size, scale=tuple(scale or (0.08, 1.0)),
                                                      ratio=tuple(ratio or (3 / 4, 4 / 3)),
                                                      interpolation=interpolation))
    if hflip > 0:
        base.append(transforms.RandomHorizontalFlip(p=hflip))
    base_t = transforms.Compose(base)

    if isinstance(aug, str):
        try:
            aug = create_aug_spec(aug, image_size=size)
        except UnknownAugmentationError:
            raise ValueError(f"unknown augmentation {aug!r}: expected 'none', 'dynmix[-...]', 'augmix' "
                             f"('augmix_official-...'), 'augmix-timm', 'autoaugment[-cifar10|-imagenet]', "
                             f"'random-autoaugment', 'prime...' (batched only) or a timm auto-augment string "
                             f"('rand-m9-mstd0.5', 'augmix-m3-w3', 'original', 'v0', ...)") from None
    if isinstance(aug, AugSpec) and aug.transform_string is None:  # none, mixup, cutmix: no per-image augmentation
        aug = None
    if aug is None:
        if separate:
            raise ValueError("separate=True needs an augmentation (aug='dynmix...' or a timm augmentation string)")
        return transforms.Compose(base + [final])
    if isinstance(aug, AugSpec) and aug.family == "dynmix":
        aug = aug.with_image_size(size).params
    if isinstance(aug, DynMixConfig):
        cfg = aug if num_mixes is None else aug.replace(num_mixes=num_mixes)
        if separate:
            return base_t, DynamicMixup(cfg), final
        return DynMixViews(base_t, cfg, final, normalize=norm, uint8=not normalize)
    if not isinstance(aug, AugSpec):
        raise TypeError(f"aug must be a string, an AugSpec, a DynMixConfig or None, got {type(aug).__name__}")
    secondary = per_image_augmentation(aug, size, mean, interpolation, output="tensor" if normalize else "pil")
    if separate:
        return base_t, secondary, final
    return transforms.Compose(base + [secondary, final])
