"""Make ``dynmix-...`` strings work wherever timm takes an ``auto_augment`` string.

timm has no registry for augmentations: ``timm.data.transforms_factory.transforms_imagenet_train`` dispatches
``auto_augment`` strings itself (``rand...`` -> RandAugment, ``augmix...`` -> AugMix, anything else ->
``auto_augment_transform``), calling those functions through names bound in ``transforms_factory``.
:func:`register_timm` wraps the last of them, ``transforms_factory.auto_augment_transform``, so that strings
starting with ``dynmix`` build a :class:`timm_dynmix.DynamicMixup` and every other string falls through to
timm unchanged. After it, ``timm.data.create_transform(..., auto_augment="dynmix-m3-d2")`` and
``timm.data.create_loader(..., auto_augment="dynmix-...", num_aug_splits=3)`` (with timm's ``AugMixDataset``)
produce DynMix views; timm's ``hparams`` (translate constant, fill mean, interpolation) are not used: DynMix
magnitudes are relative to the image size and fills are black.

Nothing happens at import time: call :func:`register_timm` explicitly (it is idempotent), and
:func:`unregister_timm` to restore timm's function.
"""

from __future__ import annotations

import importlib
from typing import Any

from timm_dynmix.data import is_dynmix
from timm_dynmix.transforms import DynamicMixup

__all__ = ["register_timm", "unregister_timm", "is_registered", "TIMM_KNOWN_GOOD", "TIMM_TESTED"]

TIMM_TESTED = ("1.0.16", "1.0.31")  # oldest and newest timm versions known to work
TIMM_KNOWN_GOOD = f"{TIMM_TESTED[0]} to {TIMM_TESTED[1]}"
_HOOK_ATTR = "_timm_dynmix_hook"


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

    Raises:
        RuntimeError: if the installed timm moved the functions the hook wraps (the message names the version).
    """
    tf = _factory_module()
    original = tf.auto_augment_transform
    if getattr(original, _HOOK_ATTR, False):
        return

    def auto_augment_transform(config_str: Any, hparams: dict | None = None) -> Any:
        if is_dynmix(config_str):
            return DynamicMixup(config_str)
        return original(config_str, hparams)

    auto_augment_transform.__doc__ = original.__doc__
    auto_augment_transform.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(auto_augment_transform, _HOOK_ATTR, True)
    tf.auto_augment_transform = auto_augment_transform


def unregister_timm() -> None:
    """Restore timm's own ``auto_augment_transform`` (no-op when not registered)."""
    tf = _factory_module()
    fn = tf.auto_augment_transform
    if getattr(fn, _HOOK_ATTR, False):
        tf.auto_augment_transform = fn.__wrapped__
