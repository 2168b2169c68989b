"""The papers' baselines: the official AugMix, AutoAugment* (AA*) and Random AutoAugment* (Random AA*).

**AugMix** (:class:`AugMix`) follows the official implementation (google-research/augmix, ``augmentations.py`` and
``aug()`` of ``cifar.py``/``imagenet.py``), which both the AugMix and the DynMix papers compare against:

* 9 ops: ``autocontrast, equalize, posterize, rotate, solarize, shear_x, shear_y, translate_x, translate_y`` (no
  colour, contrast, brightness or sharpness: they overlap the test corruptions);
* every op call that uses a level draws it uniformly in ``[0.1, severity]`` (severity 3 for CIFAR, 1 for ImageNet);
  ``rotate`` turns by ``int(level * 30 / 10)`` whole degrees (bilinear, about the centre), ``shear_x/y`` by
  ``level * 0.3 / 10`` about the top-left corner (PIL affine ``(1, s, 0, 0, 1, 0)``, bilinear), ``translate_x/y``
  moves by ``int(level * (size / 3) / 10)`` whole pixels, ``posterize`` keeps ``4 - int(level * 4 / 10)`` bits,
  ``solarize`` inverts from ``256 - int(level * 256 / 10)`` up; the geometric ops draw a sign with probability 1/2;
* ``width`` chains (3) of depth ``depth`` or, by default, a random depth in 1-3 per chain, ops drawn uniformly
  with replacement; chain weights ``w ~ Dirichlet(alpha)``, skip weight ``m ~ Beta(alpha, alpha)`` (alpha 1), and
  ``mixed = (1 - m) * clean + m * sum_i w_i * chain_i`` in float32 on the float images, without clipping or
  rounding (the official code mixes normalized tensors: normalization is affine and the weights sum to 1, so it
  commutes with the mixing).

Config strings: ``augmix`` (the CIFAR defaults) or ``augmix_official-s<severity>-w<width>-d<depth>-a<alpha>``
with any subset of the keys; ``d0`` is the random depth 1-3. The canonical form is
``augmix_official-s3-w3-d0-a1``. timm's own AugMix (13 ops, sub-pixel translations, clipping and uint8 rounding)
stays reachable as ``augmix-timm`` (timm's ``augmix-m3-w3``) and any timm ``augmix-...`` string.

**AutoAugment*** (:class:`AutoAugmentStar`) is AutoAugment's learned policy (torchvision's ``CIFAR10`` policy for
small images, its ``IMAGENET`` policy for large ones) without the ops that overlap ImageNet-C
(:data:`OVERLAPPING_OPS`: Brightness, Color, Contrast, Sharpness, Cutout): those ops are removed from their
sub-policies, and sub-policies left empty are removed. **Random AA*** (:class:`RandomAutoAugmentStar`) replaces
the learned policy by a random one: every image gets a sub-policy drawn uniformly from AutoAugment's search space
restricted to the same non-overlapping ops (:data:`RANDOM_AA_OPS`): two ops, each with a probability in
{0, 0.1, ..., 1} and a magnitude bin in 0-9. Both apply the ops with torchvision's AutoAugment op semantics and
magnitude bins (nearest-neighbour resampling, black fill). Names: ``autoaugment`` (policy by image size),
``autoaugment-cifar10``, ``autoaugment-imagenet``, ``random-autoaugment``; timm's full policies stay reachable as
``original``, ``v0``, ``rand-m9-mstd0.5``, ...

Every transform here takes an explicit ``rng`` (a ``numpy.random.Generator``) for per-sample reproducible draws;
without one it seeds a generator from torch's global RNG (which DataLoader workers and
:class:`timm_dynmix.DynMixDataset` seed per sample).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from typing import Any

import numpy as np
import torch
from PIL import Image

from timm_dynmix.augment.config import as_int, as_number, format_number
from timm_dynmix.augment.ops import MIN_LEVEL, OPS, Op, check_image
from timm_dynmix.rng import seed_from_torch

__all__ = ["AugMix", "AugMixConfig", "AugMixParams", "AUGMIX_OPS", "parse_augmix_config", "format_augmix_config",
           "augmix_mix", "is_official_augmix", "AUGMIX_PREFIX", "TIMM_AUGMIX", "AutoAugmentStar",
           "RandomAutoAugmentStar", "aa_star_policy", "OVERLAPPING_OPS", "RANDOM_AA_OPS", "AA_STAR_NAMES",
           "is_aa_star", "create_baseline"]

AUGMIX_PREFIX = "augmix_official"
TIMM_AUGMIX = ("augmix-timm", "augmix-m3-w3")  # our name for timm's AugMix, and the timm string it stands for
OUTPUTS = ("pil", "tensor")

# ----------------------------------------------------------------------------------------------------------------
# AugMix's ops: the official level -> parameter formulas (int_parameter / float_parameter) and PIL calls
_BILINEAR = Image.Resampling.BILINEAR


def _am_rotate_deg(level: float, size: tuple[int, int]) -> float:
    return float(int(level * 30 / 10))  # int_parameter(level, 30): whole degrees


def _am_shear(level: float, size: tuple[int, int]) -> float:
    return float(level) * 0.3 / 10.0  # float_parameter(level, 0.3)


def _am_translate_x(level: float, size: tuple[int, int]) -> float:
    return float(int(level * (size[0] / 3) / 10))  # int_parameter(level, width / 3): whole pixels


def _am_translate_y(level: float, size: tuple[int, int]) -> float:
    return float(int(level * (size[1] / 3) / 10))


def _am_affine(img: Image.Image, coeffs: tuple[float, ...]) -> Image.Image:
    # PIL maps every output pixel (x, y) to the input pixel (a x + b y + c, d x + e y + f)
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, resample=_BILINEAR)


def _am_shear_x(img: Image.Image, param: float) -> Image.Image:
    return _am_affine(img, (1.0, param, 0.0, 0.0, 1.0, 0.0))  # about the top-left corner, as the official code


def _am_shear_y(img: Image.Image, param: float) -> Image.Image:
    return _am_affine(img, (1.0, 0.0, 0.0, param, 1.0, 0.0))


def _am_translate_x_apply(img: Image.Image, param: float) -> Image.Image:
    return _am_affine(img, (1.0, 0.0, param, 0.0, 1.0, 0.0))  # + moves the content left, as the official code


def _am_translate_y_apply(img: Image.Image, param: float) -> Image.Image:
    return _am_affine(img, (1.0, 0.0, 0.0, 0.0, 1.0, param))


def _am_rotate(img: Image.Image, param: float) -> Image.Image:
    return img.rotate(param, resample=_BILINEAR)


#: The official AugMix op list, in its order. The pixel ops are DynMix's (same formulas and PIL results); the
#: geometric ops are AugMix's own variants (whole degrees and pixels, shears about the corner).
AUGMIX_OPS: dict[str, Op] = {
    op.name: op
    for op in (
        OPS["autocontrast"],
        OPS["equalize"],
        OPS["posterize"],
        Op("rotate", True, _am_rotate, _am_rotate_deg, signed=True),
        OPS["solarize"],
        Op("shear_x", True, _am_shear_x, _am_shear, signed=True),
        Op("shear_y", True, _am_shear_y, _am_shear, signed=True),
        Op("translate_x", True, _am_translate_x_apply, _am_translate_x, signed=True),
        Op("translate_y", True, _am_translate_y_apply, _am_translate_y, signed=True),
    )
}
_AUGMIX_OP_LIST = tuple(AUGMIX_OPS.values())


# ----------------------------------------------------------------------------------------------------------------
# AugMix config strings
_AM_KEYS = {"s": "severity", "w": "width", "d": "depth", "a": "alpha"}  # canonical order
_SECTION_RE = re.compile(r"^([a-z])(.+)$")


@dataclass(frozen=True)
class AugMixConfig:
    """Parameters of the official AugMix.

    Args:
        severity: Op severity in [0.1, 10] (3 for CIFAR, 1 for ImageNet in the official recipes); levels are
            drawn uniformly in [0.1, severity].
        width: Number of chains mixed, 1 to 16.
        depth: Ops per chain, 1 to 10; 0 draws it uniformly in 1-3 for every chain (the official ``-1``).
        alpha: Dirichlet and Beta parameter, in (0, 100].
    """

    severity: float = 3.0
    width: int = 3
    depth: int = 0
    alpha: float = 1.0

    def __post_init__(self) -> None:
        sev = as_number("AugMix severity", self.severity)
        if not 0.1 <= sev <= 10:
            raise ValueError(f"AugMix severity must be in [0.1, 10] (config key 's'), got {self.severity!r}")
        width = as_int("AugMix width", self.width)
        if not 1 <= width <= 16:
            raise ValueError(f"AugMix width must be in [1, 16] (config key 'w'), got {self.width!r}")
        depth = as_int("AugMix depth", self.depth)
        if not 0 <= depth <= 10:
            raise ValueError(f"AugMix depth must be 0 (random 1-3) or in [1, 10] (config key 'd'), got {self.depth!r}")
        alpha = as_number("AugMix alpha", self.alpha)
        if not 0 < alpha <= 100:
            raise ValueError(f"AugMix alpha must be in (0, 100] (config key 'a'), got {self.alpha!r}")
        object.__setattr__(self, "severity", float(sev))
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "alpha", float(alpha))

    def replace(self, **changes: Any) -> AugMixConfig:
        """A copy with some fields changed (validated like the constructor)."""
        return replace(self, **changes)

    def to_string(self) -> str:
        """The canonical config string; ``parse_augmix_config(c.to_string()) == c``."""
        return format_augmix_config(self)

    def __str__(self) -> str:
        return self.to_string()


def is_official_augmix(aug: object) -> bool:
    """Whether ``aug`` names the official AugMix: ``augmix``, an ``augmix_official...`` string or an AugMixConfig."""
    return isinstance(aug, AugMixConfig) or (isinstance(aug, str) and (
        aug.strip() == "augmix" or aug.strip().split("-")[0] == AUGMIX_PREFIX))


def parse_augmix_config(config: str | AugMixConfig) -> AugMixConfig:
    """Parse ``augmix`` or ``augmix_official[-s3][-w3][-d0][-a1]`` into an :class:`AugMixConfig`.

    Raises:
        ValueError: for another prefix (timm's ``augmix-...`` strings included: they mean timm's AugMix), an
            unknown or repeated key, a value that is not a number, or a value out of range.
        TypeError: for anything that is neither a string nor an AugMixConfig.
    """
    if isinstance(config, AugMixConfig):
        return config
    if not isinstance(config, str):
        raise TypeError(f"an AugMix config must be an 'augmix_official-...' string or an AugMixConfig, "
                        f"got {type(config).__name__}")
    text = config.strip()
    if text == "augmix":
        return AugMixConfig()
    sections = text.split("-")
    if sections[0] != AUGMIX_PREFIX:
        raise ValueError(f"an official AugMix config string is 'augmix' or starts with '{AUGMIX_PREFIX}', got "
                         f"{config!r} (timm's AugMix strings are 'augmix-timm' or 'augmix-m3-w3'-style)")
    kwargs: dict[str, Any] = {}
    for section in sections[1:]:
        match = _SECTION_RE.match(section)
        if not match or match.group(1) not in _AM_KEYS:
            known = ", ".join(f"'{k}' ({v})" for k, v in _AM_KEYS.items())
            raise ValueError(f"unknown section {section!r} in AugMix config {config!r}; known keys: {known}")
        key, raw = match.groups()
        name = _AM_KEYS[key]
        if name in kwargs:
            raise ValueError(f"key '{key}' ({name}) is given twice in AugMix config {config!r}")
        try:
            kwargs[name] = float(raw)
        except ValueError:
            raise ValueError(f"key '{key}' ({name}) needs a number in AugMix config {config!r}, got {raw!r}") from None
    return AugMixConfig(**kwargs)


def format_augmix_config(config: AugMixConfig) -> str:
    """The canonical config string of ``config``: every key, in the order s, w, d, a."""
    if not isinstance(config, AugMixConfig):
        raise TypeError(f"format_augmix_config expects an AugMixConfig, got {type(config).__name__}")
    return "-".join([AUGMIX_PREFIX] + [f"{key}{format_number(getattr(config, name))}"
                                       for key, name in _AM_KEYS.items()])


# ----------------------------------------------------------------------------------------------------------------
# AugMix
@dataclass(frozen=True)
class AugMixParams:
    """The random choices of one AugMix view.

    Attributes:
        weights: The chain weights ``w`` (float32, Dirichlet).
        skip: The skip weight ``m`` (float32, Beta): ``mixed = (1 - m) clean + m * sum_i w_i chain_i``.
        chains: ``width`` chains, each a tuple of ``(op name, parameter)`` steps applied in order.
        levels: The level drawn for every step (None for ops without one), nested like ``chains``.
    """

    weights: tuple[float, ...]
    skip: float
    chains: tuple[tuple[tuple[str, float], ...], ...]
    levels: tuple[tuple[float | None, ...], ...]


def augmix_mix(clean: np.ndarray, chains: Sequence[np.ndarray], weights: Sequence[float], skip: float) -> np.ndarray:
    """AugMix's combination ``(1 - m) * clean + m * sum_i w_i * chain_i`` in float32, as the official code.

    No clipping and no rounding: the result is the exact float combination of the inputs.
    """
    if len(chains) != len(weights):
        raise ValueError(f"augmix_mix needs one weight per chain, got {len(weights)} weights for {len(chains)} chains")
    w = np.asarray(weights, dtype=np.float32)
    m = np.float32(skip)
    mix = np.zeros_like(np.asarray(clean, dtype=np.float32))
    for wi, chain in zip(w, chains):
        mix += wi * np.asarray(chain, dtype=np.float32)
    return (np.float32(1.0) - m) * np.asarray(clean, dtype=np.float32) + m * mix


class AugMix:
    """The official AugMix of one PIL image: one augmented-and-mixed view per call.

    Args:
        config: ``"augmix"`` (defaults), an ``augmix_official-...`` string or an :class:`AugMixConfig`.
        output: ``"tensor"`` (float32 CHW in [0, 1], not rounded: for training views) or ``"pil"`` (rounded to
            uint8, same mode as the input).

    Draw order (fixed, so a generator state reproduces a view; the official order): the chain weights, the skip
    weight, then per chain its depth (when random), and per op the op index, the level (ops that use one) and a
    uniform number for the sign (geometric ops; negative when it exceeds 0.5).

    Example:
        >>> view = AugMix("augmix")(img, rng=np.random.default_rng(0))   # float tensor, 3 x H x W
    """

    def __init__(self, config: str | AugMixConfig = "augmix", *, output: str = "tensor"):
        self.config = parse_augmix_config(config)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.output = output

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.to_string()!r}, output={self.output!r})"

    def sample_params(self, rng: np.random.Generator, size: tuple[int, int]) -> AugMixParams:
        """Draw the random choices of one view for an image of ``size = (width, height)``."""
        cfg = self.config
        weights = rng.dirichlet([cfg.alpha] * cfg.width).astype(np.float32)
        skip = np.float32(rng.beta(cfg.alpha, cfg.alpha))
        chains, levels = [], []
        for _ in range(cfg.width):
            depth = cfg.depth if cfg.depth > 0 else int(rng.integers(1, 4))
            steps, lv = [], []
            for _ in range(depth):
                op = _AUGMIX_OP_LIST[int(rng.integers(len(_AUGMIX_OP_LIST)))]
                level, param = None, 0.0
                if op.magnitude is not None:
                    level = float(rng.uniform(MIN_LEVEL, cfg.severity))
                    param = op.magnitude(level, size)
                    if op.signed and rng.random() > 0.5:  # the official test: negative when u > 0.5
                        param = -param
                steps.append((op.name, param))
                lv.append(level)
            chains.append(tuple(steps))
            levels.append(tuple(lv))
        return AugMixParams(tuple(float(w) for w in weights), float(skip), tuple(chains), tuple(levels))

    @staticmethod
    def apply_chain(img: Image.Image, chain: Sequence[tuple[str, float]]) -> Image.Image:
        """Apply one chain of ``(op name, parameter)`` steps."""
        for name, param in chain:
            img = AUGMIX_OPS[name].apply(img, param)
        return img

    def apply_float(self, img: Image.Image, params: AugMixParams) -> np.ndarray:
        """Apply ``params``: the mixed view as a float32 HWC array (HW1 for mode L), nominally in [0, 1]."""
        chains = [_to_float(self.apply_chain(img, chain)) for chain in params.chains]
        return augmix_mix(_to_float(img), chains, params.weights, params.skip)

    def apply(self, img: Image.Image, params: AugMixParams) -> Image.Image | torch.Tensor:
        """Apply ``params`` to ``img`` and return the view in this transform's output format."""
        out = self.apply_float(img, params)
        if self.output == "tensor":
            return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))
        arr = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr[:, :, 0] if img.mode == "L" else arr, mode=img.mode)

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image | torch.Tensor:
        """One AugMix view of ``img`` (PIL, mode L/RGB/RGBA, at least 8x8 pixels)."""
        check_image(img)
        return self.apply(img, self.sample_params(_rng(rng), img.size))


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(seed_from_torch())
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng


def _to_float(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)
    return arr[:, :, None] if arr.ndim == 2 else arr


# ----------------------------------------------------------------------------------------------------------------
# AutoAugment* and Random AutoAugment*
#: AutoAugment ops that overlap ImageNet-C corruptions (removed by the AugMix paper, section 3).
OVERLAPPING_OPS = ("Brightness", "Color", "Contrast", "Sharpness", "Cutout")
#: AutoAugment's search space (torchvision's op names; SamplePairing, which mixes two images, excluded) without
#: the overlapping ops: the op set of Random AA*.
RANDOM_AA_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "AutoContrast", "Invert", "Equalize",
                 "Solarize", "Posterize")
AA_STAR_NAMES = ("autoaugment", "autoaugment-cifar10", "autoaugment-imagenet", "random-autoaugment")
_AA_POLICIES = ("cifar10", "imagenet")
_NUM_BINS = 10
_PROBS = tuple(i / 10 for i in range(11))  # AutoAugment's search space: probabilities 0, 0.1, ..., 1

SubPolicy = tuple[tuple[str, float, int | None], ...]


def is_aa_star(aug: object) -> bool:
    """Whether ``aug`` names AA* or Random AA* (``autoaugment[-cifar10|-imagenet]``, ``random-autoaugment``)."""
    return isinstance(aug, str) and aug.strip() in AA_STAR_NAMES


def aa_star_policy(policy: str) -> tuple[SubPolicy, ...]:
    """AutoAugment's learned ``policy`` (``cifar10`` or ``imagenet``, torchvision's) without the overlapping ops.

    Each sub-policy is a tuple of ``(op name, probability, magnitude bin)``; overlapping ops are removed from their
    sub-policies and sub-policies left empty are dropped.
    """
    return _aa_star_policy(policy)


@cache
def _aa_star_policy(policy: str) -> tuple[SubPolicy, ...]:
    from torchvision.transforms import AutoAugment, AutoAugmentPolicy

    if policy not in _AA_POLICIES:
        raise ValueError(f"AA* policy must be one of {', '.join(_AA_POLICIES)}, got {policy!r}")
    full = AutoAugment(AutoAugmentPolicy.CIFAR10 if policy == "cifar10" else AutoAugmentPolicy.IMAGENET).policies
    out = []
    for sub in full:
        kept = tuple((name, float(p), bin_) for name, p, bin_ in sub if name not in OVERLAPPING_OPS)
        if kept:
            out.append(kept)
    return tuple(out)


@lru_cache(maxsize=64)
def _magnitudes(height: int, width: int) -> dict[str, tuple[tuple[float, ...], bool]]:
    from torchvision.transforms import AutoAugment

    space = AutoAugment()._augmentation_space(_NUM_BINS, (height, width))
    return {name: (tuple(float(v) for v in mags.reshape(-1).tolist()), signed)
            for name, (mags, signed) in space.items()}


class _AutoAugmentBase:
    """Applies sub-policies with torchvision's AutoAugment op semantics (nearest resampling, black fill)."""

    def __init__(self, interpolation: str = "nearest"):
        from torchvision.transforms import InterpolationMode

        try:
            self.interpolation = InterpolationMode(interpolation)
        except ValueError:
            raise ValueError(f"interpolation must be nearest, bilinear or bicubic, got {interpolation!r}") from None

    def apply(self, img: Image.Image, steps: Sequence[tuple[str, float]]) -> Image.Image:
        """Apply ``(op name, signed magnitude)`` steps in order (torchvision's op names)."""
        from torchvision.transforms.autoaugment import _apply_op

        for name, magnitude in steps:
            img = _apply_op(img, name, magnitude, interpolation=self.interpolation, fill=None)
        return img

    @staticmethod
    def _step(name: str, prob: float, bin_: int | None, u: float, negative: bool,
              mags: dict[str, tuple[tuple[float, ...], bool]]) -> tuple[str, float] | None:
        if not u < prob:
            return None
        values, signed = mags[name]
        magnitude = values[bin_] if bin_ is not None and len(values) > 1 else 0.0
        return name, (-magnitude if signed and negative else magnitude)

    def sample_steps(self, rng: np.random.Generator, size: tuple[int, int]) -> list[tuple[str, float]]:
        raise NotImplementedError

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        """The augmented image (PIL in, PIL out)."""
        if not isinstance(img, Image.Image):
            raise TypeError(f"{type(self).__name__} expects a PIL image, got {type(img).__name__}")
        return self.apply(img, self.sample_steps(_rng(rng), img.size))


class AutoAugmentStar(_AutoAugmentBase):
    """AutoAugment* (AA*): AutoAugment's learned policy without the ops that overlap ImageNet-C.

    Args:
        policy: ``cifar10`` or ``imagenet`` (torchvision's ``AutoAugmentPolicy``), see :func:`aa_star_policy`.
        interpolation: Resampling of the geometric ops (torchvision's AutoAugment default: nearest).

    Per call: one sub-policy drawn uniformly; each of its ops applied with its probability, with its magnitude
    bin and, for signed ops, a random sign. Draw order: the sub-policy index, then per op a uniform number (the
    probability test) and one for the sign.
    """

    def __init__(self, policy: str = "cifar10", interpolation: str = "nearest"):
        super().__init__(interpolation)
        self.policy_name = policy
        self.policy = aa_star_policy(policy)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(policy={self.policy_name!r}, interpolation={self.interpolation.value!r})"

    @property
    def op_names(self) -> tuple[str, ...]:
        """The ops that occur in this policy, sorted."""
        return tuple(sorted({name for sub in self.policy for name, _, _ in sub}))

    def sample_steps(self, rng: np.random.Generator, size: tuple[int, int]) -> list[tuple[str, float]]:
        """The ``(op name, signed magnitude)`` steps of one call on an image of ``size = (width, height)``."""
        mags = _magnitudes(size[1], size[0])
        sub = self.policy[int(rng.integers(len(self.policy)))]
        steps = []
        for name, prob, bin_ in sub:
            u, negative = float(rng.random()), bool(rng.random() < 0.5)
            step = self._step(name, prob, bin_, u, negative, mags)
            if step is not None:
                steps.append(step)
        return steps


class RandomAutoAugmentStar(_AutoAugmentBase):
    """Random AA*: a random AutoAugment* sub-policy for every image.

    Args:
        ops: The op set (torchvision's op names), default :data:`RANDOM_AA_OPS`.
        num_ops: Ops per sub-policy (AutoAugment's sub-policies have 2).
        interpolation: Resampling of the geometric ops (nearest, as AutoAugment).

    Per call and op: the op uniformly from ``ops``, a probability uniformly from {0, 0.1, ..., 1}, a magnitude bin
    uniformly from 0-9, then (as AA*) a uniform number for the probability test and one for the sign.
    """

    def __init__(self, ops: Sequence[str] = RANDOM_AA_OPS, num_ops: int = 2, interpolation: str = "nearest"):
        super().__init__(interpolation)
        ops = tuple(ops)
        unknown = [o for o in ops if o not in RANDOM_AA_OPS]
        if not ops or unknown:
            raise ValueError(f"Random AA* ops must be a non-empty subset of {', '.join(RANDOM_AA_OPS)}, got {ops!r}")
        if isinstance(num_ops, bool) or not isinstance(num_ops, int) or not 1 <= num_ops <= 4:
            raise ValueError(f"num_ops must be an integer in [1, 4], got {num_ops!r}")
        self.ops = ops
        self.num_ops = num_ops

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ops={self.ops!r}, num_ops={self.num_ops})"

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.ops))

    def sample_subpolicy(self, rng: np.random.Generator) -> SubPolicy:
        """Draw one random sub-policy of ``num_ops`` ``(op name, probability, magnitude bin)`` triples."""
        sub = []
        for _ in range(self.num_ops):
            name = self.ops[int(rng.integers(len(self.ops)))]
            prob = _PROBS[int(rng.integers(len(_PROBS)))]
            sub.append((name, prob, int(rng.integers(_NUM_BINS))))
        return tuple(sub)

    def sample_steps(self, rng: np.random.Generator, size: tuple[int, int]) -> list[tuple[str, float]]:
        """The ``(op name, signed magnitude)`` steps of one call on an image of ``size = (width, height)``."""
        mags = _magnitudes(size[1], size[0])
        steps = []
        for name, prob, bin_ in self.sample_subpolicy(rng):
            u, negative = float(rng.random()), bool(rng.random() < 0.5)
            step = self._step(name, prob, bin_, u, negative, mags)
            if step is not None:
                steps.append(step)
        return steps


# ----------------------------------------------------------------------------------------------------------------
def create_baseline(aug: object, small: bool, output: str = "tensor") -> Callable[..., Any] | None:
    """The baseline transform named by ``aug``, or None when ``aug`` is not one of ours (then it is timm's).

    Args:
        aug: ``augmix``, ``augmix_official-...``, ``autoaugment``, ``autoaugment-cifar10``,
            ``autoaugment-imagenet`` or ``random-autoaugment``.
        small: Whether the images are small (CIFAR-like): selects the CIFAR-10 AA* policy for ``autoaugment``.
        output: AugMix's output: ``tensor`` (float views) or ``pil`` (uint8).
    """
    if not isinstance(aug, str):
        return None
    name = aug.strip()
    if is_official_augmix(name):
        return AugMix(name, output=output)
    if name == "random-autoaugment":
        return RandomAutoAugmentStar()
    if name in ("autoaugment", "autoaugment-cifar10", "autoaugment-imagenet"):
        policy = name.split("-")[1] if "-" in name else ("cifar10" if small else "imagenet")
        return AutoAugmentStar(policy)
    return None
