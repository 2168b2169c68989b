"""The 15 + 4 common corruptions of CIFAR-10-C / ImageNet-C (Hendrycks & Dietterich, 2019), re-implemented.

Vectorized numpy / scipy / OpenCV / Pillow / scikit-image code written against numpy 2 and current scikit-image,
from the published recipe (``make_cifar_c.py`` / ``make_imagenet_c.py``: parameters, formulas and behaviour),
not from its source. Both parameter tables are here: ``PARAMS["cifar"]`` (32 px) and ``PARAMS["imagenet"]``
(224 px crops).

Randomness: every image has its own ``numpy.random.Generator``, seeded with
``timm_dynmix.rng.derive_seed(seed, epoch=severity, index=image_index, split="make-c:<corruption>")``, so an image's
corruption depends only on ``(seed, corruption, severity, index)``: not on the batch it is processed in, the number
of processes or which corruptions were generated before. Output is truncated to uint8 (``np.uint8(x)`` of a value
in [0, 255]) like the original scripts.

Precision follows the original scripts, since the final truncation turns tiny float differences into whole levels:
float64 (``np.array(x) / 255.``) for the noises, gaussian, glass and defocus blur, fog, contrast, brightness and
saturate; float32 where the original converts with ``dtype=np.float32`` (zoom blur, snow, spatter, elastic) and
float64 for snow's motion-blurred flake layer, as there. The bilinear zoom of ``zoom_blur`` and ``snow`` is
computed in double precision like ``scipy.ndimage.zoom``.

Differences from the original scripts, all deliberate:

* Motion blur (``motion_blur`` and the streaks of ``snow``) does not need ImageMagick: :func:`motion_blur_kernel`
  builds the one-sided line kernel of ImageMagick's ``MotionBlurImage(radius, sigma, angle)``: ``2*ceil(radius)+1``
  taps ``i = 0, 1, ...`` at pixel offsets ``(round(i cos a), round(i sin a))`` (x to the right, y down, so
  ``a = 0`` smears along +x and ``a = -90`` upwards), weights ``exp(-i^2 / (2 sigma^2))`` normalized to sum 1,
  edge pixels replicated, and the sum quantized as ImageMagick Q16 does before writing its 8-bit PNG: rounded to 16
  bits, then truncated to 8 bits (``floor(rint(257 s) / 257)``). Checked against ImageMagick 6.9.11 Q16 (the
  ``MagickMotionBlurImage`` call and PNG round trip of the original scripts) on CIFAR-10 test images at radius
  6-15 and angles in [-135, 45] degrees: every output value equal.
* Random draws come from per-image generators (above), not numpy's global state, so the released arrays are not
  reproduced bit for bit (they cannot be: the original scripts never seeded their RNG).
* Images of other sizes than the table's reference size (32 for ``cifar``, 224 for ``imagenet``) are accepted:
  elastic-transform lengths scale with ``min(H, W) / reference``, the fog fractal uses the next power of two of the
  longest side, and a frost texture smaller than the image is enlarged to cover it; every other parameter is an
  absolute pixel or intensity value and is used as is.
* The water layer of ``spatter`` is clipped to [0, 1] before its 8-bit conversion (the original wraps values
  above 1 around, an undefined cast).

Frost textures are third-party images shipped by the PyPI package ``imagecorruptions`` (``pip install
"timm-dynmix[eval]"``); they are read from its installed files at run time, never copied.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from timm_dynmix.rng import derive_seed

__all__ = [
    "CORRUPTIONS", "EXTRA_CORRUPTIONS", "ALL_CORRUPTIONS", "CORRUPTION_GROUPS", "PARAMS", "REFERENCE_SIZE",
    "corrupt", "corruption_rng", "corruption_group", "motion_blur_kernel", "plasma_fractal", "frost_textures",
    "FrostTexturesMissing",
]

# the 15 benchmark corruptions, in the order of the AugMix scripts and the ImageNet-C tables
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
# the 4 "validation" corruptions: reported separately, never part of a benchmark average
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS: tuple[str, ...] = CORRUPTIONS + EXTRA_CORRUPTIONS
CORRUPTION_GROUPS: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
    "extra": EXTRA_CORRUPTIONS,
}
REFERENCE_SIZE = {"cifar": 32, "imagenet": 224}

# Per-severity parameters (index = severity - 1). Meanings are given by the functions below. zoom_blur holds the
# (start, stop, step) of the np.arange of zoom factors (np.arange(1, 1.06, .01) has 7 values: float rounding, kept).
# elastic_transform holds absolute (alpha, sigma, affine) pixel lengths at the reference size: CIFAR = 32 x
# fractions, ImageNet = 244 x fractions (the original's "244 should have been 224", applied to 224 px images).
_E = 244
PARAMS: dict[str, dict[str, tuple[Any, ...]]] = {
    "cifar": {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
        "shot_noise": (500, 250, 100, 75, 50),
        "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
        "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),
        "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
        "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
        "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
        "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
        "zoom_blur": ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
        "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
                 (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
        "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
        "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
        "spatter": ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                    (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
        "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
        "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
        "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
        "jpeg_compression": (80, 65, 58, 50, 40),
        "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
        "elastic_transform": tuple(tuple(32 * v for v in c) for c in (
            (0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))),
    },
    "imagenet": {
        "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
        "shot_noise": (60, 25, 12, 5, 3),
        "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
        "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
        "gaussian_blur": (1, 2, 3, 4, 6),
        "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
        "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
        "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
        "zoom_blur": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)),
        "snow": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
                 (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
        "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
        "fog": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
        "spatter": ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
                    (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)),
        "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
        "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
        "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
        "jpeg_compression": (25, 18, 15, 10, 7),
        "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
        "elastic_transform": tuple(tuple(_E * v for v in c) for c in (
            (2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02))),
    },
}
# frost: (texture scale before cropping) per table; make_cifar_c shrinks the textures to 1/5
_FROST_SCALE = {"cifar": 0.2, "imagenet": 1.0}
_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")  # frost6 is never drawn


def corruption_group(name: str, strict: bool = True) -> str:
    """The group of a corruption: noise, blur, weather, digital or extra.

    Args:
        name: A corruption name.
        strict: Refuse names that are not ours; with ``strict=False`` (reports of other benchmarks) ImageNet-3DCC's
            corruptions are ``"3dcc"`` and any other name is ``"other"``.

    Raises:
        ValueError: for a name that is not one of :data:`ALL_CORRUPTIONS`, when ``strict``.
    """
    for group, names in CORRUPTION_GROUPS.items():
        if name in names:
            return group
    if not strict:
        from timm_dynmix.robustness.metrics import IMAGENET_3DCC_CORRUPTIONS

        return "3dcc" if name in IMAGENET_3DCC_CORRUPTIONS else "other"
    raise ValueError(f"unknown corruption {name!r}; known: {', '.join(ALL_CORRUPTIONS)}")


def corruption_rng(seed: int, corruption: str, severity: int, index: int) -> np.random.Generator:
    """The generator of one image: keyed by ``(seed, corruption, severity, image index)`` (see module docstring)."""
    return np.random.default_rng(derive_seed(seed, epoch=severity, index=index, split=f"make-c:{corruption}"))


# ---- helpers -----------------------------------------------------------------------------------------------------
def _gaussian(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """scikit-image's ``gaussian`` (mode ``nearest``, truncate 4) over the H, W axes of a (N, H, W[, C]) batch."""
    from scipy.ndimage import gaussian_filter

    sig = (0.0, sigma, sigma) + (0.0,) * (x.ndim - 3)
    return gaussian_filter(x, sigma=sig, mode=mode, truncate=truncate)


@functools.lru_cache(maxsize=256)
def _zoom_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation of ``scipy.ndimage.zoom(order=1)``: output o samples o (n_in-1)/(n_out-1)."""
    pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    mat = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(mat, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(mat, (np.arange(n_out), hi), frac)
    return mat


def _clipped_zoom(x: np.ndarray, zoom: float) -> np.ndarray:
    """Zoom the centre of a (N, H, W[, C]) batch by ``zoom`` and crop back to H x W.

    The centre ``ceil(H / zoom) x ceil(W / zoom)`` is resized to ``round(size * zoom)`` with the bilinear
    interpolation of ``scipy.ndimage.zoom(order=1)`` (as two double-precision matrix products over the whole batch,
    cast back to the input's dtype), then the middle H x W is kept.
    """
    h, w = x.shape[1:3]
    ch, cw = math.ceil(h / zoom), math.ceil(w / zoom)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[:, top:top + ch, left:left + cw]
    oh, ow = round(ch * zoom), round(cw * zoom)
    tt, tl = (oh - h) // 2, (ow - w) // 2
    rows = _zoom_matrix(ch, oh)[tt:tt + h]
    cols = _zoom_matrix(cw, ow)[tl:tl + w]
    flat = crop if x.ndim == 4 else crop[..., None]
    n, _, _, c = flat.shape
    out = np.matmul(rows, flat.reshape(n, ch, cw * c)).reshape(n, h, cw, c)  # along H
    out = np.matmul(out.transpose(0, 1, 3, 2), cols.T).transpose(0, 1, 3, 2)  # along W
    out = out.astype(x.dtype, copy=False)
    return out if x.ndim == 4 else out[..., 0]


def motion_blur_kernel(radius: float, sigma: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The taps of ImageMagick-style motion blur: ``(offsets (T, 2) int as (dx, dy), weights (T,))``.

    ``T = 2 * ceil(radius) + 1`` taps ``i = 0..T-1`` along the direction ``angle`` (degrees; x right, y down), at
    ``(round(i cos a), round(i sin a))`` (halves rounded down, as ``ceil(v - 0.5)``), weighted by
    ``exp(-i^2 / (2 sigma^2))`` and normalized to sum 1. The kernel is one-sided: the output pixel averages the pixels
    ahead of it along the direction.
    """
    if radius <= 0 or sigma <= 0:
        raise ValueError(f"motion blur needs radius > 0 and sigma > 0, got radius={radius}, sigma={sigma}")
    width = 2 * math.ceil(radius) + 1
    i = np.arange(width, dtype=np.float64)
    weights = np.exp(-(i * i) / (2.0 * sigma * sigma))
    weights /= weights.sum()
    a = math.radians(angle)
    dx = np.ceil(i * math.cos(a) - 0.5).astype(np.int64)
    dy = np.ceil(i * math.sin(a) - 0.5).astype(np.int64)
    return np.stack([dx, dy], axis=1), weights


def _motion_blur_one(img: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """Motion-blur one uint8 (H, W[, C]) image; returns integral float64 values in [0, 255].

    The weighted sums are quantized as ImageMagick Q16 does before its 8-bit PNG output: rounded to 16 bits
    (levels v * 257), then truncated to 8 bits, ``floor(rint(257 s) / 257)``; rounding instead would add about
    0.5 levels on average.
    """
    offsets, weights = motion_blur_kernel(radius, sigma, angle)
    r = int(np.abs(offsets).max())
    h, w = img.shape[:2]
    pad = ((r, r), (r, r)) + ((0, 0),) * (img.ndim - 2)
    padded = np.pad(img.astype(np.float64), pad, mode="edge")
    out = np.zeros(img.shape, dtype=np.float64)
    for (dx, dy), wt in zip(offsets, weights):
        out += wt * padded[r + dy:r + dy + h, r + dx:r + dx + w]
    q16 = np.clip(np.rint(out * 257.0), 0, 65535)
    return np.floor(q16 / 257.0)


def plasma_fractal(rng: np.random.Generator, mapsize: int = 256, wibbledecay: float = 3.0) -> np.ndarray:
    """A (mapsize, mapsize) plasma fractal in [0, 1]: diamond-square on a torus, as the fog corruption uses.

    Starts from a zero map and a "wibble" of 100; at each level every new point is the mean of its 4 neighbours
    plus ``wibble * U(-wibble, wibble)`` (squares first, then the two diamond sub-grids), then the step halves and
    the wibble is divided by ``wibbledecay``. The map is finally scaled to [0, 1].
    """
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of 2 >= 2, got {mapsize}")
    m = np.zeros((mapsize, mapsize), dtype=np.float64)
    step, wibble = mapsize, 100.0

    def noisy_mean(total: np.ndarray) -> np.ndarray:
        return total / 4.0 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = m[0::step, 0::step]
        square = corners + np.roll(corners, -1, axis=0)
        m[half::step, half::step] = noisy_mean(square + np.roll(square, -1, axis=1))
        centers, corners = m[half::step, half::step], m[0::step, 0::step]
        # points on the corner rows: corners left/right, centres below/above
        m[0::step, half::step] = noisy_mean(corners + np.roll(corners, -1, axis=1) + centers
                                            + np.roll(centers, 1, axis=0))
        # points on the corner columns: corners above/below, centres right/left
        m[half::step, 0::step] = noisy_mean(corners + np.roll(corners, -1, axis=0) + centers
                                            + np.roll(centers, 1, axis=1))
        step //= 2
        wibble /= wibbledecay
    m -= m.min()
    return m / m.max()


class FrostTexturesMissing(FileNotFoundError):
    """The frost textures (from the PyPI package ``imagecorruptions``) are not installed."""


def _imagecorruptions_frost_dir() -> Path:
    """The ``frost/`` folder of the installed ``imagecorruptions`` package.

    Found first through ``importlib.metadata`` (the distribution's installed file list), which does not import the
    package: ``imagecorruptions`` 1.1.2 imports ``pkg_resources`` at import time, which current setuptools no longer
    ships. Then through ``importlib.resources`` (which imports it), for installs without metadata.
    """
    import importlib.metadata as md
    import importlib.resources

    try:
        dist = md.distribution("imagecorruptions")
    except md.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or ():
            if f.name == _FROST_FILES[0] and f.parent.name == "frost":
                return Path(str(dist.locate_file(f))).parent
    try:
        folder = importlib.resources.files("imagecorruptions") / "frost"
        if folder.is_dir():
            return Path(str(folder))
    except Exception:  # not installed, or its import fails
        pass
    raise FrostTexturesMissing(
        "the frost corruption needs the frost texture images of the PyPI package 'imagecorruptions', which is not "
        "installed: pip install \"timm-dynmix[eval]\" (or pip install imagecorruptions), or leave frost out with "
        "--corruptions")


@functools.lru_cache(maxsize=4)
def frost_textures(scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """The 5 frost textures used by the corruption (RGB uint8), resized by ``scale`` (bilinear, OpenCV)."""
    import cv2

    folder = _imagecorruptions_frost_dir()
    out = []
    for name in _FROST_FILES:
        path = folder / name
        tex = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if tex is None:
            raise FrostTexturesMissing(f"frost texture {path} is missing or unreadable; reinstall imagecorruptions")
        if scale != 1.0:
            tex = cv2.resize(tex, (0, 0), fx=scale, fy=scale)
        out.append(np.ascontiguousarray(tex[..., ::-1]))
    return tuple(out)


# ---- the corruptions: f(img uint8 (N,H,W,3), param, rngs, table) -> float array in [0, 255] ------------------------
def _unit(img: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1], for the corruptions the original computes in float32."""
    return img.astype(np.float32) / 255.0


def _unit64(img: np.ndarray) -> np.ndarray:
    """uint8 -> float64 in [0, 1] (``np.array(x) / 255.``), for the corruptions the original computes in float64."""
    return img.astype(np.float64) / 255.0


def _stack(rngs: Sequence[np.random.Generator], draw: Callable[[np.random.Generator], np.ndarray]) -> np.ndarray:
    return np.stack([draw(g) for g in rngs])


def gaussian_noise(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """x + N(0, c) in [0, 1]."""
    x = _unit64(img)
    return np.clip(x + _stack(rngs, lambda g: g.normal(0.0, c, size=img.shape[1:])), 0, 1) * 255


def shot_noise(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """Poisson(x c) / c in [0, 1]."""
    x = _unit64(img)
    return np.clip(np.stack([g.poisson(x[i] * c) for i, g in enumerate(rngs)]) / c, 0, 1) * 255


def impulse_noise(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """Salt-and-pepper noise: each value (pixel and channel) is replaced with probability ``c``, by 1 or 0 with equal
    probability (scikit-image's ``random_noise(mode="s&p", amount=c)``)."""
    x = _unit64(img)
    flip = _stack(rngs, lambda g: g.random((2, *img.shape[1:])))  # (N, 2, H, W, C): flip?, salt?
    hit, salt = flip[:, 0] <= c, flip[:, 1] <= 0.5
    return np.where(hit, salt.astype(np.float64), x) * 255


def speckle_noise(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """x + x N(0, c) in [0, 1]."""
    x = _unit64(img)
    return np.clip(x + x * _stack(rngs, lambda g: g.normal(0.0, c, size=img.shape[1:])), 0, 1) * 255


def gaussian_blur(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """Gaussian blur of standard deviation ``c`` pixels."""
    return np.clip(_gaussian(_unit64(img), c), 0, 1) * 255


def glass_blur(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """Blur, then locally shuffle pixels by sequential random copies, then blur again.

    ``c = (sigma, max_delta, iterations)``: after a Gaussian blur (sigma) truncated to 8 bits, each iteration visits
    the pixels (h, w) with h from H - delta down to delta + 1 and, inside, w from W - delta down to delta + 1, draws
    (dx, dy) uniformly from {-delta, ..., delta - 1} (the original's exclusive upper bound) and sets pixel (h, w) to
    the current value of pixel (h + dy, w + dx). The original writes this step as a tuple swap of numpy row views,
    which only copies (its second assignment writes back the value just copied), so pixel (h + dy, w + dx) keeps its
    value; a value can still move several times within an iteration when its source was visited earlier.
    :func:`_glass_shuffle` reproduces these sequential copies exactly, vectorized.
    """
    sigma, delta, iterations = c
    n, h, w = img.shape[:3]
    x = np.uint8(np.clip(_gaussian(_unit64(img), sigma), 0, 1) * 255)
    rows = np.arange(h - delta, delta, -1)
    cols = np.arange(w - delta, delta, -1)
    if len(rows) == 0 or len(cols) == 0:
        raise ValueError(f"glass_blur with max_delta={delta} needs images larger than {2 * delta + 1} px")
    pos = (rows[:, None] * w + cols[None, :]).ravel()  # visiting order of the flat pixel positions
    # (N, iterations, positions, 2) draws: (dx, dy) per visited pixel, in visiting order
    d = _stack(rngs, lambda g: g.integers(-delta, delta, size=(iterations, len(pos), 2)))
    source = pos[None, None, :] + d[..., 1] * w + d[..., 0]
    perm = _glass_shuffle(pos, source, h * w)
    x = x.reshape(n, h * w, -1)[np.arange(n)[:, None], perm].reshape(img.shape)
    return np.clip(_gaussian(x / 255.0, sigma), 0, 1) * 255


def _glass_shuffle(pos: np.ndarray, source: np.ndarray, size: int) -> np.ndarray:
    """Where each pixel's value comes from after glass blur's sequential copies: ``(N, size)`` flat indices.

    Args:
        pos: ``(P,)`` flat positions in visiting order (each visited once per iteration).
        source: ``(N, iterations, P)`` flat position copied into ``pos[k]`` at the k-th visit.
        size: Number of pixels ``H * W``.

    At the k-th visit, ``x[pos[k]] = x[source[k]]`` with the current ``x``. If ``source[k]`` was visited earlier in
    the same iteration, its current value is the one copied into it then, so the value comes from following the
    chain of copies back while each link points to an earlier visit; the chains are resolved by pointer jumping.
    """
    n, iterations, _ = source.shape
    visit = np.full(size, len(pos), dtype=np.int64)  # visiting rank; len(pos) = never visited
    visit[pos] = np.arange(len(pos))
    perm = np.tile(np.arange(size, dtype=np.intp), (n, 1))
    for it in range(iterations):
        src = source[:, it]  # (N, P)
        chained = visit[src] < np.arange(len(pos))  # the source was visited (and overwritten) earlier
        if chained.any():  # only when max_delta > 1: sources then lie on both sides of the visit
            # link[p] = source of p when that is an earlier visit, else p itself; jump to each chain's end
            link = np.tile(np.arange(size, dtype=np.intp), (n, 1))
            link[:, pos] = np.where(chained, src, pos[None, :])
            while True:
                nxt = np.take_along_axis(link, link, axis=1)
                if np.array_equal(nxt, link):
                    break
                link = nxt
            # the earliest visit of the chain copied the start-of-iteration value of its own source
            src = np.take_along_axis(src, visit[link[:, pos]], axis=1)
        perm[:, pos] = np.take_along_axis(perm, src, axis=1)
    return perm


@functools.lru_cache(maxsize=32)
def _disk(radius: float, alias_blur: float) -> np.ndarray:
    import cv2

    coords = np.arange(-8, 8 + 1) if radius <= 8 else np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(coords, coords)
    kernel = (xx ** 2 + yy ** 2 <= radius ** 2).astype(np.float32)
    kernel /= kernel.sum()
    ksize = (3, 3) if radius <= 8 else (5, 5)
    return cv2.GaussianBlur(kernel, ksize=ksize, sigmaX=alias_blur)


def defocus_blur(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """Convolution with a disk of radius ``c[0]`` (on a grid of at least 17 x 17), anti-aliased by a Gaussian."""
    import cv2

    kernel = _disk(float(c[0]), float(c[1]))
    x = _unit64(img)
    return np.clip(np.stack([cv2.filter2D(x[i], -1, kernel) for i in range(len(x))]), 0, 1) * 255


def motion_blur(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """ImageMagick-style motion blur ``(radius, sigma)`` along an angle drawn from U(-45, 45) degrees."""
    radius, sigma = c
    return np.stack([_motion_blur_one(img[i], radius, sigma, g.uniform(-45, 45)) for i, g in enumerate(rngs)])


def zoom_blur(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """Mean of the image and its centre zooms by each factor of ``np.arange(*c)``."""
    x = _unit(img)
    zooms = np.arange(*c)
    acc = np.zeros_like(x)
    for z in zooms:
        acc += _clipped_zoom(x, float(z))
    return np.clip((x + acc) / (len(zooms) + 1), 0, 1) * 255


def snow(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """Snow flakes: a thresholded, zoomed Gaussian layer motion-blurred downwards, over a whitened image.

    ``c = (loc, scale, zoom, threshold, blur_radius, blur_sigma, blend)``.
    """
    import cv2

    loc, scale, zoom, threshold, radius, sigma, blend = c
    n, h, w = img.shape[:3]
    x = _unit(img)
    layers = _stack(rngs, lambda g: g.normal(loc, scale, size=(h, w)))
    layers = _clipped_zoom(layers, zoom)
    layers[layers < threshold] = 0
    layers8 = (np.clip(layers, 0, 1) * 255).astype(np.uint8)
    flakes = np.stack([_motion_blur_one(layers8[i], radius, sigma, g.uniform(-135, -45))
                       for i, g in enumerate(rngs)])[..., None] / 255.0  # float64, as the original
    gray = np.stack([cv2.cvtColor(x[i], cv2.COLOR_RGB2GRAY) for i in range(n)])[..., None]
    x = blend * x + (1 - blend) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + flakes + np.rot90(flakes, k=2, axes=(1, 2)), 0, 1) * 255


def frost(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """``c[0] * x + c[1] * frost`` (0-255), the frost a random crop of one of 5 textures (frost1..frost5)."""
    import cv2

    _n, h, w = img.shape[:3]
    textures = list(frost_textures(_FROST_SCALE[table]))
    out = np.empty(img.shape, dtype=np.float64)
    for i, g in enumerate(rngs):
        tex = textures[int(g.integers(5))]
        th, tw = tex.shape[:2]
        if th < h or tw < w:  # enlarge a texture that cannot cover the image
            f = max(h / th, w / tw)
            tex = cv2.resize(tex, (math.ceil(tw * f), math.ceil(th * f)))
            th, tw = tex.shape[:2]
        y0 = int(g.integers(0, max(1, th - h)))
        x0 = int(g.integers(0, max(1, tw - w)))
        out[i] = c[0] * img[i] + c[1] * tex[y0:y0 + h, x0:x0 + w]
    return np.clip(out, 0, 255)


def fog(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """``(x + a * plasma) * max(x) / (max(x) + a)``, ``c = (a, wibbledecay)`` of the plasma fractal."""
    amount, decay = c
    h, w = img.shape[1:3]
    mapsize = 1 << max(1, (max(h, w) - 1).bit_length())
    x = _unit64(img)
    top = x.max(axis=(1, 2, 3), keepdims=True)
    plasma = _stack(rngs, lambda g: plasma_fractal(g, mapsize, decay)[:h, :w])
    x = x + amount * plasma[..., None]
    return np.clip(x * top / (top + amount), 0, 1) * 255


_EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)
_WATER = np.array([175, 238, 238], dtype=np.float32) / 255.0  # pale turquoise
_MUD = np.array([63, 42, 20], dtype=np.float32) / 255.0  # brown


def spatter(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """Water drops (mode 0: a pale-turquoise rim found from edges and a distance transform) or mud (mode 1).

    ``c = (loc, scale, sigma, threshold, intensity, mode)``: a liquid layer N(loc, scale), blurred (sigma),
    zeroed below ``threshold``.
    """
    import cv2

    loc, scale, sigma, threshold, intensity, mode = c
    h, w = img.shape[1:3]
    x = _unit(img)
    liquid = _gaussian(_stack(rngs, lambda g: g.normal(loc, scale, size=(h, w))), sigma)
    liquid[liquid < threshold] = 0
    if mode == 0:
        out = np.empty_like(x)
        for i in range(len(x)):
            layer = (np.clip(liquid[i], 0, 1) * 255).astype(np.uint8)
            dist = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)
            _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
            dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
            dist = cv2.blur(cv2.filter2D(dist, cv2.CV_8U, _EMBOSS), (3, 3)).astype(np.float32)
            m = layer.astype(np.float32) * dist
            peak = m.max()
            m = m / peak * intensity if peak > 0 else m
            out[i] = x[i] + m[..., None] * _WATER
        return np.clip(out, 0, 1) * 255
    m = _gaussian((liquid > threshold).astype(np.float32), intensity)
    m[m < 0.8] = 0
    m = m[..., None]
    return np.clip(x * (1 - m) + m * _MUD, 0, 1) * 255


def contrast(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """``(x - mean) * c + mean`` with the per-image, per-channel mean."""
    x = _unit64(img)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - mean) * c + mean, 0, 1) * 255


def brightness(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """HSV value + c (scikit-image colour conversions)."""
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(_unit64(img), channel_axis=-1)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(hsv2rgb(hsv, channel_axis=-1), 0, 1) * 255


def saturate(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """HSV saturation * c[0] + c[1]."""
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(_unit64(img), channel_axis=-1)
    hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv2rgb(hsv, channel_axis=-1), 0, 1) * 255


def jpeg_compression(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """A Pillow JPEG round trip at quality ``c``."""
    from PIL import Image

    out = np.empty(img.shape, dtype=np.uint8)
    for i in range(len(img)):
        buf = io.BytesIO()
        Image.fromarray(img[i]).save(buf, format="JPEG", quality=int(c))
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf).convert("RGB"))
    return out


def pixelate(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """Box-downsample to ``int(size * c)`` and box-upsample back (Pillow)."""
    from PIL import Image

    h, w = img.shape[1:3]
    small = (max(1, int(w * c)), max(1, int(h * c)))
    out = np.empty(img.shape, dtype=np.uint8)
    for i in range(len(img)):
        pil = Image.fromarray(img[i]).resize(small, Image.Resampling.BOX)
        out[i] = np.asarray(pil.resize((w, h), Image.Resampling.BOX))
    return out


def elastic_transform(img: np.ndarray, c: Any, rngs: Sequence[np.random.Generator], table: str) -> np.ndarray:
    """A random affine warp of 3 points, then a smooth random displacement field.

    ``c = (alpha, sigma, affine)`` in pixels at the reference size (scaled by ``min(H, W) / reference``): the points
    centre +- min(H, W) // 3 move by U(-affine, affine) (OpenCV, reflect-101 border); then dx, dy = alpha *
    gaussian(U(-1, 1) field, sigma, reflect, truncate 3) and bilinear resampling with reflection (scipy).
    """
    import cv2
    from scipy.ndimage import gaussian_filter, map_coordinates

    _n, h, w = img.shape[:3]
    f = min(h, w) / REFERENCE_SIZE[table]
    alpha, sigma, affine = (v * f for v in c)
    x = _unit(img)
    center = np.array([h, w], dtype=np.float32) // 2
    size = min(h, w) // 3
    pts1 = np.array([center + size, [center[0] + size, center[1] - size], center - size], dtype=np.float32)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.empty_like(x)
    for i, g in enumerate(rngs):
        pts2 = (pts1 + g.uniform(-affine, affine, size=pts1.shape)).astype(np.float32)
        warped = cv2.warpAffine(x[i], cv2.getAffineTransform(pts1, pts2), (w, h), borderMode=cv2.BORDER_REFLECT_101)
        dx = gaussian_filter(g.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
        dy = gaussian_filter(g.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
        coords = np.stack([yy + dy.astype(np.float32), xx + dx.astype(np.float32)])
        for ch in range(x.shape[-1]):
            out[i, ..., ch] = map_coordinates(warped[..., ch], coords, order=1, mode="reflect")
    return np.clip(out, 0, 1) * 255


_FUNCS: dict[str, Callable[..., np.ndarray]] = {name: globals()[name] for name in ALL_CORRUPTIONS}


@dataclass(frozen=True)
class _Checked:
    images: np.ndarray
    single: bool


def _check_images(images: Any) -> _Checked:
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise TypeError(f"images must be uint8 (H, W, 3) or (N, H, W, 3) arrays, got dtype {arr.dtype}")
    single = arr.ndim == 3
    if single:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images must be RGB (H, W, 3) or (N, H, W, 3), got shape {np.asarray(images).shape}")
    if min(arr.shape[1:3]) < 8:
        raise ValueError(f"images must be at least 8 x 8 pixels, got {arr.shape[1]} x {arr.shape[2]}")
    return _Checked(np.ascontiguousarray(arr), single)


def corrupt(images: np.ndarray, corruption: str, severity: int, *, params: str = "cifar", seed: int = 0,
            indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Corrupt uint8 RGB images with one corruption at one severity.

    Args:
        images: uint8 ``(H, W, 3)`` or ``(N, H, W, 3)``.
        corruption: One of :data:`ALL_CORRUPTIONS`.
        severity: 1..5.
        params: Parameter table, ``"cifar"`` (32 px images) or ``"imagenet"`` (224 px).
        seed: Base seed; with ``indices`` it fixes every random draw.
        indices: The dataset index of each image (default ``0..N-1``): image ``i`` uses the generator of
            ``(seed, corruption, severity, indices[i])``, whatever batch it is in.

    Returns:
        uint8 array of the input's shape.
    """
    if corruption not in _FUNCS:
        raise ValueError(f"unknown corruption {corruption!r}; known: {', '.join(ALL_CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    if params not in PARAMS:
        raise ValueError(f"params must be one of {', '.join(PARAMS)}, got {params!r}")
    checked = _check_images(images)
    n = len(checked.images)
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) != n:
        raise ValueError(f"indices has {len(idx)} entries for {n} images")
    rngs = [corruption_rng(seed, corruption, int(severity), int(i)) for i in idx]
    value = PARAMS[params][corruption][int(severity) - 1]
    out = _FUNCS[corruption](checked.images, value, rngs, params)
    out = out if out.dtype == np.uint8 else np.clip(out, 0, 255).astype(np.uint8)  # truncation, as np.uint8()
    return out[0] if checked.single else out
