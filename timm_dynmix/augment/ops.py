"""The DynMix op table: PIL image ops with AugMix-style magnitudes.

Every op has one signature, ``op(img, level, rng) -> img``: ``level`` is the severity drawn for this call (in
[0.1, magnitude], AugMix convention), ``rng`` a ``numpy.random.Generator`` for the op's own random choice (the
sign of a rotation, shear or translation). Following torchvision v2, an op call is split in two: sample the
parameter (:meth:`Op.sample`), then apply it (:meth:`Op.apply`), so that tests and the batched path can apply
exactly the same parameter.

Magnitudes (``level`` in (0, 10]):

================  =====================================================================================
op                parameter
================  =====================================================================================
``flip_h/v``      none (left-right / top-bottom mirror)
``rotate``        ``±30° * level / 10``, counter-clockwise for +, about the centre, bilinear, black fill
``translate_x/y`` ``±int(level * (W/3 or H/3) / 10)`` whole pixels, as the official AugMix (+ moves content
                  right/down), black fill: a pure move of pixels, no resampling
``shear_x/y``     ``±0.3 * level / 10``, about the image centre, bilinear, black fill (AugMix shears about the
                  top-left corner, which also shifts the content; centring keeps shear and translation apart)
``autocontrast``  none (``PIL.ImageOps.autocontrast``: stretch each channel to [0, 255])
``equalize``      none (``PIL.ImageOps.equalize``: per-channel histogram equalization)
``solarize``      threshold ``256 - int(256 * level / 10)``: pixels >= threshold are inverted
``posterize``     ``4 - int(4 * level / 10)`` bits kept per channel
``downscale``     shrink to ``1 - 0.5 * level / 10`` of the size (box filter), resize back (bilinear);
                  ImageNet op set only
================  =====================================================================================

Relation to the test corruptions (ImageNet-C / CIFAR-10-C; tested behaviourally in tests/test_ops.py). No op is
a colour, brightness, contrast, sharpness, noise or cutout op: flips and translations move whole pixels, and
the pixel ops are per-channel lookup tables that reorder values (solarize) or do not narrow the tonal range
(autocontrast, equalize; posterize only to its coarser grid). Two kinds of op do soften the image:

* ``rotate`` and ``shear_x/y`` resample bilinearly, as the official AugMix does, which softens the finest detail:
  on CIFAR-10 test images they keep about 57-64% (rotate) and 75-87% (shear) of the Laplacian energy, where
  CIFAR-10-C's mildest ``gaussian_blur`` and ``defocus_blur`` (severity 1) keep 77%; never less than one
  bilinear resampling at its softest (a half-pixel shift in x and y, 35%).
* ``downscale`` is a mild blur by design (the paper adds it for ImageNet; not in the CIFAR sets): 44% kept at
  level 0.5, 31% at level 5, 10% at level 9.9.

Modes: ``L`` and ``RGB`` are handled natively; for ``RGBA`` the geometric ops move the alpha channel
with the content (uncovered areas become transparent black) and the pixel ops change the colour channels only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["Op", "OPS", "OP_SETS", "GEOMETRIC_OPS", "PIXEL_OPS", "resolve_ops", "get_op", "SUPPORTED_MODES",
           "MAX_ROTATE_DEG", "MAX_SHEAR", "MAX_TRANSLATE_FRAC", "MAX_DOWNSCALE_SHRINK", "MIN_LEVEL", "check_image"]

SUPPORTED_MODES = ("L", "RGB", "RGBA")
MIN_LEVEL = 0.1  # levels are drawn uniformly in [MIN_LEVEL, magnitude], as in the official AugMix
MAX_ROTATE_DEG = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE_FRAC = 1.0 / 3.0
_TRANSLATE_DIVISOR = 3.0  # W / 3.0 (not W * MAX_TRANSLATE_FRAC): the official formula's rounding, e.g. 30 / 3 = 10
MAX_DOWNSCALE_SHRINK = 0.5

_BILINEAR = Image.Resampling.BILINEAR


# ----------------------------------------------------------------------------------------------------------------
# level -> parameter (unsigned); pure arithmetic (no int()/float() casts), so that the same formulas work on
# Python floats here and elementwise on torch tensors in the batched path (timm_dynmix.augment.batched)
def _rotate_deg(level: float, size: tuple[int, int]) -> float:
    return MAX_ROTATE_DEG * level / 10.0


def _shear(level: float, size: tuple[int, int]) -> float:
    return MAX_SHEAR * level / 10.0


def _translate_x(level: float, size: tuple[int, int]) -> float:
    # whole pixels: the official AugMix's int(level * (W / 3) / 10), in the same order of float operations
    return (level * (size[0] / _TRANSLATE_DIVISOR) / 10.0) // 1.0


def _translate_y(level: float, size: tuple[int, int]) -> float:
    return (level * (size[1] / _TRANSLATE_DIVISOR) / 10.0) // 1.0


def _solarize_threshold(level: float, size: tuple[int, int]) -> float:
    return 256.0 - (256 * level / 10.0) // 1.0  # levels are positive: // 1.0 is int() truncation, as a float


def _posterize_bits(level: float, size: tuple[int, int]) -> float:
    return 4.0 - (4 * level / 10.0) // 1.0


def _downscale_factor(level: float, size: tuple[int, int]) -> float:
    return 1.0 - MAX_DOWNSCALE_SHRINK * level / 10.0


# ----------------------------------------------------------------------------------------------------------------
# parameter -> image
def _flip_h(img: Image.Image, param: float) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _flip_v(img: Image.Image, param: float) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)


def _rotate(img: Image.Image, param: float) -> Image.Image:
    return img.rotate(param, resample=_BILINEAR)


def _affine(img: Image.Image, coeffs: tuple[float, ...]) -> Image.Image:
    # PIL maps every output pixel (x, y) to the input pixel (a x + b y + c, d x + e y + f)
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, resample=_BILINEAR)


def _whole_pixels(name: str, param: float) -> int:
    """A translation's parameter as an int; ``ValueError`` unless it is a whole number of pixels."""
    if not math.isfinite(param) or param != int(param):
        raise ValueError(f"{name} moves whole pixels: its parameter must be a whole number, got {param!r}")
    return int(param)


def _paste_shifted(img: Image.Image, dx: int, dy: int) -> Image.Image:
    # a pure move of pixels: out[y, x] = img[y - dy, x - dx], 0 (transparent black for RGBA) where uncovered
    out = Image.new(img.mode, img.size)
    out.paste(img, (dx, dy))
    return out


def _translate_x_apply(img: Image.Image, param: float) -> Image.Image:
    return _paste_shifted(img, _whole_pixels("translate_x", param), 0)


def _translate_y_apply(img: Image.Image, param: float) -> Image.Image:
    return _paste_shifted(img, 0, _whole_pixels("translate_y", param))


def _shear_x_apply(img: Image.Image, param: float) -> Image.Image:
    cy = img.size[1] / 2.0
    return _affine(img, (1.0, param, -param * cy, 0.0, 1.0, 0.0))


def _shear_y_apply(img: Image.Image, param: float) -> Image.Image:
    cx = img.size[0] / 2.0
    return _affine(img, (1.0, 0.0, 0.0, param, 1.0, -param * cx))


# The pixel ops give exactly PIL.ImageOps' results (tested), with PIL's per-pixel work (histogram, extrema, point)
# but the tables built with numpy or cached: ImageOps builds them with Python loops, which cost more than the
# op itself on small images.
_LEVELS = np.arange(256, dtype=np.float64)


def _point(img: Image.Image, luts: list[list[int]]) -> Image.Image:
    return img.point([v for lut in luts for v in lut])


@lru_cache(maxsize=1024)
def _solarize_lut(threshold: int, bands: int) -> list[int]:
    return [i if i < threshold else 255 - i for i in range(256)] * bands


@lru_cache(maxsize=64)
def _posterize_lut(bits: int, bands: int) -> list[int]:
    if not 1 <= bits <= 8:
        raise ValueError(f"posterize keeps 1 to 8 bits, got {bits}")
    mask = ~(2 ** (8 - bits) - 1)
    return [i & mask for i in range(256)] * bands


def _autocontrast(img: Image.Image, param: float) -> Image.Image:
    # ImageOps.autocontrast(img): per band, lo/hi = smallest/largest value present; identity when hi <= lo, else
    # int(i * scale + offset) clipped to [0, 255] with scale = 255 / (hi - lo), offset = -lo * scale
    extrema: Any = img.getextrema()  # (lo, hi) for mode L, one pair per band otherwise
    luts = []
    for lo, hi in (extrema,) if img.mode == "L" else extrema:
        if hi <= lo:
            luts.append(list(range(256)))
        else:
            scale = 255.0 / (hi - lo)
            luts.append(np.clip(np.trunc(_LEVELS * scale + (-lo * scale)), 0, 255).astype(np.int64).tolist())
    return _point(img, luts)


def _equalize(img: Image.Image, param: float) -> Image.Image:
    # ImageOps.equalize(img): per band, step = (pixels - count of the largest value present) // 255; identity
    # when step == 0 (or a single value), else lut[i] = (step // 2 + pixels below i) // step (point clips to 255)
    luts = []
    for h in np.asarray(img.histogram(), dtype=np.int64).reshape(-1, 256):
        present = h[h > 0]
        step = (int(present.sum()) - int(present[-1])) // 255 if len(present) > 1 else 0
        if not step:
            luts.append(list(range(256)))
        else:
            below = np.cumsum(h) - h
            luts.append(((step // 2 + below) // step).tolist())
    return _point(img, luts)


def _solarize(img: Image.Image, param: float) -> Image.Image:
    return img.point(_solarize_lut(int(param), len(img.getbands())))


def _posterize(img: Image.Image, param: float) -> Image.Image:
    return img.point(_posterize_lut(int(param), len(img.getbands())))


def _downscale(img: Image.Image, param: float) -> Image.Image:
    w, h = img.size
    small = (max(1, round(w * param)), max(1, round(h * param)))
    return img.resize(small, Image.Resampling.BOX).resize((w, h), _BILINEAR)


@dataclass(frozen=True)
class Op:
    """One DynMix op.

    Attributes:
        name: The op's name in config strings.
        geometric: True for ops that move pixels (applied to every channel, alpha included).
        fn: ``fn(img, param) -> img``: applies the op with a concrete parameter.
        magnitude: ``magnitude(level, (width, height)) -> param`` (unsigned), or None for ops without one.
        signed: Whether the parameter gets a random sign.
    """

    name: str
    geometric: bool
    fn: Callable[[Image.Image, float], Image.Image]
    magnitude: Callable[[float, tuple[int, int]], float] | None = None
    signed: bool = False

    def sample(self, level: float, rng: np.random.Generator, size: tuple[int, int]) -> float:
        """Sample this op's parameter for ``level`` on an image of ``size = (width, height)``.

        Draws one uniform number from ``rng`` for signed ops and none otherwise.
        """
        if self.magnitude is None:
            return 0.0
        param = self.magnitude(level, size)
        if self.signed and rng.random() < 0.5:
            param = -param
        return param

    def apply(self, img: Image.Image, param: float) -> Image.Image:
        """Apply this op with parameter ``param`` (see the module table) to a PIL image of mode L, RGB or RGBA."""
        if img.mode == "RGBA" and not self.geometric:
            rgb = self.fn(img.convert("RGB"), param)
            rgb.putalpha(img.getchannel("A"))
            return rgb
        return self.fn(img, param)

    def __call__(self, img: Image.Image, level: float, rng: np.random.Generator) -> Image.Image:
        """Sample a parameter for ``level`` and apply it: the one op signature ``op(img, level, rng)``."""
        return self.apply(img, self.sample(level, rng, img.size))


OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op("flip_h", True, _flip_h),
        Op("flip_v", True, _flip_v),
        Op("rotate", True, _rotate, _rotate_deg, signed=True),
        Op("translate_x", True, _translate_x_apply, _translate_x, signed=True),
        Op("translate_y", True, _translate_y_apply, _translate_y, signed=True),
        Op("shear_x", True, _shear_x_apply, _shear, signed=True),
        Op("shear_y", True, _shear_y_apply, _shear, signed=True),
        Op("autocontrast", False, _autocontrast),
        Op("equalize", False, _equalize),
        Op("solarize", False, _solarize, _solarize_threshold),
        Op("posterize", False, _posterize, _posterize_bits),
        Op("downscale", True, _downscale, _downscale_factor),
    )
}
GEOMETRIC_OPS = tuple(name for name, op in OPS.items() if op.geometric)
PIXEL_OPS = tuple(name for name, op in OPS.items() if not op.geometric)

_CIFAR = ("flip_h", "flip_v", "rotate", "translate_x", "translate_y", "shear_x", "shear_y", "autocontrast",
          "equalize", "solarize", "posterize")
OP_SETS: dict[str, tuple[str, ...]] = {
    "cifar": _CIFAR,
    "cifar_upright": tuple(n for n in _CIFAR if n != "flip_v"),
    "imagenet": _CIFAR + ("downscale",),
    "imagenet_upright": tuple(n for n in _CIFAR if n != "flip_v") + ("downscale",),
}


def get_op(name: str) -> Op:
    """The :class:`Op` called ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in OPS:
        raise ValueError(f"unknown DynMix op {name!r}; known ops: {', '.join(OPS)}")
    return OPS[name]


def resolve_ops(ops: str | Sequence[str]) -> tuple[str, ...]:
    """Validate an op set name or a list of op names and return the op names as a tuple.

    Raises:
        ValueError: for an unknown set or op name (listing the known ones), an empty list or a repeated name.
        TypeError: for anything but a string or a sequence of strings.
    """
    if isinstance(ops, str):
        if ops in OP_SETS:
            return OP_SETS[ops]
        if ops not in OPS:
            raise ValueError(f"unknown DynMix op set {ops!r}; known sets: {', '.join(OP_SETS)}; "
                             f"or give a list of op names from: {', '.join(OPS)}")
        ops = (ops,)
    if not isinstance(ops, Sequence) or not all(isinstance(o, str) for o in ops):
        raise TypeError(f"ops must be an op set name or a sequence of op names, got {ops!r}")
    if len(ops) == 0:
        raise ValueError(f"ops must name at least one op; known ops: {', '.join(OPS)}")
    for name in ops:
        get_op(name)
    if len(set(ops)) != len(ops):
        raise ValueError(f"ops must not repeat a name, got {list(ops)}")
    return tuple(ops)


def check_image(img: object, min_size: int = 8) -> Image.Image:
    """Check that ``img`` is a PIL image of a supported mode and at least ``min_size`` pixels on each side."""
    if not isinstance(img, Image.Image):
        hint = " (for tensor batches use timm_dynmix.DynamicMixupBatch)" if type(img).__name__ == "Tensor" else ""
        raise TypeError(f"DynMix expects a PIL image, got {type(img).__name__}{hint}")
    if img.mode not in SUPPORTED_MODES:
        raise ValueError(f"DynMix supports PIL modes {', '.join(SUPPORTED_MODES)}, got mode {img.mode!r}; "
                         f"convert first, e.g. img.convert('RGB')")
    if min(img.size) < min_size:
        raise ValueError(f"DynMix needs images of at least {min_size}x{min_size} pixels, "
                         f"got {img.size[0]}x{img.size[1]}")
    return img

