"""Checking timm's auto-augment strings (``augmix-m3-w3``, ``rand-m9-mstd0.5``, ``original``, ``v0``) before training.

timm parses these strings leniently (``timm.data.auto_augment``: ``augment_and_mix_transform``,
``rand_augment_transform``, ``auto_augment_transform``): each ``-`` section is split at its first digit into a key and
a value, sections without a digit are skipped, ``rand-t<name>`` with an unknown name falls back to the default op set,
and no value is range-checked. So ``augmix-foo`` trains plain AugMix and ``augmix-m3-w0`` mixes zero chains (black
images blended in: darker training images), without a word. :func:`validate_timm_aug` accepts what timm would parse,
with every value in a range where it does what the key says, and raises ``ValueError`` naming the bad section
otherwise. :func:`parse_timm_aug` returns the parsed settings; :func:`timm_augmentation` builds timm's transform.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["validate_timm_aug", "parse_timm_aug", "is_timm_aug", "timm_augmentation", "TIMM_AA_POLICIES",
           "TIMM_RAND_TRANSFORM_SETS"]

TIMM_AA_POLICIES = ("original", "originalr", "v0", "v0r", "3a")  # timm's auto_augment_policy names
TIMM_RAND_TRANSFORM_SETS = ("weights", "3a", "3aw")  # rand-t<name>: timm's rand_augment_choices
_LEVEL_MAX = 10  # timm's _LEVEL_DENOM: magnitudes above it are clipped (RandAugment: unless mmax says otherwise)
_SECTION = re.compile(r"^([a-z]+)(\d.*)$")


def _int(lo: int, hi: int | None = None) -> Callable[[str], int]:
    def parse(v: str) -> int:
        if not re.fullmatch(r"\d+", v):
            raise ValueError("an integer")
        x = int(v)
        if x < lo or (hi is not None and x > hi):
            raise ValueError(f"{lo} to {hi}" if hi is not None else f">= {lo}")
        return x
    return parse


def _float(lo: float, hi: float | None = None, lo_open: bool = False) -> Callable[[str], float]:
    def parse(v: str) -> float:
        try:
            x = float(v)
        except ValueError:
            raise ValueError("a number") from None
        if not math.isfinite(x) or (x <= lo if lo_open else x < lo) or (hi is not None and x > hi):
            low = f"> {lo:g}" if lo_open else f">= {lo:g}"
            raise ValueError(f"{low} and <= {hi:g}" if hi is not None else low)
        return x
    return parse


# key -> (meaning, parser raising ValueError("<allowed range>"))
_AUGMIX_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "m": ("magnitude (severity; levels drawn uniformly in [0, m], clipped at 10)", _int(1, _LEVEL_MAX)),
    "w": ("chain width (number of chains mixed; 0 mixes none and darkens the images)", _int(1)),
    "d": ("chain depth (0, or d-1, for a random depth 1 to 3)", _int(0)),
    "a": ("alpha of the Dirichlet and Beta mixing weights", _float(0, lo_open=True)),
    "b": ("blended mode (0 or 1)", _int(0, 1)),
    "mstd": ("std of the magnitude noise", _float(0)),
}
_RAND_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "m": ("magnitude (0 to 10, or to mmax)", _int(0)),
    "n": ("ops per image", _int(1)),
    "p": ("probability of applying each op", _float(0, 1)),
    "mstd": ("std of the magnitude noise (> 100: uniform in [0, m])", _float(0)),
    "mmax": ("upper bound of the magnitude (default 10)", _int(1)),
    "inc": ("use the ops whose severity increases with the magnitude (0 or 1)", _int(0, 1)),
}
_AA_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "mstd": ("std of the magnitude noise", _float(0)),
}


def _grammar(kind: str, keys: dict[str, tuple[str, Callable[[str], Any]]]) -> str:
    listed = "; ".join(f"{k}: {meaning}" for k, (meaning, _) in keys.items())
    extra = f"; t<name>: op set, name one of {', '.join(TIMM_RAND_TRANSFORM_SETS)}" if kind == "rand" else ""
    return f"{kind} keys are {listed}{extra}"


def parse_timm_aug(aug: str) -> dict[str, Any]:
    """Parse a timm auto-augment string strictly into ``{"kind": "augmix" | "rand" | "autoaugment", "policy": str,
    <key>: value}`` (only the keys the string sets).

    Accepted: ``augmix-<sections>`` (keys ``m``, ``w``, ``d``, ``a``, ``b``, ``mstd``; ``d-1`` is read as timm's
    default random depth), ``rand-<sections>`` (``m``, ``n``, ``p``, ``mstd``, ``mmax``, ``inc``, ``t<name>``) and
    ``<policy>[-mstd<x>]`` with policy ``original``, ``originalr``, ``v0``, ``v0r`` or ``3a``. Each section is a key
    followed by its number (``m3``, ``mstd0.5``), once.

    Raises:
        TypeError: ``aug`` is not a string.
        ValueError: naming the section that is unknown, lacks a value, repeats a key or is out of range.
    """
    if not isinstance(aug, str):
        raise TypeError(f"a timm augmentation must be a string such as 'augmix-m3-w3', got {type(aug).__name__}")
    sections = aug.split("-")
    head, rest = sections[0], sections[1:]
    if head == "augmix":
        kind, keys = "augmix", _AUGMIX_KEYS
    elif head == "rand":
        kind, keys = "rand", _RAND_KEYS
    elif head in TIMM_AA_POLICIES:
        kind, keys = "autoaugment", _AA_KEYS
    else:
        raise ValueError(f"unknown timm augmentation {aug!r}: it must start with 'augmix-', 'rand-' or an "
                         f"AutoAugment policy ({', '.join(TIMM_AA_POLICIES)})")
    parsed: dict[str, Any] = {"kind": kind, "policy": head}
    i = 0
    while i < len(rest):
        section = rest[i]
        value: Any  # an int or float parsed from the section, or the op set's name for t<name>
        if kind == "augmix" and section == "d" and i + 1 < len(rest) and rest[i + 1] == "1":
            key, value, i = "d", -1, i + 2  # d-1: timm's default random depth, written out
        elif kind == "rand" and section.startswith("t"):  # timm reads every rand section starting with t so
            name = section[1:]
            if name not in TIMM_RAND_TRANSFORM_SETS:
                raise ValueError(f"invalid timm augmentation {aug!r}: section {section!r}: t<name> names the op set, "
                                 f"one of {', '.join('t' + n for n in TIMM_RAND_TRANSFORM_SETS)} (timm silently uses "
                                 f"its default set for any other name)")
            key, value, i = "t", name, i + 1
        else:
            m = _SECTION.match(section)
            if m is None or m.group(1) not in keys:
                why = "an empty section (two '-' in a row?)" if not section else (
                    f"unknown key {m.group(1)!r}" if m else "not a key followed by a number")
                raise ValueError(f"invalid timm augmentation {aug!r}: section {section!r} is {why}; "
                                 f"{_grammar(kind, keys)} (timm would silently ignore or misread it)")
            key = m.group(1)
            meaning, parse = keys[key]
            try:
                value = parse(m.group(2))
            except ValueError as e:
                raise ValueError(f"invalid timm augmentation {aug!r}: section {section!r}: {key} is the {meaning} "
                                 f"and must be {e}, got {m.group(2)!r}") from None
            i += 1
        if key in parsed:
            raise ValueError(f"invalid timm augmentation {aug!r}: {key!r} is set twice")
        parsed[key] = value
    if kind == "rand" and parsed.get("m", 0) > parsed.get("mmax", _LEVEL_MAX):
        raise ValueError(f"invalid timm augmentation {aug!r}: magnitude m{parsed['m']} is above the maximum "
                         f"{parsed.get('mmax', _LEVEL_MAX)} (timm clips it; raise it with mmax<N>)")
    return parsed


def is_timm_aug(aug: object) -> bool:
    """Whether ``aug`` is meant as a timm auto-augment string: it starts with ``augmix-``, ``rand-`` or a policy name
    (``original``, ``v0``, ...) as its first ``-`` section. Says nothing about whether the rest is valid."""
    if not isinstance(aug, str):
        return False
    head = aug.split("-")[0]
    return (head in ("augmix", "rand") and "-" in aug) or head in TIMM_AA_POLICIES


def validate_timm_aug(aug: str) -> None:
    """Check a timm auto-augment string (see :func:`parse_timm_aug`); raise ``ValueError`` naming the bad part."""
    parse_timm_aug(aug)


def timm_augmentation(aug: str, size: tuple[int, int], mean: Sequence[float], interpolation: str,
                      validated: bool = False) -> Callable[..., Any]:
    """timm's own augmentation for a timm config string, with the hparams timm's train transforms use.

    Used by :func:`timm_dynmix.augment.per_image.per_image_augmentation` (with ``validated=True``: an
    :class:`~timm_dynmix.augment.spec.AugSpec` checked the string when it was parsed) and by
    :func:`timm_dynmix.data.transforms_factory.create_transform` (imports timm on use).
    """
    from timm.data.auto_augment import augment_and_mix_transform, auto_augment_transform, rand_augment_transform
    from timm.data.transforms import str_to_pil_interp

    from timm_dynmix.augment.baselines import TIMM_AUGMIX

    if aug == TIMM_AUGMIX[0]:
        aug = TIMM_AUGMIX[1]
    if is_timm_aug(aug) and not validated:
        validate_timm_aug(aug)  # timm itself skips unknown sections and accepts any value
    aug = aug.replace("-d-1", "") if aug.startswith("augmix-") else aug  # d-1: timm's default depth, not its syntax
    hparams: dict[str, Any] = {"translate_const": int(min(size) * 0.45),
                               "img_mean": tuple(min(255, round(255 * x)) for x in mean)}
    if interpolation and interpolation != "random":
        hparams["interpolation"] = str_to_pil_interp(interpolation)
    try:
        if aug.startswith("rand"):
            return rand_augment_transform(aug, hparams)
        if aug.startswith("augmix"):
            hparams["translate_pct"] = 0.3
            return augment_and_mix_transform(aug, hparams)
        return auto_augment_transform(aug, hparams)
    except (AssertionError, KeyError, ValueError) as e:
        raise ValueError(f"unknown augmentation {aug!r}: expected 'none', 'dynmix[-...]', 'augmix' "
                         f"('augmix_official-...'), 'augmix-timm', 'autoaugment[-cifar10|-imagenet]', "
                         f"'random-autoaugment' or a timm auto-augment string ('rand-m9-mstd0.5', 'augmix-m3-w3', "
                         f"'original', 'v0', ...); timm said: {e!r}") from None
