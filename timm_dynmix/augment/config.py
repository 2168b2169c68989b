"""DynMix configuration: the ``DynMixConfig`` dataclass and its ``dynmix-...`` config strings.

A config string names every choice of the augmentation, so that the string alone reproduces it (it is what
model cards and ``results.json`` record). The grammar follows timm's ``augmix-m3-w3``: a ``dynmix`` prefix, then
sections separated by ``-``, each a key immediately followed by its value.

=====  ======================  =========================================================  =========
key    field                   allowed values                                             default
=====  ======================  =========================================================  =========
``m``  ``magnitude``           severity in [0.1, 10] (AugMix convention; levels are        ``3``
                               sampled uniformly in [0.1, m] for every op call)
``d``  ``depth``               max chain depth, 1 or 2 (a chain is ``t1`` or ``t2∘t1``)    ``2``
``p``  ``depth2_prob``         probability that a chain has depth 2 (only with ``d2``)     ``0.5``
                               (``0`` with ``d1``; any other value with ``d1`` is refused)
``a``  ``alpha``               Beta(alpha, alpha) parameter, in (0, 100]                   ``1``
``w``  ``weights``             ``pair`` (m2 = 1 - m1), ``indep`` (m1, m2 independent),     ``pair``
                               ``linear`` (pair weights, no residual term)
``b``  ``blend``               0 or 1: skip blend with the clean image, AugMix-style       ``0``
``n``  ``num_mixes``           mixed views per image, 1 to 8                               ``2``
``o``  ``ops``                 a named op set (``cifar``, ``cifar_upright``, ``imagenet``,  see below
                               ``imagenet_upright``) or op names joined by ``.``
=====  ======================  =========================================================  =========

Without an ``o`` key the op set is ``cifar``, unless the string is parsed for a known image size
(``parse_config(text, image_size=...)``, as :func:`timm_dynmix.create_transform` does): then images larger than
``SMALL_IMAGE_MAX`` (64) pixels get the ``imagenet`` set (the paper adds ``downscale`` for ImageNet). The canonical
string always names the set that was chosen. Numbers are written in positional notation (``a0.00001``, never
``a1e-05``: ``-`` separates sections).

Example: ``dynmix-m3-d2-a1`` parses to the defaults; ``str(config)`` gives the canonical string
``dynmix-m3-d2-p0.5-a1-wpair-b0-n2-ocifar``, which parses back to an equal config.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any

from timm_dynmix.augment.ops import OP_SETS, resolve_ops

__all__ = ["DynMixConfig", "parse_config", "parse_config_keys", "format_config", "given_keys", "default_op_set",
           "WEIGHT_MODES", "CONFIG_PREFIX", "SMALL_IMAGE_MAX", "is_dynmix"]

CONFIG_PREFIX = "dynmix"
WEIGHT_MODES = ("pair", "indep", "linear")
_WEIGHT_ALIASES = {"independent": "indep"}

# key -> field name, in canonical order
_DEFAULT_DEPTH2_PROB = 0.5
_KEYS = {"m": "magnitude", "d": "depth", "p": "depth2_prob", "a": "alpha", "w": "weights", "b": "blend",
         "n": "num_mixes", "o": "ops"}
_EXAMPLE_VALUES = {"m": "3", "d": "2", "p": "0.5", "a": "1", "w": "pair", "b": "1", "n": "2", "o": "imagenet"}
_SECTION_RE = re.compile(r"^([a-z])(.+)$")
SMALL_IMAGE_MAX = 64  # up to this size (CIFAR, SVHN, digits): CIFAR-style crops and, by default, the cifar op set


def format_number(x: float) -> str:
    """Shortest exact decimal text of a float in positional notation, without a trailing ``.0`` for integers.

    ``repr`` would write ``1e-05``, whose ``-`` the parser takes for a section separator.
    """
    if float(x).is_integer():
        return str(int(x))
    return format(Decimal(repr(float(x))), "f")


def default_op_set(image_size: int | tuple[int, ...]) -> str:
    """The op set used when a config string has no ``o`` key, for images of ``image_size`` pixels.

    ``"imagenet"`` (the CIFAR set plus ``downscale``, as in the paper's ImageNet recipe) when the largest side is
    above :data:`SMALL_IMAGE_MAX`, else ``"cifar"``. ``image_size`` is an int or a ``(H, W)`` / ``(C, H, W)``.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, tuple, list)):
        raise TypeError(f"image_size must be an int or a (H, W) / (C, H, W) sequence, got {image_size!r}")
    sides = (image_size,) if isinstance(image_size, int) else tuple(image_size)[-2:]
    if not sides or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sides):
        raise ValueError(f"image_size must hold positive integers, got {image_size!r}")
    return "imagenet" if max(sides) > SMALL_IMAGE_MAX else "cifar"


@dataclass(frozen=True)
class DynMixConfig:
    """All parameters of a Dynamic Mixup augmentation.

    Args:
        magnitude: Op severity in [0.1, 10]; each op call samples its level uniformly in [0.1, magnitude].
        depth: Maximum chain depth, 1 or 2.
        depth2_prob: Probability that a chain has depth 2 when ``depth == 2`` (default 0.5). With ``depth == 1``
            it is 0; leave it out (or give 0): any other value raises ``ValueError``, as ``dynmix-d1-p0.7`` does.
        alpha: Parameter of the Beta(alpha, alpha) distribution of the mixing (and blend) weights.
        weights: ``"pair"`` (m1 ~ Beta, m2 = 1 - m1), ``"indep"`` (m1, m2 ~ Beta independently) or ``"linear"``
            (pair weights without the residual term ``m1*m2*(X1 - X2)``).
        blend: Skip blend with the clean image, ``X' = (1 - b) clean + b X`` with b ~ Beta(alpha, alpha).
        num_mixes: Number of independent mixed views per image (the clean view is not counted).
        ops: Op names (a tuple) or the name of an op set; stored as a tuple of op names.
    """

    magnitude: float = 3.0
    depth: int = 2
    depth2_prob: float | None = None  # None: 0.5 with depth 2, 0 with depth 1
    alpha: float = 1.0
    weights: str = "pair"
    blend: bool = False
    num_mixes: int = 2
    ops: tuple[str, ...] = field(default_factory=lambda: OP_SETS["cifar"])

    def __post_init__(self) -> None:
        def setf(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        mag = as_number("magnitude", self.magnitude)
        if not 0.1 <= mag <= 10:
            raise ValueError(f"DynMix magnitude must be in [0.1, 10] (config key 'm'), got {self.magnitude!r}")
        setf("magnitude", float(mag))

        depth = as_int("depth", self.depth)
        if depth not in (1, 2):
            raise ValueError(f"DynMix depth must be 1 or 2 (config key 'd'), got {self.depth!r}")
        setf("depth", depth)

        if self.depth2_prob is None:
            prob = _DEFAULT_DEPTH2_PROB if depth == 2 else 0.0
        else:
            prob = as_number("depth2_prob", self.depth2_prob)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"DynMix depth2_prob must be in [0, 1] (config key 'p'), got {self.depth2_prob!r}")
        if depth == 1 and prob != 0.0:
            raise ValueError(f"DynMix depth2_prob {prob!r} (config key 'p') needs depth 2 ('d2'): with depth 1 every "
                             "chain has depth 1; leave depth2_prob out or set it to 0")
        setf("depth2_prob", float(prob))

        alpha = as_number("alpha", self.alpha)
        if not 0.0 < alpha <= 100.0:
            raise ValueError(f"DynMix alpha must be in (0, 100] (config key 'a'), got {self.alpha!r}")
        setf("alpha", float(alpha))

        weights = _WEIGHT_ALIASES.get(self.weights, self.weights) if isinstance(self.weights, str) else self.weights
        if weights not in WEIGHT_MODES:
            raise ValueError(f"DynMix weights must be one of {', '.join(WEIGHT_MODES)} (config key 'w'), "
                             f"got {self.weights!r}")
        setf("weights", weights)

        if not isinstance(self.blend, (bool, int)) or self.blend not in (0, 1):
            raise ValueError(f"DynMix blend must be 0/1 or a bool (config key 'b'), got {self.blend!r}")
        setf("blend", bool(self.blend))

        n = as_int("num_mixes", self.num_mixes)
        if not 1 <= n <= 8:
            raise ValueError(f"DynMix num_mixes must be in [1, 8] (config key 'n'), got {self.num_mixes!r}")
        setf("num_mixes", n)

        setf("ops", resolve_ops(self.ops))

    @classmethod
    def from_string(cls, config_str: str) -> DynMixConfig:
        """Parse a ``dynmix-...`` config string (see the module docstring for the grammar)."""
        return parse_config(config_str)

    @property
    def op_set_name(self) -> str | None:
        """The name of the named op set equal to ``ops``, or None for a custom list."""
        for name, ops in OP_SETS.items():
            if ops == self.ops:
                return name
        return None

    def replace(self, **changes: Any) -> DynMixConfig:
        """A copy with some fields changed (validated like the constructor).

        Changing ``depth`` without giving ``depth2_prob`` resets it to its default for the new depth.
        """
        if "depth" in changes and "depth2_prob" not in changes:
            changes["depth2_prob"] = None
        return replace(self, **changes)

    def to_string(self) -> str:
        """The canonical config string; ``parse_config(c.to_string()) == c``."""
        return format_config(self)

    def __str__(self) -> str:
        return self.to_string()


def as_number(name: str, value: Any) -> float:
    """``value`` as a float; ``TypeError`` for a non-number (bools included), ``ValueError`` if not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def as_int(name: str, value: Any) -> int:
    """``value`` as an int; ``TypeError`` for a non-number, ``ValueError`` for a non-integral or non-finite one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or float(value) != int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def is_dynmix(aug: object) -> bool:
    """Whether ``aug`` names a DynMix augmentation (a ``dynmix...`` string or a DynMixConfig); a string test only."""
    return isinstance(aug, DynMixConfig) or (isinstance(aug, str) and aug.split("-")[0] == CONFIG_PREFIX)


def parse_config(config_str: str | DynMixConfig, *, image_size: int | tuple[int, ...] | None = None) -> DynMixConfig:
    """Parse a config string such as ``dynmix-m3-d2-a1`` into a :class:`DynMixConfig`.

    Keys not given take their defaults. A ``DynMixConfig`` passes through unchanged.

    Args:
        config_str: The config string, or a ``DynMixConfig``.
        image_size: The size of the images the augmentation will see (an int or ``(H, W)`` / ``(C, H, W)``). When
            given and the string has no ``o`` key, the op set is :func:`default_op_set` of it (``imagenet`` above
            64 px); without it, ``cifar``. An explicit ``o`` key, or a ``DynMixConfig``, is always kept.

    Raises:
        ValueError: for a string that does not start with ``dynmix``, an unknown or repeated key, a key without a
            value, a value that is not a number where one is expected, or a value out of range (the message gives
            the allowed range).
        TypeError: for anything that is neither a string nor a ``DynMixConfig``.
    """
    if isinstance(config_str, DynMixConfig):
        return config_str
    return parse_config_keys(config_str, image_size=image_size)[0]


def parse_config_keys(config_str: str, *, image_size: int | tuple[int, ...] | None = None,
                      ) -> tuple[DynMixConfig, frozenset[str]]:
    """:func:`parse_config` of a string, and the keys it gives explicitly (:func:`given_keys`), in one parse.

    Raises:
        ValueError, TypeError: as :func:`parse_config`.
    """
    kwargs = _parse_sections(config_str)
    given = frozenset(k for k, v in _KEYS.items() if v in kwargs)
    if image_size is not None and "ops" not in kwargs:
        kwargs["ops"] = default_op_set(image_size)
    if kwargs.get("depth") == 1 and kwargs.get("depth2_prob", 0) != 0:
        raise ValueError(f"'p' (depth2_prob) needs 'd2' in DynMix config {config_str!r}: "
                         "with d1 every chain has depth 1")
    return DynMixConfig(**kwargs), given


def given_keys(config: str | DynMixConfig) -> frozenset[str]:
    """The keys (``m``, ``d``, ...) a config string gives explicitly; every key for a ``DynMixConfig``.

    Raises:
        ValueError, TypeError: as :func:`parse_config` for a malformed string.
    """
    if isinstance(config, DynMixConfig):
        return frozenset(_KEYS)
    names = _parse_sections(config)
    return frozenset(k for k, v in _KEYS.items() if v in names)


def _parse_sections(config_str: Any) -> dict[str, Any]:
    """The raw ``{field name: value}`` of the sections of a config string (not yet range-checked)."""
    if not isinstance(config_str, str):
        raise TypeError(f"a DynMix config must be a 'dynmix-...' string or a DynMixConfig, "
                        f"got {type(config_str).__name__}")
    text = config_str.strip()
    sections = text.split("-")
    if sections[0] != CONFIG_PREFIX:
        raise ValueError(f"a DynMix config string must start with '{CONFIG_PREFIX}', got {config_str!r}")
    kwargs: dict[str, Any] = {}
    for section in sections[1:]:
        if section in _KEYS:
            raise ValueError(f"key '{section}' ({_KEYS[section]}) needs a value in DynMix config {config_str!r}, "
                             f"e.g. '{section}{_EXAMPLE_VALUES[section]}'")
        match = _SECTION_RE.match(section)
        if not match or match.group(1) not in _KEYS:
            known = ", ".join(f"'{k}' ({v})" for k, v in _KEYS.items())
            raise ValueError(f"unknown section {section!r} in DynMix config {config_str!r}; known keys: {known}")
        key, raw = match.groups()
        name = _KEYS[key]
        if name in kwargs:
            raise ValueError(f"key '{key}' ({name}) is given twice in DynMix config {config_str!r}")
        kwargs[name] = _parse_value(key, name, raw, config_str)
    return kwargs


def _parse_value(key: str, name: str, raw: str, config_str: str) -> Any:
    if key == "w":
        return raw
    if key == "o":
        return tuple(raw.split(".")) if "." in raw else raw  # a set name or a single op name
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"key '{key}' ({name}) needs a number in DynMix config {config_str!r}, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"key '{key}' ({name}) needs a finite number in DynMix config {config_str!r}, got {raw!r}")
    if key in ("d", "n", "b"):
        if not value.is_integer():
            raise ValueError(f"key '{key}' ({name}) needs an integer in DynMix config {config_str!r}, got {raw!r}")
        value = int(value)
    return value


def format_config(config: DynMixConfig) -> str:
    """The canonical config string of ``config``: every key, in a fixed order (``p`` only with ``d2``)."""
    if not isinstance(config, DynMixConfig):
        raise TypeError(f"format_config expects a DynMixConfig, got {type(config).__name__}")
    parts = [CONFIG_PREFIX]
    for f in fields(config):
        key = next(k for k, v in _KEYS.items() if v == f.name)
        value = getattr(config, f.name)
        if f.name == "depth2_prob" and config.depth == 1:
            continue
        if f.name == "ops":
            text = config.op_set_name or ".".join(value)
        elif f.name == "weights":
            text = value
        elif f.name == "blend":
            text = str(int(value))
        else:
            text = format_number(value)
        parts.append(f"{key}{text}")
    return "-".join(parts)
