"""Make ``dynmix-...`` strings work wherever timm takes an ``auto_augment`` string.

timm has no registry for augmentations: ``timm.data.transforms_factory.transforms_imagenet_train`` dispatches
``auto_augment`` strings itself (``rand...`` -> RandAugment, ``augmix...`` -> AugMix, anything else ->
``auto_augment_transform``), calling those functions through names bound in ``transforms_factory``.
:func:`register_timm` wraps the last of them, ``transforms_factory.auto_augment_transform``, so that strings
starting with ``dynmix`` build a :class:`timm_dynmix.DynamicMixup` and every other string falls through to
timm unchanged. After it, ``timm.data.create_transform(..., auto_augment="dynmix-m3-d2")`` and
``timm.data.create_loader(..., auto_augment="dynmix-...", num_aug_splits=3)`` (with timm's ``AugMixDataset``)
produce DynMix views; timm's ``hparams`` (translate constant, fill mean, interpolation) are not used for the ops:
DynMix magnitudes are relative to the image size and fills are black. A string without an ``o`` key gets the op
set for the image size that timm's translate constant implies (``imagenet`` above 64 px, else ``cifar``).

The number of DynMix views per image is timm's: ``AugMixDataset(num_splits)`` (``--aug-splits`` /
``num_aug_splits``) calls the augmentation ``num_splits - 1`` times. So that the config string records what ran,
the hook also wraps ``AugMixDataset``'s transform setter (and constructor): when it receives a DynMix augmentation,
a string without ``n`` gets ``n = num_splits - 1``, and a string whose ``n`` differs raises ``ValueError``.

Nothing happens at import time: call :func:`register_timm` explicitly (it is idempotent), and
:func:`unregister_timm` to restore timm's function.
"""

from __future__ import annotations

import importlib
from typing import Any

from timm_dynmix.augment.config import default_op_set, given_keys, is_dynmix
from timm_dynmix.augment.dynmix import DynamicMixup

__all__ = ["register_timm", "unregister_timm", "is_registered", "TIMM_KNOWN_GOOD", "TIMM_TESTED"]

TIMM_TESTED = ("1.0.16", "1.0.31")  # oldest and newest timm versions known to work
TIMM_KNOWN_GOOD = f"{TIMM_TESTED[0]} to {TIMM_TESTED[1]}"
_HOOK_ATTR = "_timm_dynmix_hook"


def _augmix_dataset() -> Any:
    import timm

    cls = getattr(importlib.import_module("timm.data"), "AugMixDataset", None)
    if cls is None or not callable(getattr(cls, "_set_transforms", None)):
        raise RuntimeError(f"timm {timm.__version__} moved AugMixDataset._set_transforms (where DynMix checks the "
                           f"number of views against num_splits); the timm_dynmix hook knows timm {TIMM_KNOWN_GOOD}. "
                           f"Use timm_dynmix.create_transform instead, or pin timm.")
    return cls


def _match_splits(dataset: Any) -> None:
    """Make the DynMix config of an AugMixDataset's augmentation agree with its ``num_splits``."""
    splits = getattr(dataset, "num_splits", None)
    aug = getattr(dataset, "augmentation", None)
    if splits is None or aug is None:
        return
    steps = getattr(aug, "transforms", None) or [aug]
    views = int(splits) - 1
    for step in steps:
        if not isinstance(step, DynamicMixup):
            continue
        n = step.config.num_mixes
        if "n" in step.given_keys:
            if n != views:
                raise ValueError(f"DynMix config {step.config_str!r} asks for n{n} mixed views per image, but timm's "
                                 f"AugMixDataset(num_splits={splits}) (--aug-splits / num_aug_splits) makes {views}; "
                                 f"use num_splits {n + 1} or n{views}")
        elif views != n:
            if not 1 <= views <= 8:
                raise ValueError(f"AugMixDataset(num_splits={splits}) with DynMix needs 2 to 9 splits (clean + 1 to 8 "
                                 f"mixed views, config key 'n'), got {splits}")
            step.config = step.config.replace(num_mixes=views)


def _with_op_set(config_str: Any, hparams: dict[str, Any] | None) -> Any:
    """Add the op set for the image size to a DynMix string without an ``o`` key.

    timm's ``transforms_imagenet_train`` passes ``hparams["translate_const"] = int(0.45 * min(image size))``; the
    hook reads the size back from it, so that 224 px training gets the ``imagenet`` set (with ``downscale``) and
    32 px training the ``cifar`` set, as :func:`timm_dynmix.create_transform` chooses. Without it (a direct call),
    the string is left as it is (the ``cifar`` default, which warns on large images).
    """
    const = (hparams or {}).get("translate_const")
    if not isinstance(config_str, str) or "o" in given_keys(config_str) or not isinstance(const, (int, float)):
        return config_str
    return f"{config_str}-o{default_op_set(round(const / 0.45))}"


def _factory_module() -> Any:
    import timm

    try:
        tf = importlib.import_module("timm.data.transforms_factory")
    except ImportError as e:  # pragma: no cover - depends on the installed timm
        raise RuntimeError(f"timm {timm.__version__} has no timm.data.transforms_factory; the timm_dynmix hook "
                           f"knows timm {TIMM_KNOWN_GOOD}") from e
    fn = getattr(tf, "auto_augment_transform", None)
    train = getattr(tf, "transforms_imagenet_train", None)
    if not callable(fn) or train is None or "auto_augment_transform" not in train.__code__.co_names:
        raise RuntimeError(
            f"timm {timm.__version__} moved the auto-augment dispatch (expected "
            f"timm.data.transforms_factory.transforms_imagenet_train to call auto_augment_transform); the "
            f"timm_dynmix hook knows timm {TIMM_KNOWN_GOOD}. Use timm_dynmix.create_transform instead, or pin timm.")
    return tf


def is_registered() -> bool:
    """Whether :func:`register_timm` is in effect."""
    return getattr(_factory_module().auto_augment_transform, _HOOK_ATTR, False)


def register_timm() -> None:
    """Route ``dynmix-...`` auto-augment strings in timm's transform factory to DynMix (idempotent).

    Also wraps ``timm.data.AugMixDataset``'s constructor and transform setter, so that the config's ``n`` agrees
    with the dataset's ``num_splits`` (filled in when the string has no ``n``, refused when it differs).

    Raises:
        RuntimeError: if the installed timm moved the functions the hook wraps (the message names the version).
    """
    tf = _factory_module()
    original = tf.auto_augment_transform
    if getattr(original, _HOOK_ATTR, False):
        return
    ds_cls = _augmix_dataset()

    def auto_augment_transform(config_str: Any, hparams: dict[str, Any] | None = None) -> Any:
        if is_dynmix(config_str):
            return DynamicMixup(_with_op_set(config_str, hparams))
        return original(config_str, hparams)

    auto_augment_transform.__doc__ = original.__doc__
    auto_augment_transform.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(auto_augment_transform, _HOOK_ATTR, True)

    orig_init, orig_set = ds_cls.__init__, ds_cls._set_transforms

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        orig_init(self, *args, **kwargs)
        _match_splits(self)

    def _set_transforms(self: Any, x: Any) -> None:
        orig_set(self, x)
        _match_splits(self)  # no-op inside __init__ (num_splits is set after the transforms there)

    for fn, orig in ((__init__, orig_init), (_set_transforms, orig_set)):
        fn.__wrapped__ = orig  # type: ignore[attr-defined]
        fn.__doc__ = orig.__doc__
        setattr(fn, _HOOK_ATTR, True)
    if not getattr(orig_set, _HOOK_ATTR, False):
        ds_cls.__init__, ds_cls._set_transforms = __init__, _set_transforms
    tf.auto_augment_transform = auto_augment_transform


def unregister_timm() -> None:
    """Restore timm's own ``auto_augment_transform`` (no-op when not registered)."""
    tf = _factory_module()
    fn = tf.auto_augment_transform
    if getattr(fn, _HOOK_ATTR, False):
        tf.auto_augment_transform = fn.__wrapped__
    cls = getattr(importlib.import_module("timm.data"), "AugMixDataset", None)
    for name in ("__init__", "_set_transforms"):
        method = getattr(cls, name, None)
        if method is not None and getattr(method, _HOOK_ATTR, False):
            setattr(cls, name, method.__wrapped__)
