"""The training augmentation as one typed value: :class:`AugSpec`, made from an ``--aug`` string once, at the edge.

An ``--aug`` string (``dynmix-m3-n2``, ``augmix``, ``prime-ospatial``, ``rand-m9-mstd0.5``, ...) is parsed and
validated by :func:`create_aug_spec` (or :meth:`AugSpec.parse`) where it enters the program: the command line, a
YAML recipe, ``TrainConfig(aug=...)``, a recorded ``results.json``. Everything below takes the spec (or its typed
``params``) and never parses the string again or decides its family again.

Families (:data:`AUG_FAMILIES`, a closed set):

==================  ======================================================  ==============================  =====
family              strings                                                 ``params``                      views
==================  ======================================================  ==============================  =====
none                ``none``                                                None                            0
mixup, cutmix       ``mixup``, ``cutmix`` (timm's Mixup in the step)        None                            0
autoaugment         AA* (``autoaugment[-cifar10|-imagenet]``) and timm's    the validated string            0
                    policies and RandAugment (``original``, ``v0``,
                    ``rand-m9-mstd0.5``, ...)
random-autoaugment  ``random-autoaugment`` (Random AA*)                     the string                      0
augmix              the official AugMix: ``augmix``, ``augmix_official-...`` :class:`AugMixConfig`           n
augmix-timm         timm's AugMix: ``augmix-timm`` (= ``augmix-m3-w3``),    the validated timm string       n
                    ``augmix-m3-w3-...``
dynmix              ``dynmix``, ``dynmix-<config>``                         :class:`DynMixConfig`           n
prime               ``prime``, ``prime-imagenet``, ``prime-<config>``       :class:`PrimeConfig`            n
==================  ======================================================  ==============================  =====

``views`` is the number of mixed views per image (``num_mixes``, else the config's ``n``, else 2) for the families
that make views, 0 for the others. ``device`` is where the augmentation runs: ``step`` (batched, inside the training
step: the families of :data:`STEP_AUGMENTATIONS`) or ``loader`` (per image, DataLoader workers); ``auto`` resolves to
``step`` when the family has a batched class.

``str(spec)`` is the canonical string (:attr:`AugSpec.canonical`, what the transform and ``results.json`` use) and
``create_aug_spec(str(spec), num_mixes=spec.views or None, device=spec.device) == spec``; for the default views and
device (and always for DynMix and PRIME, whose strings hold ``n``) simply ``create_aug_spec(str(spec)) == spec``.

This module imports nothing heavy: the family parsers are imported when a string of their family is parsed.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AugSpec", "create_aug_spec", "UnknownAugmentationError", "AUG_FAMILIES", "AUG_CHOICES", "AUG_DEVICES",
           "STEP_AUGMENTATIONS", "VIEW_FAMILIES"]

#: The closed set of augmentation families (see the module docstring).
AUG_FAMILIES = ("none", "mixup", "cutmix", "autoaugment", "random-autoaugment", "augmix", "augmix-timm", "dynmix",
                "prime")
#: The plain ``--aug`` names (each family's bare name).
AUG_CHOICES = AUG_FAMILIES
#: The families that make mixed views (the JSD loss compares them with the clean view).
VIEW_FAMILIES = ("augmix", "augmix-timm", "dynmix", "prime")
#: Where the augmentation runs: ``step`` (batched, inside the training step), ``loader`` (per image, DataLoader
#: workers) or ``auto``; ``model`` is the old name of ``step`` (accepted, resolved to ``step``).
AUG_DEVICES = ("auto", "step", "loader", "model")
#: Families with a batched version that runs in the training step: family -> its class as ``"module:name"``
#: (imported on use; built from the spec's ``params``). Only the official AugMix is ``augmix`` here; timm's AugMix
#: strings stay in the loader.
STEP_AUGMENTATIONS = {
    "dynmix": "timm_dynmix.augment.batched:DynamicMixupBatch",
    "augmix": "timm_dynmix.augment.augmix_batch:AugMixBatch",
    "prime": "timm_dynmix.augment.prime:PrimeBatch",
}
_AA_STAR = ("autoaugment", "autoaugment-cifar10", "autoaugment-imagenet")
_TIMM_AUGMIX = ("augmix-timm", "augmix-m3-w3")  # our name for timm's AugMix, and the timm string it stands for
_DEFAULT_VIEWS = 2
_MAX_VIEWS = 8


class UnknownAugmentationError(ValueError):
    """A string that names no augmentation family (a ``ValueError``)."""


@dataclass(frozen=True)
class AugSpec:
    """A parsed, validated training augmentation (see the module docstring for the families).

    Make one with :func:`create_aug_spec` (or :meth:`AugSpec.parse`); the constructor only checks that the fields
    agree with each other.

    Attributes:
        family: One of :data:`AUG_FAMILIES`.
        params: The family's typed config: a :class:`~timm_dynmix.augment.config.DynMixConfig` (its ``num_mixes`` is
            ``views``), an :class:`~timm_dynmix.augment.baselines.AugMixConfig`, a
            :class:`~timm_dynmix.augment.prime.PrimeConfig` (``num_mixes`` is ``views``), the validated string
            (autoaugment, random-autoaugment, augmix-timm) or None (none, mixup, cutmix).
        views: Mixed views per image (1 to 8) for the families that make views, else 0.
        device: ``step`` or ``loader``.
        source: The string the spec was parsed from (not compared: specs from equivalent strings are equal).
        given: For DynMix, the config keys the source string set explicitly (not compared).
    """

    family: str
    params: Any = None
    views: int = 0
    device: str = "loader"
    source: str = field(default="", compare=False, repr=False)
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.family not in AUG_FAMILIES:
            raise ValueError(f"AugSpec family must be one of {', '.join(AUG_FAMILIES)}, got {self.family!r}")
        if self.device not in ("step", "loader"):
            raise ValueError(f"AugSpec device must be 'step' or 'loader' (resolve 'auto' with create_aug_spec), "
                             f"got {self.device!r}")
        if self.device == "step" and self.family not in STEP_AUGMENTATIONS:
            raise ValueError(f"AugSpec family {self.family!r} has no batched version to run in the step; "
                             f"step families: {', '.join(STEP_AUGMENTATIONS)}")
        if self.family in VIEW_FAMILIES:
            if isinstance(self.views, bool) or not isinstance(self.views, int) or not 1 <= self.views <= _MAX_VIEWS:
                raise ValueError(f"AugSpec views must be an integer in [1, {_MAX_VIEWS}] for {self.family}, "
                                 f"got {self.views!r}")
            num_mixes = getattr(self.params, "num_mixes", self.views)
            if num_mixes != self.views:
                raise ValueError(f"AugSpec views {self.views} differs from the config's num_mixes {num_mixes}")
        elif self.views != 0:
            raise ValueError(f"AugSpec views must be 0 for {self.family} (it makes no views), got {self.views!r}")

    @classmethod
    def parse(cls, aug: str | AugSpec, *, image_size: int | tuple[int, ...] | None = None,
              num_mixes: int | None = None, device: str = "auto") -> AugSpec:
        """:func:`create_aug_spec`."""
        return create_aug_spec(aug, image_size=image_size, num_mixes=num_mixes, device=device)

    @property
    def name(self) -> str:
        """The family as ``results.json`` records it (``aug_name``): ``augmix`` for timm's AugMix too."""
        return "augmix" if self.family == "augmix-timm" else self.family

    @property
    def has_views(self) -> bool:
        """Whether the augmentation makes views (AugMix, DynMix, PRIME) that the JSD loss can compare."""
        return self.family in VIEW_FAMILIES

    @property
    def step_family(self) -> str | None:
        """The :data:`STEP_AUGMENTATIONS` key of the family (None: it has no batched version)."""
        return self.family if self.family in STEP_AUGMENTATIONS else None

    @property
    def step_class(self) -> type:
        """The batched class of the family (imported on use).

        Raises:
            ValueError: the family has no batched version.
        """
        if self.step_family is None:
            raise ValueError(f"--aug {self.canonical} has no batched version for --aug-device step; step families: "
                             f"{', '.join(STEP_AUGMENTATIONS)}")
        module, name = STEP_AUGMENTATIONS[self.step_family].split(":")
        return getattr(importlib.import_module(module), name)

    @property
    def canonical(self) -> str:
        """The canonical string: the config's canonical form (DynMix, official AugMix, PRIME), the timm string
        (``augmix-timm`` gives ``augmix-m3-w3``), or the family name."""
        if self.family in ("none", "mixup", "cutmix"):
            return self.family
        return str(self.params)

    @property
    def transform_string(self) -> str | None:
        """What the per-image transform is built from: :attr:`canonical`, or None for none, mixup and cutmix
        (no per-image augmentation)."""
        return None if self.family in ("none", "mixup", "cutmix") else self.canonical

    @property
    def timm_string(self) -> str | None:
        """The timm auto-augment string when the per-image transform is timm's own (timm's AugMix, policies,
        RandAugment), else None (ours: DynMix, the official AugMix, AA*, Random AA*; or none)."""
        if self.family == "augmix-timm" or (self.family == "autoaugment" and self.params not in _AA_STAR):
            return self.params
        return None

    @property
    def gives_ops(self) -> bool:
        """Whether a DynMix source string named its op set (key ``o``); True for the other families."""
        return self.family != "dynmix" or "o" in self.given

    def with_views(self, views: int) -> AugSpec:
        """A copy with ``views`` mixed views per image (the config's ``num_mixes`` too); no parse.

        Raises:
            ValueError: the family makes no views, or ``views`` is not in [1, 8].
        """
        if not self.has_views:
            raise ValueError(f"--aug {self.canonical} makes no views; views={views!r} needs augmix, dynmix or prime")
        _check_views(views)
        params = self.params
        if self.family in ("dynmix", "prime"):
            params = dataclasses.replace(params, num_mixes=views)
        return dataclasses.replace(self, params=params, views=views)

    def with_device(self, device: str) -> AugSpec:
        """A copy that runs on ``device`` (``auto``, ``step``, ``loader`` or ``model`` = step); no parse.

        Raises:
            ValueError: an unknown device, ``step`` for a family without a batched version, or ``loader`` for PRIME.
        """
        return dataclasses.replace(self, device=_resolve_device(self.family, device, self.canonical))

    def with_image_size(self, image_size: int | tuple[int, ...]) -> AugSpec:
        """For a DynMix string without an op set (key ``o``): the op set for ``image_size``
        (:func:`~timm_dynmix.augment.config.default_op_set`: ``imagenet`` above 64 px); else ``self``. No parse;
        ``source`` gets the ``-o<set>`` the run records."""
        if self.gives_ops:
            return self
        from timm_dynmix.augment.config import default_op_set

        ops = default_op_set(image_size)
        return dataclasses.replace(self, params=self.params.replace(ops=ops), source=f"{self.source}-o{ops}",
                                   given=self.given | {"o"})

    def __str__(self) -> str:
        return self.canonical


def create_aug_spec(aug: str | AugSpec, *, image_size: int | tuple[int, ...] | None = None,
                    num_mixes: int | None = None, device: str = "auto") -> AugSpec:
    """Parse and validate an ``--aug`` string into an :class:`AugSpec` (an ``AugSpec`` is adjusted, not parsed).

    Args:
        aug: ``none``, ``mixup``, ``cutmix``, ``autoaugment[-cifar10|-imagenet]``, ``random-autoaugment``,
            ``augmix`` / ``augmix_official-<config>``, ``augmix-timm`` or a timm ``augmix-...`` string,
            ``dynmix[-<config>]``, ``prime[-imagenet][-<config>]``, or a timm auto-augment string (``rand-...``,
            ``original``, ``v0``, ...).
        image_size: The training image size: a DynMix string without an op set gets the set for it (``imagenet``
            above 64 px); without it, ``cifar``.
        num_mixes: Mixed views per image (1 to 8), overriding the config's (a DynMix or PRIME string that sets a
            different ``n`` is refused); default: the config's, else 2.
        device: ``auto`` (``step`` when the family has a batched version, else ``loader``), ``step``, ``loader``,
            or ``model`` (the old name of ``step``).

    Raises:
        TypeError: ``aug`` is neither a string nor an AugSpec.
        ValueError: an unknown augmentation, an invalid config string (the family's parser names the bad part and
            the allowed range), ``num_mixes`` out of range or contradicting the string, or a device the family
            cannot run on.
    """
    if isinstance(aug, AugSpec):
        spec = aug
        if image_size is not None:
            spec = spec.with_image_size(image_size)
        if num_mixes is not None and spec.has_views:
            spec = spec.with_views(num_mixes)
        return spec.with_device(device) if device != "auto" else spec
    if not isinstance(aug, str):
        raise TypeError(f"--aug must be a string or an AugSpec, got {aug!r} ({type(aug).__name__})")
    if num_mixes is not None:
        _check_views(num_mixes)
    family = _family(aug)
    params, given, views = _parse_params(family, aug, image_size, num_mixes)
    return AugSpec(family=family, params=params, views=views, device=_resolve_device(family, device, aug),
                   source=aug, given=given)


def _check_views(views: Any) -> None:
    if isinstance(views, bool) or not isinstance(views, int) or not 1 <= views <= _MAX_VIEWS:
        raise ValueError(f"--num-mixes must be in [1, {_MAX_VIEWS}], got {views!r}")


def _family(aug: str) -> str:
    """The family of an ``--aug`` string: the one place that decides it."""
    text = aug.strip()
    head = text.split("-")[0]
    if head == "dynmix":
        return "dynmix"
    if head == "prime":
        return "prime"
    if text == "augmix" or head == "augmix_official":
        return "augmix"
    if text == "augmix-timm" or (head == "augmix" and "-" in text):
        return "augmix-timm"
    if text in ("none", "mixup", "cutmix", "random-autoaugment"):
        return text
    if text in _AA_STAR or (head == "rand" and "-" in text):
        return "autoaugment"
    from timm_dynmix.augment.timm_aug import TIMM_AA_POLICIES

    if head in TIMM_AA_POLICIES:
        return "autoaugment"
    raise UnknownAugmentationError(f"unknown --aug {aug!r}; choose one of {', '.join(AUG_CHOICES)}, 'dynmix-<config>', "
                     f"'augmix_official-<config>', 'prime-<config>', 'autoaugment-cifar10', 'autoaugment-imagenet' "
                     f"or a timm auto-augment string ('rand-m9-mstd0.5', 'augmix-m3-w3', 'original', 'v0')")


def _parse_params(family: str, aug: str, image_size: Any, num_mixes: int | None) -> tuple[Any, frozenset[str], int]:
    """``(params, given keys, views)`` of a string of ``family``: each family's parser, called once."""
    if family == "dynmix":
        from timm_dynmix.augment.config import parse_config_keys

        cfg, given = parse_config_keys(aug, image_size=image_size)
        if num_mixes is not None:
            if "n" in given and cfg.num_mixes != num_mixes:
                raise ValueError(f"--num-mixes {num_mixes} contradicts n{cfg.num_mixes} in --aug {aug}")
            cfg = cfg.replace(num_mixes=num_mixes)
        return cfg, given, cfg.num_mixes
    if family == "prime":
        from timm_dynmix.augment.prime import parse_prime_config

        prime = parse_prime_config(aug)
        if num_mixes is not None:
            if any(s[:1] == "n" for s in aug.strip().split("-")[1:]) and prime.num_mixes != num_mixes:
                raise ValueError(f"--num-mixes {num_mixes} contradicts n{prime.num_mixes} in --aug {aug}")
            prime = dataclasses.replace(prime, num_mixes=num_mixes)
        return prime, frozenset(), prime.num_mixes
    views = num_mixes if num_mixes is not None else _DEFAULT_VIEWS
    if family == "augmix":
        from timm_dynmix.augment.baselines import parse_augmix_config

        return parse_augmix_config(aug), frozenset(), views
    if family in ("augmix-timm", "autoaugment"):
        text = aug.strip()
        text = _TIMM_AUGMIX[1] if text == _TIMM_AUGMIX[0] else text
        if text not in _AA_STAR:
            from timm_dynmix.augment.timm_aug import parse_timm_aug

            parse_timm_aug(text)  # timm would skip unknown sections and accept any value
        return text, frozenset(), views if family == "augmix-timm" else 0
    return (aug.strip() if family == "random-autoaugment" else None), frozenset(), 0


def _resolve_device(family: str, device: Any, aug: str) -> str:
    """``step`` or ``loader`` for ``device`` (``auto``, ``step``, ``loader``, ``model``)."""
    if device not in AUG_DEVICES:
        raise ValueError(f"--aug-device must be 'auto', 'step', 'loader' or 'model' (= step), got {device!r}")
    if device == "auto":
        return "step" if family in STEP_AUGMENTATIONS else "loader"
    if device in ("step", "model"):
        if family not in STEP_AUGMENTATIONS:
            raise ValueError(f"--aug-device {device} runs the augmentation batched inside the training step; "
                             f"it needs --aug {' / '.join(STEP_AUGMENTATIONS)} (the official AugMix: 'augmix' or "
                             f"'augmix_official-...'), got --aug {aug}")
        return "step"
    if family == "prime":
        raise ValueError("--aug prime runs batched in the training step only (there is no per-image PRIME); "
                         "use --aug-device step or auto")
    return "loader"
