"""The -C-bar corruptions of Mintun et al. (NeurIPS 2021), re-implemented, vectorized and explicitly seeded.

"On Interaction Between Augmentations and Corruptions in Natural Corruption Robustness" (Mintun, Kirillov and Xie,
NeurIPS 2021; code: ``facebookresearch/augmentation-corruption``, folder ``imagenet_c_bar``) built CIFAR-10-C-bar
and ImageNet-C-bar: ten corruptions each, chosen to be perceptually far from those of CIFAR-10-C / ImageNet-C.
There is no download; the sets must be generated (``timm-dynmix make-c --suite c-bar``).

Implemented here: the ten corruptions of CIFAR-10-C-bar (:data:`CBAR_CORRUPTIONS`), with the published severities
(``PARAMS_CBAR["cifar"]``: the original's ``cifar10_c_bar.csv``, the "severity" levels its ``corrupt.py`` maps to
parameters with ``level * maximum / 10``). Five of them are also in ImageNet-C-bar, whose severities
(``imagenet_c_bar.csv``) are ``PARAMS_CBAR["imagenet"]``. The other five ImageNet-C-bar corruptions
(:data:`IMAGENET_CBAR_ONLY`: caustic_refraction, cocentric_sine_waves, perlin_noise, plasma_noise,
single_frequency_greyscale) are not implemented: ``make-c`` cannot build a complete ImageNet-C-bar, but ``eval``
reads one made by the original script (:data:`IMAGENET_CBAR_CORRUPTIONS`).

Every corruption is written as "sample parameters, then apply": :func:`sample_cbar_params` draws one image's random
parameters from its own generator (:func:`timm_dynmix.robustness.corruptions.corruption_rng`, keyed by
``(seed, corruption, severity, image index)``), :func:`apply_cbar` applies a batch of them; :func:`corrupt_cbar`
does both. Given the same parameters, each function computes what the original's does, in the same floating-point
order (float64 where the original, run on numpy >= 2, computes in float64; float32 where it casts to float32), with
one exception: ``circular_motion_blur`` on images up to 64 px applies its 21 weighted rotations as one linear
operator in float64, precomputed once per process and severity (a few seconds), where the original sums 21 float32
rotations; this changes about 1e-5 of the pixels by one level (on the CIFAR-10 test set). Larger images are rotated
one by one as the original does. Computations follow the original as run on numpy >= 2, where a float32 array
times a numpy float64 scalar is float64 (numpy 1's value-based casting kept float32: the original, as run in 2020,
could differ by a level here and there).

The original's random draws come from numpy's global generator plus per-image ``RandomState(seed)`` streams; here
every draw (the random parameters *and* what the original draws from its inner ``RandomState``: noise phases, ray
lengths, line positions, cutout grids) comes from the image's generator. Outputs therefore agree with the original's
in distribution, not pixel for pixel; given equal parameters they agree exactly (except as said above).

Differences from the original code, deliberate:

* Images must be square (the original has a single ``im_size``) and at least 8 px.
* The geometric corruptions use the image's own size (``im_size``), as the original does; ``pinch_and_twirl`` keeps
  its rule of a 5 x 5 grid of twirls at 224 px and 3 x 3 otherwise.
* Per-pixel Python loops are replaced by array code over the whole batch (``lines``, ``checkerboard_cutout`` and
  ``transverse_chromatic_abberation`` loop over images; ``pinch_and_twirl`` over its grid cells, in the original's
  order, since each cell reads the cells warped before it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from timm_dynmix.robustness.corruptions import _check_images, corruption_rng

__all__ = [
    "CBAR_CORRUPTIONS", "IMAGENET_CBAR_CORRUPTIONS", "IMAGENET_CBAR_ONLY", "PARAMS_CBAR", "CBAR_PAPER",
    "corrupt_cbar", "sample_cbar_params", "apply_cbar", "cbar_corruptions",
]

CBAR_PAPER = ("Mintun, Kirillov and Xie, 'On Interaction Between Augmentations and Corruptions in Natural "
              "Corruption Robustness', NeurIPS 2021 (facebookresearch/augmentation-corruption)")

# the ten corruptions of CIFAR-10-C-bar, in the order of the original's cifar10_c_bar.csv
CBAR_CORRUPTIONS: tuple[str, ...] = (
    "blue_noise_sample", "checkerboard_cutout", "inverse_sparkles", "pinch_and_twirl", "ripple",
    "brownish_noise", "circular_motion_blur", "lines", "sparkles", "transverse_chromatic_abberation",
)
# the ten of ImageNet-C-bar, in the order of imagenet_c_bar.csv; IMAGENET_CBAR_ONLY are not implemented here
IMAGENET_CBAR_CORRUPTIONS: tuple[str, ...] = (
    "caustic_refraction", "inverse_sparkles", "sparkles", "perlin_noise", "blue_noise_sample",
    "plasma_noise", "checkerboard_cutout", "cocentric_sine_waves", "single_frequency_greyscale", "brownish_noise",
)
IMAGENET_CBAR_ONLY: tuple[str, ...] = tuple(c for c in IMAGENET_CBAR_CORRUPTIONS if c not in CBAR_CORRUPTIONS)

# Severity levels 1..5 of each corruption (the original's csv files); the functions below map a level to
# parameters as the original's corrupt.py does (float_parameter(level, maximum) = level * maximum / 10).
PARAMS_CBAR: dict[str, dict[str, tuple[float, ...]]] = {
    "cifar": {  # cifar10_c_bar.csv
        "blue_noise_sample": (0.7, 1.4, 2.1, 3.5, 4.2),
        "checkerboard_cutout": (1.0, 2.0, 3.0, 4.0, 5.0),
        "inverse_sparkles": (1.0, 1.5, 2.5, 4.5, 5.0),
        "pinch_and_twirl": (5.5, 6.0, 6.5, 8.5, 10.0),
        "ripple": (5.5, 6.0, 6.5, 7.5, 8.0),
        "brownish_noise": (2.5, 4.0, 5.5, 6.5, 7.0),
        "circular_motion_blur": (2.8, 3.6, 4.4, 5.2, 6.0),
        "lines": (0.5, 1.0, 1.5, 2.0, 2.5),
        "sparkles": (0.7, 3.5, 5.6, 6.3, 7.0),
        "transverse_chromatic_abberation": (1.0, 2.0, 5.0, 9.0, 10.0),
    },
    "imagenet": {  # imagenet_c_bar.csv, the five corruptions shared with CIFAR-10-C-bar
        "inverse_sparkles": (1.0, 2.0, 4.0, 9.0, 10.0),
        "sparkles": (1.0, 2.0, 3.0, 5.0, 6.0),
        "blue_noise_sample": (0.8, 1.6, 2.4, 4.0, 5.6),
        "checkerboard_cutout": (2.0, 3.0, 4.0, 5.0, 6.0),
        "brownish_noise": (1.0, 2.0, 3.0, 4.0, 5.0),
    },
}


def cbar_corruptions(params: str) -> tuple[str, ...]:
    """The corruptions implemented for a parameter table (``"cifar"``: all ten, ``"imagenet"``: five)."""
    if params not in PARAMS_CBAR:
        raise ValueError(f"params must be one of {', '.join(PARAMS_CBAR)}, got {params!r}")
    return tuple(c for c in CBAR_CORRUPTIONS if c in PARAMS_CBAR[params])


def _fp(level: float, maxval: float) -> float:
    """The original's ``float_parameter``."""
    return float(level) * maxval / 10.0


# ---- shared helpers ----------------------------------------------------------------------------------------------
def _bilinear(img: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """The original's ``bilinear_interpolation`` (zero outside the image) of a batch, at (N, h, w) row/col points.

    Same arithmetic as the original, per channel: ``al = lu (1 - p1 + u) + ld (1 - d + p1)``, likewise ``ar``, and
    ``al (1 - p0 + l) + ar (1 - r + p0)``, in float64.
    """
    n, h, w = img.shape[:3]
    lo = np.floor(p0).astype(np.int64)
    up = np.floor(p1).astype(np.int64)
    ri, dn = lo + 1, up + 1
    batch = np.arange(n).reshape(-1, *([1] * (p0.ndim - 1)))

    def at(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ok = (a >= 0) & (a < h) & (b >= 0) & (b < w)
        v = img[batch, np.clip(a, 0, h - 1), np.clip(b, 0, w - 1)]
        return np.where(ok[..., None], v, 0)

    lu, ld, ru, rd = at(lo, up), at(lo, dn), at(ri, up), at(ri, dn)
    wu = (1.0 - p1 + up)[..., None]
    wd = (1.0 - dn + p1)[..., None]
    al = lu * wu + ld * wd
    ar = ru * wu + rd * wd
    return al * (1.0 - p0 + lo)[..., None] + ar * (1.0 - ri + p0)[..., None]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row (y) and column (x) index arrays of a size x size image, int64."""
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return y, x


def _to_uint8(out: np.ndarray) -> np.ndarray:
    """``np.clip(out, 0, 255).astype(np.uint8)``: truncation, as the original."""
    return np.clip(out, 0, 255).astype(np.uint8)


# ---- noises: blue_noise_sample, brownish_noise --------------------------------------------------------------------
def _sample_phases(rng: np.random.Generator, size: int) -> np.ndarray:
    """The Fourier phases of one noise plane: (size, size // 2) uniform in [0, 2 pi), plus (size // 2, 1) when odd."""
    half = rng.uniform(0.0, 2 * np.pi, size=(size, size // 2))
    if size % 2 == 0:
        return half
    return np.concatenate([half.ravel(), rng.uniform(0.0, 2 * np.pi, size=size // 2)])


def _full_phases(phases: np.ndarray, size: int) -> np.ndarray:
    """(..., size, size) phase planes from the sampled halves (the original's mirrored concatenation)."""
    lead = phases.shape[:-1] if size % 2 else phases.shape[:-2]
    if size % 2 == 0:
        return np.concatenate([phases, phases[..., ::-1, ::-1]], axis=-1)
    half = phases[..., :size * (size // 2)].reshape(*lead, size, size // 2)
    centre = phases[..., size * (size // 2):].reshape(*lead, size // 2, 1)
    centre = np.concatenate([centre, np.zeros((*lead, 1, 1)), centre[..., ::-1, :]], axis=-2)
    return np.concatenate([half, centre, half[..., ::-1, ::-1]], axis=-1)


@functools.lru_cache(maxsize=16)
def _power(size: int, kind: str) -> np.ndarray:
    """The original's spectrum: distance to the centre (``blue``) or ``1 / (distance^2 + 1)`` (``brown``)."""
    y, x = _grid(size)
    c = size / 2
    dist = np.sqrt((x - c) ** 2 + (y - c) ** 2)
    return dist if kind == "blue" else 1 / (dist ** 2 + 1)


def _fourier_noise(phases: np.ndarray, size: int, kind: str) -> np.ndarray:
    """Real part of the inverse FFT of ``power * exp(i phases)`` rolled by size // 2, divided by its std, per plane."""
    from scipy.fft import ifft2

    ph = _full_phases(phases, size)
    spectrum = _power(size, kind) * (np.cos(ph) + np.sin(ph) * 1j)
    spectrum = np.roll(spectrum, (size // 2, size // 2), axis=(-2, -1))
    noise = np.real(ifft2(spectrum, axes=(-2, -1)))
    return noise / np.std(noise, axis=(-2, -1), keepdims=True)


def _sample_blue_noise_sample(rng: np.random.Generator, level: float, size: int) -> dict[str, Any]:
    return {"phases": _sample_phases(rng, size), "threshold": _fp(level, 3.0) - 2.5}


def _apply_blue_noise_sample(img: np.ndarray, params: Sequence[dict[str, Any]]) -> np.ndarray:
    size = img.shape[1]
    noise = _fourier_noise(np.stack([p["phases"] for p in params]), size, "blue")
    mask = noise > np.array([p["threshold"] for p in params]).reshape(-1, 1, 1)
    return _to_uint8(img * mask[..., None])


def _sample_brownish_noise(rng: np.random.Generator, level: float, size: int) -> dict[str, Any]:
    return {"phases": np.stack([_sample_phases(rng, size) for _ in range(3)]), "intensity": _fp(level, 64)}


def _apply_brownish_noise(img: np.ndarray, params: Sequence[dict[str, Any]]) -> np.ndarray:
    size = img.shape[1]
    noise = _fourier_noise(np.stack([p["phases"] for p in params]), size, "brown")  # (N, 3, H, W)
    intensity = np.array([p["intensity"] for p in params]).reshape(-1, 1, 1, 1)
    return _to_uint8(img + intensity * noise.transpose(0, 2, 3, 1))


# ---- checkerboard_cutout ------------------------------------------------------------------------------------------
def _sample_checkerboard_cutout(rng: np.random.Generator, level: float, size: int) -> dict[str, Any]:
    angle = rng.uniform(0.0, 2 * np.pi)
    scale = float(np.maximum(rng.uniform(0.1, 0.25) * size, 1))
    fraction = _fp(level, 1.0)
    cells = int(4 * size // scale)
    return {"angle": angle, "scale": scale, "fraction": fraction,
            "grid": rng.uniform(size=(cells, cells)) < fraction}


def _apply_checkerboard_cutout(img: np.ndarray, params: Sequence[dict[str, Any]]) -> np.ndarray:
    y, x = _grid(img.shape[1])
    out = img.copy()
    for k, p in enumerate(params):
        a, s = p["angle"], p["scale"]
        nx = (np.cos(a) * y + np.sin(a) * x) / s
        ny = (-np.sin(a) * y + np.cos(a) * x) / s
        same = np.trunc(np.mod(nx, 2)) == np.trunc(np.mod(ny, 2))
        # python int() truncates toward zero, and a negative index counts from the end, as in the original
        cut = same & p["grid"][np.trunc(nx).astype(np.int64), np.trunc(ny).astype(np.int64)]
        out[k][cut] = 128
    return out


# ---- sparkles, inverse_sparkles -----------------------------------------------------------------------------------
def _ray_weight(size: int, centers: np.ndarray, lengths: np.ndarray, rays: np.ndarray,
                exponent: float) -> np.ndarray:
    """The original's sparkle weight ``f`` in [0, 1] of every pixel, for one star per image.

    Args:
        centers: (N, 2) row/col centres. lengths: (N, R) ray lengths (the first ``rays[k]`` used). rays: (N,).
    """
    y, x = _grid(size)
    dp0 = y[None] - centers[:, 0, None, None]
    dp1 = x[None] - centers[:, 1, None, None]
    dist = np.sqrt(dp0 * dp0 + dp1 * dp1)
    angle = np.arctan2(dp1, dp0)
    nr = rays.reshape(-1, 1, 1)
    d = (angle + np.pi) / (2 * np.pi) * nr
    i = np.trunc(d).astype(np.int64)
    f = d - i
    lo = np.take_along_axis(lengths, (i % nr).reshape(len(rays), -1), axis=1).reshape(i.shape)
    hi = np.take_along_axis(lengths, ((i + 1) % nr).reshape(len(rays), -1), axis=1).reshape(i.shape)
    length = lo + f * (hi - lo)
    g = length ** 2 / (dist ** 2 + 1e-4)
    g = g ** exponent
    f = f - 0.5
    f = 1 - f ** 2
    f = f * g
    return np.clip(f, 0, 1)


def _sample_sparkles(rng: np.random.Generator, level: float, size: int) -> dict[str, Any]:
    centers = rng.uniform(0.0, size, size=(5, 2))
    radius = _fp(level, 0.1) * size
    nrays = rng.integers(50, 200, size=5)
    lengths = [np.maximum(1, radius + 25 / 100.0 * radius * rng.standard_normal(int(r))) for r in nrays]
    return {"centers": centers, "radius": radius, "nrays": nrays, "ray_lengths": lengths}


def _apply_sparkles(img: np.ndarray, params: Sequence[dict[str, Any]]) -> np.ndarray:
    size = img.shape[1]
    out = img
    for star in range(5):
        centers = np.stack([p["centers"][star] for p in params])
        rays = np.array([p["nrays"][star] for p in params], dtype=np.int64)
        lengths = np.zeros((len(params), int(rays.max())))
        for k, p in enumerate(params):
            lengths[k, :rays[k]] = p["ray_lengths"][star]
        f = _ray_weight(size, centers, lengths, rays, (100 - 50) / 50.0)
        if any(p["radius"] == 0 for p in params):  # the original skips the ray weight when the radius is 0
            zero = np.array([p["radius"] == 0 for p in params])
            f[zero] = _no_ray_weight(size, centers[zero], rays[zero])
        value = out.astype(np.float32).astype(np.float64)
        out = value + f[..., None] * (255 - value)
    return _to_uint8(out)


def _no_ray_weight(size: int, centers: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """The sparkle weight when the radius is 0: the fractional ray position, clipped (the original's branch)."""
    y, x = _grid(size)
    dp0 = y[None] - centers[:, 0, None, None]
    dp1 = x[None] - centers[:, 1, None, None]
    d = (np.arctan2(dp1, dp0) + np.pi) / (2 * np.pi) * rays.reshape(-1, 1, 1)
    return np.clip(d - np.trunc(d), 0, 1)


def _sample_inverse_sparkles(rng: np.random.Generator, level: float, size: int) -> dict[str, Any]:
    center = rng.uniform(0.25, 0.75, size=2) * size
    radius = 0.25 * size
    amount = 100 - _fp(level, 65)
    rays = int(rng.integers(50, 200))
    lengths = radius + 25 / 100.0 * radius * rng.standard_normal(rays)
    return {"center": center, "radius": radius, "amount": amount, "rays": rays, "ray_lengths": lengths}


def _apply_inverse_sparkles(img: np.ndarray, params: Sequence[dict[str, Any]]) -> np.ndarray:
    size = img.shape[1]
    rays = np.array([p["rays"] for p in params], dtype=np.int64)
    lengths = np.zeros((len(params), int(rays.max())))
    for k, p in enumerate(params):
        lengths[k, :rays[k]] = p["ray_lengths"]
    exponents = {(100 - p["amount"]) / 50.0 for p in params}
    centers = np.stack([p["center"] for p in params])
    f = np.empty((len(params), size, size))
    for e in exponents:  # one exponent per severity; grouped to keep the scalar power of the original
        sel = np.array([(100 - p["amount"]) / 50.0 == e for p in params])
        f[sel] = _ray_weight(size, centers[sel], lengths[sel], rays[sel], e)
    value = img.astype(np.float32).astype(np.float64)
    return _to_uint8(255 + f[..., None] * (value - 255))


# ---- pinch_and_twirl, ripple --------------------------------------------------------------------------------------
def _twirl_grid(size: int) -> int:
    return 5 if size == 224 else 3


def _sample_pinch_and_twirl(rng: np.random.Generator, level: float, size: int) -> dict[str, Any]:
    n = _twirl_grid(size)
    signs = np.array([rng.choice([1, -1]) for _ in range(n * n)])
    return {"angles": (signs * _fp(level, np.pi / 2)).reshape(n, n), "amount": _fp(level, 0.4) + 0.1}


def _apply_pinch_and_twirl(img: np.ndarray, params: Sequence[dict[str, Any]]) -> np.ndarray:
    size = img.shape[1]
    n = _twirl_grid(size)
    cell = size // n
    radius = cell / 2
    amount = np.array([p["amount"] for p in params]).reshape(-1, 1, 1)
    angles = np.stack([p["angles"] for p in params])
    out = img.astype(np.float32)
    for i in range(n):  # the original's order: columns outside, rows inside; each cell reads the warped ones
        for j in range(n):
            left, top = i * cell, j * cell
            y, x = np.meshgrid(np.arange(top, top + cell), np.arange(left, left + cell), indexing="ij")
            c0, c1 = top + radius, left + radius
            dx = np.broadcast_to(y - c0, (len(params), cell, cell)).astype(np.float64)
            dy = np.broadcast_to(x - c1, (len(params), cell, cell)).astype(np.float64)
            dist = np.sqrt(dx * dx + dy * dy)
            keep = (dist > radius) | (np.round(dist, 3) == 0.0)
            d = dist / radius
            with np.errstate(divide="ignore", invalid="ignore"):  # inf/nan only at the kept centre pixel
                t = np.sin(np.pi * 0.5 * d) ** (-amount)
                dx, dy = dx * t, dy * t
                e = 1 - d
                a = angles[:, i, j].reshape(-1, 1, 1) * (e ** 2)
                p0 = np.where(keep, y, c0 + (dx * np.cos(a) - dy * np.sin(a)))
                p1 = np.where(keep, x, c1 + (dx * np.sin(a) + dy * np.cos(a)))
            out[:, top:top + cell, left:left + cell] = _bilinear(out, p0, p1)
    return _to_uint8(out)


def _sample_ripple(rng: np.random.Generator, level: float, size: int) -> dict[str, Any]:
    amplitudes = np.array([_fp(level, 0.025)] * 2) * size
    wavelengths = rng.uniform(0.1, 0.3, size=2) * size
    phases = rng.uniform(0.0, 2 * np.pi, size=2)
    return {"amplitudes": amplitudes, "wavelengths": wavelengths, "phases": phases}


def _apply_ripple(img: np.ndarray, params: Sequence[dict[str, Any]]) -> np.ndarray:
    y, x = _grid(img.shape[1])
    amp, wl, ph = (np.stack([p[k] for p in params])[:, :, None, None]
                   for k in ("amplitudes", "wavelengths", "phases"))
    p0 = y + amp[:, 0] * np.sin(2 * np.pi * y / wl[:, 0] + ph[:, 0])
    p1 = x + amp[:, 1] * np.sin(2 * np.pi * x / wl[:, 1] + ph[:, 1])
    return _to_uint8(_bilinear(img, p0, p1))


# ---- lines ---------------------------------------------------------------------------------------------------------
def _sample_lines(rng: np.random.Generator, level: float, size: int) -> dict[str, Any]:
    density = _fp(level, 1.0)
    angle = rng.uniform(0.0, 2 * np.pi)
    variation = rng.uniform(0.1, 1.0)
    num = int(density * size)
    return {"angle": angle, "angle_variation": variation, "length": 1.0, "draws": rng.uniform(size=(num, 3))}


def _apply_lines(img: np.ndarray, params: Sequence[dict[str, Any]]) -> np.ndarray:
    from skimage.draw import line_aa

    size = img.shape[1]
    out = img.copy()
    for k, p in enumerate(params):
        length = p["length"] * size
        for ux, uy, ua in p["draws"]:
            x, y = size * ux, size * uy
            a = p["angle"] + 2 * np.pi * p["angle_variation"] * (ua - 0.5)
            s, c = np.sin(a) * length, np.cos(a) * length
            rr, cc, val = line_aa(int(x - c), int(y - s), int(x + c), int(y + s))
            inside = (rr >= 0) & (cc >= 0) & (rr < size) & (cc < size)
            rr, cc, val = rr[inside], cc[inside], val[inside].reshape(-1, 1)
            out[k, rr, cc, :] = (1.0 - val) * out[k, rr, cc, :].astype(np.float32) + val * 128
    return out


# ---- transverse_chromatic_abberation, circular_motion_blur ------------------------------------------------------
def _sample_transverse_chromatic_abberation(rng: np.random.Generator, level: float, size: int) -> dict[str, Any]:
    scale = _fp(level, 0.5)
    return {"scales": np.array([1.0, 1.0 + scale / 2, 1.0 + scale])[rng.permutation(3)]}


def _apply_transverse_chromatic_abberation(img: np.ndarray, params: Sequence[dict[str, Any]]) -> np.ndarray:
    from scipy.ndimage import zoom

    size = img.shape[1]
    out = img.copy()
    for k, p in enumerate(params):
        for c in range(3):
            zoomed = zoom(img[k, :, :, c], p["scales"][c], prefilter=False)
            edge = (zoomed.shape[0] - size) // 2
            out[k, :, :, c] = zoomed[edge:edge + size, edge:edge + size]
    return out


_CIRCULAR_STEPS = 21
# circular_motion_blur as one dense (size^2, size^2) operator for images up to this size, whatever the batch size (so
# that the output does not depend on the batching); built once per process and level by rotating size^2 basis planes
# 21 times (a few seconds at 32 px)
_OPERATOR_MAX_SIZE = 64


def _circular_angles(amount: float) -> tuple[list[float], list[np.float64]]:
    num = _CIRCULAR_STEPS
    angles = [(2 * i / (num - 1) - 1) * amount for i in range(num)]
    factors = [np.exp(-2 * (2 * i / (num - 1) - 1) ** 2) for i in range(num)]  # numpy float64 scalars, as there
    return angles, factors


@functools.lru_cache(maxsize=8)
def _circular_operator(size: int, amount: float) -> np.ndarray:
    """(size^2, size^2) float64: the weighted mean of the 21 rotations of one plane (scipy's cubic spline rotate)."""
    from scipy.ndimage import rotate

    angles, factors = _circular_angles(amount)
    basis = np.eye(size * size, dtype=np.float64).reshape(size * size, size, size)
    op = np.zeros((size * size, size * size))
    for a, f in zip(angles, factors):
        op += f * rotate(basis, a, axes=(2, 1), reshape=False).reshape(size * size, -1)
    return op / sum(factors)  # row k: the response to pixel k, so a batch of rows x maps to x @ op


def _circular_blur_direct(img: np.ndarray, amount: float) -> np.ndarray:
    """The original's computation: 21 float32 rotations (scipy ``rotate``, order 3), weighted, summed in float32."""
    from scipy.ndimage import rotate

    angles, factors = _circular_angles(amount)
    out = np.empty_like(img)
    for k in range(len(img)):  # rotate() of the (H, W, 3) image exactly as the original calls it
        x = img[k].astype(np.float32) / 255
        acc = np.zeros_like(x)
        for a, f in zip(angles, factors):
            acc += f * rotate(x, a, reshape=False)
        acc /= sum(factors)
        out[k] = _to_uint8(acc * 255)
    return out


def _sample_circular_motion_blur(rng: np.random.Generator, level: float, size: int) -> dict[str, Any]:
    return {"amount": _fp(level, 15)}


def _apply_circular_motion_blur(img: np.ndarray, params: Sequence[dict[str, Any]]) -> np.ndarray:
    size = img.shape[1]
    out = np.empty_like(img)
    for amount in sorted({p["amount"] for p in params}):
        sel = np.array([p["amount"] == amount for p in params])
        if size > _OPERATOR_MAX_SIZE:
            out[sel] = _circular_blur_direct(img[sel], amount)
            continue
        planes = (img[sel].astype(np.float32) / 255).transpose(0, 3, 1, 2).reshape(-1, size * size)
        blurred = (planes.astype(np.float64) @ _circular_operator(size, amount)).astype(np.float32)
        out[sel] = _to_uint8(blurred.reshape(-1, 3, size, size).transpose(0, 2, 3, 1) * 255)
    return out


_SAMPLE: dict[str, Callable[[np.random.Generator, float, int], dict[str, Any]]] = {
    name: globals()[f"_sample_{name}"] for name in CBAR_CORRUPTIONS}
_APPLY: dict[str, Callable[[np.ndarray, Sequence[dict[str, Any]]], np.ndarray]] = {
    name: globals()[f"_apply_{name}"] for name in CBAR_CORRUPTIONS}


def _check_name(corruption: str) -> None:
    if corruption not in _SAMPLE:
        missing = (f" ({corruption} is an ImageNet-C-bar corruption not implemented here)"
                   if corruption in IMAGENET_CBAR_ONLY else "")
        raise ValueError(f"unknown C-bar corruption {corruption!r}{missing}; known: {', '.join(CBAR_CORRUPTIONS)}")


def _check_square(images: np.ndarray) -> int:
    h, w = images.shape[1:3]
    if h != w:
        raise ValueError(f"the C-bar corruptions need square images (the original's im_size), got {h} x {w}")
    return int(h)


def sample_cbar_params(corruption: str, level: float, size: int, rng: np.random.Generator) -> dict[str, Any]:
    """Draw the random parameters of one image (sample step).

    Args:
        corruption: One of :data:`CBAR_CORRUPTIONS`.
        level: The severity level of the original (a value of :data:`PARAMS_CBAR`, e.g. 0.7).
        size: The image side, pixels.
        rng: The image's generator.

    Returns:
        A dict for :func:`apply_cbar`: the original's parameters plus the draws it makes from its inner
        ``RandomState`` (noise phases, ray lengths, line positions, cutout grid).
    """
    _check_name(corruption)
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    return _SAMPLE[corruption](rng, float(level), int(size))


def apply_cbar(images: np.ndarray, corruption: str, params: Sequence[dict[str, Any]]) -> np.ndarray:
    """Apply one corruption to a batch, one parameter dict (:func:`sample_cbar_params`) per image (apply step).

    Args:
        images: uint8 ``(N, S, S, 3)`` or ``(S, S, 3)`` (then ``params`` holds one dict).
        corruption: One of :data:`CBAR_CORRUPTIONS`.
        params: ``N`` dicts.

    Returns:
        uint8 array of the input's shape.
    """
    _check_name(corruption)
    checked = _check_images(images)
    _check_square(checked.images)
    if len(params) != len(checked.images):
        raise ValueError(f"got {len(params)} parameter dicts for {len(checked.images)} images")
    out = _APPLY[corruption](checked.images, list(params))
    return out[0] if checked.single else out


def corrupt_cbar(images: np.ndarray, corruption: str, severity: int, *, params: str = "cifar", seed: int = 0,
                 indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Corrupt uint8 RGB images with one C-bar corruption at one severity (1..5).

    Args:
        images: uint8 ``(S, S, 3)`` or ``(N, S, S, 3)``, square.
        corruption: One of :func:`cbar_corruptions` ``(params)``.
        severity: 1..5.
        params: Severity table, ``"cifar"`` (CIFAR-10-C-bar) or ``"imagenet"`` (ImageNet-C-bar, five corruptions).
        seed: Base seed; with ``indices`` it fixes every random draw.
        indices: The dataset index of each image (default ``0..N-1``): image ``i`` draws from the generator of
            ``(seed, corruption, severity, indices[i])``, whatever batch it is in.

    Returns:
        uint8 array of the input's shape.
    """
    _check_name(corruption)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    if corruption not in cbar_corruptions(params):
        raise ValueError(f"{corruption} has no {params!r} severities; {params} has: "
                         f"{', '.join(cbar_corruptions(params))}")
    checked = _check_images(images)
    size = _check_square(checked.images)
    n = len(checked.images)
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) != n:
        raise ValueError(f"indices has {len(idx)} entries for {n} images")
    level = PARAMS_CBAR[params][corruption][int(severity) - 1]
    drawn = [_SAMPLE[corruption](corruption_rng(seed, corruption, int(severity), int(i)), level, size) for i in idx]
    out = _APPLY[corruption](checked.images, drawn)
    return out[0] if checked.single else out
