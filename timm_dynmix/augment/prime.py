"""``PrimeBatch``: PRIME (Modas et al., ECCV 2022) on image batches, every image with its own random draws.

PRIME mixes ``width`` chains of random primitives from three families, each applied to float images in [0, 1]:

* **spectral**: a random ``k x k`` filter ``w = sigma * N(0, I) + delta``, ``sigma ~ U(0, sigma_max)``, applied to
  every channel of an image (``F.conv2d``, zero padding ``k // 2``), then clipped to [0, 1];
* **spatial**: a smooth random diffeomorphism: displacement fields ``u, v = sum_ij c_ij e_ij sin(pi i x)
  sin(pi j y)`` with ``c_ij ~ N(0, 1)``, ``e_ij = 1 / r`` for ``r = sqrt(i^2 + j^2) < cut + 0.5`` (else 0),
  ``dx = sqrt(T) * u * W``, ``dy = sqrt(T) * v * H``, the image resampled bilinearly at ``(x - dx, y - dy)``
  clamped to the image. ``cut`` and ``T`` are drawn as in the reference's ``Diffeo(stochastic=True)``: ``cutmax ~
  U{3, ..., cut_max}``, ``cut = floor(2 + Beta(1/2, 1/2) * (cutmax - 1))``, ``T = T1 + Beta(1/2, 1/2) * (T2 - T1)``
  with the reference's ``temperature_range`` ``T1 = 1 / (pi n^2 log c)``, ``T2 = max(T1, 4 / (pi^3 c^2 log c))``,
  ``c = cut + 1e-6``, ``n = min(H, W)`` (the reference supports square images only, where ``n`` is the side);
* **color**: ``x + sum_k c_k sin(pi k x)`` per channel, ``c_k ~ sqrt(T) * N(0, 1)``, ``T ~ U(0, temp_max)``, over
  the frequencies ``k = 1..cut`` with ``cut ~ U{1, ..., color_cut}``, or, with a bandwidth ``b > 0`` (ImageNet), a
  band ``k = k0..min(k0 + b - 1, cut)`` with ``k0 ~ U{1, ..., cut}``; then clipped to [0, 1].

Every chain has a depth ``~ U{1, ..., max_depth}``; each step applies one family chosen uniformly among the
enabled ones. A view is ``(1 - m) * clean + m * sum_c w_c chain_c`` with ``w ~ Dirichlet(1, ..., 1)`` and
``m ~ Beta(1, 1)``, drawn per view and image.

Config strings (``prime``: the reference's CIFAR-10 configuration; ``prime-imagenet``: its ImageNet one; either
followed by keys that override it). Sections are separated by ``-``, each a key letter immediately followed by its
value, as in timm's ``augmix-m3-w3``; :meth:`PrimeConfig.to_string` writes every key, and parses back to an equal
config.

=====  ==================  ==========================================================  =========  ============
key    field               allowed values                                              ``prime``  ``imagenet``
=====  ==================  ==========================================================  =========  ============
``w``  ``width``           chains mixed per view, 1 to 8                               ``3``      ``3``
``d``  ``max_depth``       chain depth drawn uniformly in ``1..d``, 1 to 8             ``3``      ``3``
``n``  ``num_mixes``       PRIME views per image (besides the clean one), 1 to 8       ``2``      ``2``
``j``  ``jsd_weight``      JSD consistency weight (lambda) for the training loss,      ``12``     ``12``
                           0 to 1000 (PRIME's paper: 12 on CIFAR)
``o``  ``families``        enabled families joined by ``.``: ``spectral``,             all three  all three
                           ``spatial``, ``color`` (each at most once)
``k``  ``kernel_size``     spectral filter size, odd, 1 to 15                          ``3``      ``3``
``s``  ``sigma``           spectral ``sigma_max`` (sigma ~ U(0, s)), 0 to 100          ``4``      ``4``
``i``  ``identity``        where the filter's delta sits: ``center`` or ``corner``     ``center`` ``center``
                           (the reference's tap; see below)
``m``  ``diffeo_cut``      spatial ``cut_max``, 3 to 1000                              ``100``    ``500``
``r``  ``color_cut``       color ``cut`` maximum, 1 to 1000                            ``100``    ``500``
``t``  ``color_temp``      color ``T`` maximum, in (0, 1]                              ``0.01``   ``0.05``
``b``  ``color_band``      color bandwidth, 0 (all frequencies ``1..cut``) to 1000     ``0``      ``20``
=====  ==================  ==========================================================  =========  ============

The reference's other Diffeo parameters are fixed at the values of both its configs (``sT = rT = scut = rcut =
1``, hence the Beta(1/2, 1/2) draws, ``cutmin = 2``, ``alpha = 1``). The reference trains ImageNet without the JSD
loss (``no_jsd = True``) and CIFAR with it (``lambda = 12``); both presets here keep ``n2-j12`` (the training step
reads ``num_mixes`` and ``jsd_weight``): ImageNet as the reference ran it needs ``-j0`` and only one view.

Differences from the reference (``amodas/PRIME-augmentations``, ``utils/prime.py``, ``utils/diffeomorphism.py``,
``utils/color_jitter.py``, ``utils/rand_filter.py``), all deliberate:

* **Per-sample draws.** The reference calls each primitive once per chain step on the whole batch of chains
  (``width * B`` images), so one ``sigma`` (spectral), one ``(cutmax, cut, T)`` and one displacement field
  (spatial), and one ``(cut, T)`` and band start ``k0`` (color) are shared by every chain of every image of the
  batch at that step; the filter weights and the color coefficients are drawn per chain. Here these shared draws
  are made per image, view and step, and shared by the ``width`` chains of that view only (the chains of one view
  are correlated exactly as in the reference, where they are always part of the same call), while depths,
  families, filter weights and color coefficients stay per chain. So one view of an image has exactly the
  reference's distribution (the reference's, run on one image at a time), but it does not depend on the other images
  of the batch: views are reproducible per sample (``seed`` / ``indices``) and a batch is more diverse.
* **The filter's delta.** The reference builds ``delta`` with ``center = ceil(k / 2)``, which for ``k = 3`` is
  index 2 of each axis (element ``[2, 2]``, a corner, flat index 8) instead of 1. With ``F.conv2d``
  (cross-correlation) the identity part of the filter then reads the pixel one step down and right, so the
  "identity" moves the image one pixel up-left and fills the last row and column with zeros. The paper defines
  ``delta`` as the identity (Dirac) filter, so the default here is ``icenter`` (tap ``[k // 2, k // 2]``);
  ``icorner`` reproduces the reference's ``[ceil(k / 2), ceil(k / 2)]`` (for ``k = 1`` that is outside the
  kernel, so ``k1`` requires ``icenter``). The statistics of both are in ``tests/augment/test_prime.py``.
* **Mixing space.** The reference mixes the *normalized* chains, ``(1 - m) N(x) + m sum_c w_c N(x_c)`` with ``N``
  its per-channel ``(x - mean) / std``; since ``N`` is affine and the weights sum to 1 this equals ``N`` of the same
  mix in [0, 1], which is what is computed here (no clipping after the mix, as in the reference); :meth:`views`
  normalizes afterwards, :meth:`forward` returns the [0, 1] mix (uint8: rounded).
* **Displacement-field noise.** The ``cut x cut`` Gaussian coefficients of a field (up to 250,000 for ImageNet)
  are not stored in the params: they hold a 62-bit noise key per (view, step, image), shared by the view's chains,
  and ``apply`` derives the coefficient of mode ``(i, j)`` of field ``u`` or ``v`` from that key and the mode with
  a counter-based hash (two 32-bit rounds of a multiply-xorshift hash, then Box-Muller), on the batch's device.
  They are standard normal and independent across modes and keys, like the reference's ``torch.randn``, but not
  the same numbers.
* The color coefficients are drawn for 3 channels (a 1-channel image uses the first); the reference's NaN guard of
  the filter (for mixed precision) is not needed in float32 and is left out.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from timm_dynmix.augment.batched import _channel_stats, _check_batch, _check_generator, _to_storage
from timm_dynmix.augment.config import as_int, as_number, format_number
from timm_dynmix.rng import derive_seed

__all__ = ["PrimeBatch", "PrimeConfig", "PrimeParams", "parse_prime_config", "format_prime_config", "FAMILIES",
           "PRIME_PREFIX", "SEED_SPLIT"]

PRIME_PREFIX = "prime"
SEED_SPLIT = "prime"  # the ``split`` of ``derive_seed`` for per-sample draws
FAMILIES = ("spectral", "spatial", "color")
IDENTITY_TAPS = ("center", "corner")
DIFFEO_CUT_MIN = 2  # the reference's cutmin
COLOR_CHANNELS = 3  # color coefficients are drawn for 3 channels
_CPU_CHUNK_FLOATS = 1 << 22  # floats per chunk of the field / color computations (16 MiB)
_CUDA_CHUNK_FLOATS = 1 << 28


# ----------------------------------------------------------------------------------------------------------------
# config
_KEYS = {"w": "width", "d": "max_depth", "n": "num_mixes", "j": "jsd_weight", "o": "families", "k": "kernel_size",
         "s": "sigma", "i": "identity", "m": "diffeo_cut", "r": "color_cut", "t": "color_temp", "b": "color_band"}
_SECTION_RE = re.compile(r"^([a-z])(.+)$")


@dataclass(frozen=True)
class PrimeConfig:
    """All parameters of a PRIME augmentation (defaults: the reference's CIFAR-10 configuration).

    Args:
        width: Chains mixed per view (``mixture_width``).
        max_depth: Chain depths are drawn uniformly in ``1..max_depth``.
        num_mixes: PRIME views per image (the clean view is not counted).
        jsd_weight: JSD consistency weight of the training loss (PRIME's lambda: 12).
        families: Enabled primitive families, a subset of :data:`FAMILIES` (stored in that order).
        kernel_size: Spectral filter size (odd).
        sigma: Spectral ``sigma_max``.
        identity: ``"center"`` (the identity filter, default) or ``"corner"`` (the reference's delta position).
        diffeo_cut: Spatial ``cut_max``.
        color_cut: Color ``cut`` maximum.
        color_temp: Color ``T`` maximum.
        color_band: Color bandwidth (0: all frequencies up to ``cut``).
    """

    width: int = 3
    max_depth: int = 3
    num_mixes: int = 2
    jsd_weight: float = 12.0
    families: tuple[str, ...] = FAMILIES
    kernel_size: int = 3
    sigma: float = 4.0
    identity: str = "center"
    diffeo_cut: int = 100
    color_cut: int = 100
    color_temp: float = 0.01
    color_band: int = 0

    def __post_init__(self) -> None:
        def setf(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        def integer(name: str, lo: int, hi: int) -> None:
            value = as_int(name, getattr(self, name))
            if not lo <= value <= hi:
                raise ValueError(f"PRIME {name} must be in [{lo}, {hi}] (config key '{_key(name)}'), got {value}")
            setf(name, value)

        for name, lo, hi in (("width", 1, 8), ("max_depth", 1, 8), ("num_mixes", 1, 8), ("kernel_size", 1, 15),
                             ("diffeo_cut", DIFFEO_CUT_MIN + 1, 1000), ("color_cut", 1, 1000),
                             ("color_band", 0, 1000)):
            integer(name, lo, hi)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"PRIME kernel_size must be odd (config key 'k'), got {self.kernel_size}")
        for name, flo, fhi, open_lo in (("jsd_weight", 0.0, 1000.0, False), ("sigma", 0.0, 100.0, False),
                                        ("color_temp", 0.0, 1.0, True)):
            value = as_number(name, getattr(self, name))
            if not (flo < value <= fhi if open_lo else flo <= value <= fhi):
                span = f"({flo:g}, {fhi:g}]" if open_lo else f"[{flo:g}, {fhi:g}]"
                raise ValueError(f"PRIME {name} must be in {span} (config key '{_key(name)}'), got {value!r}")
            setf(name, value)
        fams = (self.families,) if isinstance(self.families, str) else self.families
        if not isinstance(fams, (tuple, list)) or not fams or not all(isinstance(f, str) for f in fams):
            raise ValueError(f"PRIME families must be a non-empty sequence of names from {FAMILIES} "
                             f"(config key 'o'), got {self.families!r}")
        unknown = [f for f in fams if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown PRIME famil{'y' if len(unknown) == 1 else 'ies'} {unknown} (config key 'o'); "
                             f"known: {', '.join(FAMILIES)}")
        if len(set(fams)) != len(fams):
            raise ValueError(f"PRIME families are repeated (config key 'o'): {list(fams)}")
        setf("families", tuple(f for f in FAMILIES if f in fams))
        if self.identity not in IDENTITY_TAPS:
            raise ValueError(f"PRIME identity must be one of {IDENTITY_TAPS} (config key 'i'), got {self.identity!r}")
        if self.identity == "corner" and self.kernel_size == 1:
            raise ValueError("PRIME identity 'corner' (the reference's tap ceil(k / 2)) lies outside a 1x1 kernel; "
                             "use 'icenter' with 'k1'")

    @property
    def delta_index(self) -> int:
        """Row (= column) of the filter's delta: ``k // 2`` (center) or the reference's ``ceil(k / 2)``."""
        return self.kernel_size // 2 if self.identity == "center" else math.ceil(self.kernel_size / 2)

    def to_string(self) -> str:
        """The canonical config string (every key, in the order of the module's table)."""
        return format_prime_config(self)

    def __str__(self) -> str:
        return self.to_string()


def _key(name: str) -> str:
    return next(k for k, v in _KEYS.items() if v == name)


_PRESETS = {"prime": PrimeConfig(),
            "imagenet": PrimeConfig(diffeo_cut=500, color_cut=500, color_temp=0.05, color_band=20)}


def parse_prime_config(config: str | PrimeConfig) -> PrimeConfig:
    """Parse ``prime[-imagenet][-w3][-d3][-n2]...`` (keys in the module's table) into a :class:`PrimeConfig`.

    ``prime`` is the reference's CIFAR-10 configuration and ``prime-imagenet`` its ImageNet one; keys override
    them, e.g. ``prime-ospatial-n1`` (the spatial family only, one view).

    Raises:
        ValueError: for another prefix, an unknown or repeated key, or a bad value (the key and the allowed values
            are named).
        TypeError: for anything that is neither a string nor a PrimeConfig.
    """
    if isinstance(config, PrimeConfig):
        return config
    if not isinstance(config, str):
        raise TypeError(f"a PRIME config must be a 'prime-...' string or a PrimeConfig, got {type(config).__name__}")
    sections = config.strip().split("-")
    if sections[0] != PRIME_PREFIX:
        raise ValueError(f"a PRIME config string starts with '{PRIME_PREFIX}', got {config!r}")
    base = _PRESETS["prime"]
    rest = sections[1:]
    if rest and rest[0] == "imagenet":
        base, rest = _PRESETS["imagenet"], rest[1:]
    kwargs: dict[str, Any] = {}
    for section in rest:
        if section in _PRESETS:
            raise ValueError(f"preset {section!r} must come right after 'prime' in PRIME config {config!r}")
        match = _SECTION_RE.match(section)
        if not match or match.group(1) not in _KEYS:
            known = ", ".join(f"'{k}' ({v})" for k, v in _KEYS.items())
            raise ValueError(f"unknown section {section!r} in PRIME config {config!r}; known keys: {known}")
        key, raw = match.groups()
        name = _KEYS[key]
        if name in kwargs:
            raise ValueError(f"key '{key}' ({name}) is given twice in PRIME config {config!r}")
        if name == "families":
            kwargs[name] = tuple(raw.split("."))
        elif name == "identity":
            kwargs[name] = raw
        else:
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"key '{key}' ({name}) needs a number in PRIME config {config!r}, "
                                 f"got {raw!r}") from None
            kwargs[name] = int(value) if value.is_integer() and name not in ("jsd_weight", "sigma", "color_temp") \
                else value
    values = {f.name: getattr(base, f.name) for f in fields(PrimeConfig)}
    values.update(kwargs)
    try:
        return PrimeConfig(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"bad PRIME config {config!r}: {err}") from None


def format_prime_config(config: PrimeConfig) -> str:
    """The canonical string of ``config`` (every key), e.g. ``prime-w3-d3-n2-j12-ospectral.spatial.color-...``."""
    if not isinstance(config, PrimeConfig):
        raise TypeError(f"format_prime_config expects a PrimeConfig, got {type(config).__name__}")
    parts = [PRIME_PREFIX]
    for key, name in _KEYS.items():
        value = getattr(config, name)
        text = ".".join(value) if name == "families" else value if isinstance(value, str) else format_number(value)
        parts.append(f"{key}{text}")
    return "-".join(parts)


# ----------------------------------------------------------------------------------------------------------------
# params
@dataclass(frozen=True)
class PrimeParams:
    """The random choices of ``num_mixes`` PRIME views of every image of a batch.

    Chain slot ``s = (view * width + chain) * batch_size + image``; S = num_mixes * width * batch_size slots and
    D = ``max_depth`` steps. Entries of steps beyond a chain's depth are drawn but unused.

    Attributes:
        depth: (S,) int64 chain depths in ``1..max_depth``.
        family: (D, S) int64 family of each step, an index into :data:`FAMILIES`.
        sigma: (D, S) float32 spectral sigma.
        kernel: (D, S, k, k) float32 spectral filters ``sigma * N + delta``.
        diffeo_cut: (D, S) int64 spatial cut.
        diffeo_temp: (D, S) float64 spatial temperature T.
        diffeo_key: (D, S) int64 noise keys of the displacement fields (62 bits).
        color_cut: (D, S) int64 color cut.
        color_temp: (D, S) float32 color T.
        color_k0: (D, S) int64 first color frequency (1 without a bandwidth).
        color_coeff: (D, S, 3, L) float32 color coefficients ``sqrt(T) * N``, 0 beyond ``cut`` (frequency
            ``k0 + l`` for entry ``l``).
        weights: (num_mixes, B, width) float32 Dirichlet chain weights.
        skip: (num_mixes, B) float32 Beta(1, 1) skip weights ``m`` (``(1 - m) clean + m mix``).
        size: (H, W) of the images the parameters were drawn for.
    """

    depth: torch.Tensor
    family: torch.Tensor
    sigma: torch.Tensor
    kernel: torch.Tensor
    diffeo_cut: torch.Tensor
    diffeo_temp: torch.Tensor
    diffeo_key: torch.Tensor
    color_cut: torch.Tensor
    color_temp: torch.Tensor
    color_k0: torch.Tensor
    color_coeff: torch.Tensor
    weights: torch.Tensor
    skip: torch.Tensor
    size: tuple[int, int]

    @property
    def num_mixes(self) -> int:
        return self.skip.shape[0]

    @property
    def batch_size(self) -> int:
        return self.skip.shape[1]

    @property
    def width(self) -> int:
        return self.weights.shape[2]

    def to(self, device: torch.device | str) -> PrimeParams:
        """The same params on ``device``."""
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self) if f.name != "size"}
        return PrimeParams(**moved, size=self.size)


def temperature_range(n: int, cut: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's allowed temperatures for an ``n``-pixel side and per-sample ``cut`` (float64 tensors).

    ``T1 = 1 / (pi n^2 log c)`` (a typical displacement of half a pixel), ``T2 = 4 / (pi^3 c^2 log c)`` (no
    overhangs), ``c = cut + 1e-6``.
    """
    c = cut.double() + 1e-6
    log = torch.log(c)
    return 1.0 / (math.pi * n**2 * log), 4.0 / (math.pi**3 * c**2 * log)


_SHARED = ("sigma", "cutmax", "beta_cut", "beta_temp", "key", "color_cut", "color_temp", "color_u")


def _draw(cfg: PrimeConfig, count: int, device: torch.device,
          generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The raw draws of ``count`` (view, image) pairs; leading dim ``count``.

    Three generator calls, whatever ``count``: one block of float64 uniforms, one of float32 normals and the
    field keys, so that a per-sample draw (``count = 1``) is cheap. Integers are ``lo + floor(U * n)``;
    Beta(1/2, 1/2) (the reference's ``Diffeo`` draws) is the arcsine law ``sin(pi U / 2)^2``; the Dirichlet(1, ...,
    1) weights are normalized ``-log U``; the rest as in the module docstring. One call with ``count = num_mixes *
    B`` (view-major) and ``B * num_mixes`` calls with ``count = 1`` draw the same distribution; a pair's draws do
    not depend on the size of the images.

    Per chain: the depth, the family of every step, the filter noise, the color coefficients, the chain weight.
    Per step of a view, shared by its chains as the reference shares them across its batch of chains: sigma; the
    diffeo's cutmax, cut, T and field key; the color cut, T and band start.
    """
    sizes = _uniform_sizes(cfg)
    uniform = torch.rand((count, sum(sizes.values())), dtype=torch.float64, device=device, generator=generator)
    normal = torch.randn((count, _normal_size(cfg)), device=device, generator=generator)
    key = torch.randint(0, 1 << 62, (count, cfg.max_depth), device=device, generator=generator)
    return uniform, normal, key


def _uniform_sizes(cfg: PrimeConfig) -> dict[str, int]:
    w, d = cfg.width, cfg.max_depth
    return {"depth": w, "family": w * d, "sigma": d, "cutmax": d, "beta_cut": d, "beta_temp": d, "color_cut": d,
            "color_temp": d, "color_u": d, "dirichlet": w, "skip": 1}


def _color_length(cfg: PrimeConfig) -> int:
    return cfg.color_band if cfg.color_band > 0 else cfg.color_cut


def _normal_size(cfg: PrimeConfig) -> int:
    return cfg.width * cfg.max_depth * (cfg.kernel_size**2 + COLOR_CHANNELS * _color_length(cfg))


def _transform(cfg: PrimeConfig, uniform: torch.Tensor, normal: torch.Tensor,
               key: torch.Tensor) -> dict[str, torch.Tensor]:
    """The draws of :func:`_draw` as named parameters, (count, width, max_depth, ...) per step."""
    w, d, k = cfg.width, cfg.max_depth, cfg.kernel_size
    count, length = uniform.shape[0], _color_length(cfg)
    sizes = _uniform_sizes(cfg)
    u = dict(zip(sizes, uniform.split(list(sizes.values()), dim=1)))

    def integer(v: torch.Tensor, lo: int, hi: int) -> torch.Tensor:  # uniform in lo..hi
        return (lo + (v * (hi - lo + 1)).floor().long()).clamp_(max=hi)

    def arcsine(v: torch.Tensor) -> torch.Tensor:  # Beta(1/2, 1/2)
        return torch.sin(v * (math.pi / 2)) ** 2

    noise, color_noise = normal.split([w * d * k * k, w * d * COLOR_CHANNELS * length], dim=1)
    out = {
        "depth": integer(u["depth"], 1, d),
        "family": integer(u["family"], 0, len(cfg.families) - 1).view(count, w, d),
        "sigma": u["sigma"] * cfg.sigma,
        "noise": noise.reshape(count, w, d, k, k),
        "cutmax": integer(u["cutmax"], DIFFEO_CUT_MIN + 1, cfg.diffeo_cut),
        "beta_cut": arcsine(u["beta_cut"]),
        "beta_temp": arcsine(u["beta_temp"]),
        "key": key,
        "color_cut": integer(u["color_cut"], 1, cfg.color_cut),
        "color_temp": u["color_temp"] * cfg.color_temp,
        "color_u": u["color_u"],
        "color_noise": color_noise.reshape(count, w, d, COLOR_CHANNELS, length),
        "dirichlet": -torch.log(u["dirichlet"].clamp(min=torch.finfo(torch.float64).tiny)),
        "skip": u["skip"].view(count),
    }
    for name in _SHARED:
        out[name] = out[name].unsqueeze(1).expand(count, w, d)
    return out


def _finish(cfg: PrimeConfig, raw: dict[str, torch.Tensor], batch_size: int, size: tuple[int, int]) -> PrimeParams:
    """Turn the raw draws of ``num_mixes * B`` pairs (view-major) into :class:`PrimeParams`."""
    n, b, w, d = cfg.num_mixes, batch_size, cfg.width, cfg.max_depth

    def slots(t: torch.Tensor) -> torch.Tensor:  # (n * b, w, d, ...) -> (d, S) with S = (view * w + chain) * b + i
        t = t.reshape(n, b, w, d, *t.shape[3:]).transpose(1, 2)  # (n, w, b, d, ...)
        return t.reshape(n * w * b, d, *t.shape[4:]).transpose(0, 1).contiguous()

    depth = raw["depth"].reshape(n, b, w).transpose(1, 2).reshape(-1).contiguous()
    family_idx = torch.tensor([FAMILIES.index(f) for f in cfg.families], device=raw["family"].device)
    family = family_idx[slots(raw["family"])]
    sigma = slots(raw["sigma"])
    kernel = slots(raw["noise"]) * sigma[..., None, None]
    kernel[..., cfg.delta_index, cfg.delta_index] += 1.0
    # spatial: cut = int(beta * (cutmax + 1 - cutmin) + cutmin), T = beta * (T2 - T1) + T1 (reference Diffeo)
    cutmax = slots(raw["cutmax"])
    cut = (slots(raw["beta_cut"]) * (cutmax + 1 - DIFFEO_CUT_MIN).double() + DIFFEO_CUT_MIN).floor().long()
    t1, t2 = temperature_range(min(size), cut)
    t2 = torch.maximum(t1, t2)
    temp = slots(raw["beta_temp"]) * (t2 - t1) + t1
    # color: coefficients sqrt(T) * N for frequencies k0 + l <= cut
    ccut = slots(raw["color_cut"])
    ctemp = slots(raw["color_temp"])
    if cfg.color_band > 0:
        k0 = (slots(raw["color_u"]) * ccut.double()).floor().long().clamp_(max=ccut - 1) + 1
    else:
        k0 = torch.ones_like(ccut)
    coeff = slots(raw["color_noise"]) * ctemp.sqrt()[..., None, None]
    freq = k0[..., None] + torch.arange(coeff.shape[-1], device=coeff.device)
    coeff = coeff * (freq <= ccut[..., None])[..., None, :].to(coeff.dtype)
    dirichlet = raw["dirichlet"].reshape(n, b, w)
    weights = (dirichlet / dirichlet.sum(-1, keepdim=True)).float()
    return PrimeParams(depth=depth, family=family, sigma=sigma.float(), kernel=kernel.float(),
                       diffeo_cut=cut, diffeo_temp=temp, diffeo_key=slots(raw["key"]), color_cut=ccut,
                       color_temp=ctemp.float(), color_k0=k0, color_coeff=coeff.float(), weights=weights,
                       skip=raw["skip"].reshape(n, b).float(), size=(int(size[0]), int(size[1])))


# ----------------------------------------------------------------------------------------------------------------
# counter-based normal noise for the displacement fields
_M32 = 0xFFFFFFFF
_HASH_MUL = (0x7FEB352D, 0x846CA68B - (1 << 32))  # the "lowbias32" constants as int32 bit patterns


def _as_int32(x: torch.Tensor) -> torch.Tensor:
    """The low 32 bits of int64 ``x`` as int32 bit patterns (values >= 2**31 become negative)."""
    x = x & _M32
    return torch.where(x >= 1 << 31, x - (1 << 32), x).to(torch.int32)


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit multiply-xorshift mixer (the "lowbias32" constants) on int32 bit patterns, in place.

    int32 products wrap modulo 2**32 (checked against the 64-bit formula in the tests); the right shifts are
    arithmetic, so they are masked to act as logical shifts.
    """
    x.bitwise_xor_((x >> 16) & 0xFFFF)
    x.mul_(_HASH_MUL[0])
    x.bitwise_xor_((x >> 15) & 0x1FFFF)
    x.mul_(_HASH_MUL[1])
    return x.bitwise_xor_((x >> 16) & 0xFFFF)


def _uniform24(c: torch.Tensor, k_lo: torch.Tensor, k_hi: torch.Tensor) -> torch.Tensor:
    """The float64 uniform in (0, 1) (24 significant bits) of int32 counter ``c`` and key halves ``k_lo``, ``k_hi``."""
    h = _hash32(_hash32(c ^ k_lo).bitwise_xor_(k_hi))
    return (((h >> 8) & 0xFFFFFF).double() + 0.5) * (1.0 / (1 << 24))


def _key_halves(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The low and high 32-bit halves of 62-bit int64 keys, as int32 bit patterns."""
    return _as_int32(key), _as_int32(key >> 32)


def _normal_pairs(k_lo: torch.Tensor, k_hi: torch.Tensor, pair: torch.Tensor,
                  chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two normals (counters ``2 pair`` and ``2 pair + 1``) of :func:`hashed_normal`, float32 each.

    ``k_lo``, ``k_hi``: the key's halves (:func:`_key_halves`), broadcast with ``pair``. Long inputs run in
    chunks of ``chunk`` pairs (default 2**16 on a CPU, where the temporaries then stay small and in cache, and
    2**24 on a GPU).
    """
    if chunk is None:
        chunk = 1 << 16 if pair.device.type == "cpu" else 1 << 24
    k_lo, k_hi, pair = torch.broadcast_tensors(k_lo, k_hi, pair)
    shape = pair.shape
    k_lo, k_hi, pair = k_lo.reshape(-1), k_hi.reshape(-1), pair.reshape(-1)
    first = torch.empty(pair.shape, dtype=torch.float32, device=pair.device)
    second = torch.empty_like(first)
    for a in range(0, pair.numel(), chunk):
        p2 = (2 * pair[a:a + chunk]).to(torch.int32)
        lo, hi = k_lo[a:a + chunk], k_hi[a:a + chunk]
        radius = torch.sqrt(-2.0 * torch.log(_uniform24(p2, lo, hi)))
        angle = (2.0 * math.pi) * _uniform24(p2.add_(1), lo, hi)
        torch.mul(radius, torch.cos(angle), out=first[a:a + chunk])  # float64 products rounded to float32
        torch.mul(radius, torch.cos(angle.sub_(0.5 * math.pi)), out=second[a:a + chunk])
    return first.view(shape), second.view(shape)


def hashed_normal(key: torch.Tensor, counter: torch.Tensor) -> torch.Tensor:
    """Standard normal numbers, one per ``(key, counter)`` pair (broadcast together): float32.

    ``key``: int64 in [0, 2**62); ``counter``: int64 in [0, 2**31). Counters ``2p`` and ``2p + 1`` share a pair of
    32-bit uniforms (24 significant bits each), hashed from ``p`` and the key's two halves, and take its two
    Box-Muller normals (cosine and sine). The same (key, counter) gives the same number on any device and in any
    batch.
    """
    even, odd = _normal_pairs(*_key_halves(key), counter >> 1)
    return torch.where((counter & 1).bool(), odd, even)


# ----------------------------------------------------------------------------------------------------------------
# primitives: x (m, C, H, W) float32 in [0, 1] -> the same
def spectral(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Filter every image with its own ``(k, k)`` kernel (all channels alike), zero padding, clipped to [0, 1]."""
    m, c, h, w = x.shape
    k = kernel.shape[-1]
    weight = kernel.to(x.dtype).repeat_interleave(c, dim=0).view(m * c, 1, k, k)
    out = F.conv2d(x.reshape(1, m * c, h, w), weight, padding=k // 2, groups=m * c)
    return out.view(m, c, h, w).clamp_(0.0, 1.0)


def _modes(length: int, cut: int, device: torch.device) -> torch.Tensor:
    """``sin(pi k t)`` for ``t = linspace(0, 1, length)``, ``k = 1..cut``: (length, cut) float32."""
    t = torch.linspace(0, 1, length, dtype=torch.float32, device=device)
    k = torch.arange(1, cut + 1, dtype=torch.float32, device=device)
    return torch.sin(math.pi * t[:, None] * k[None, :])


def _field_coefficients(cut: torch.Tensor, key: torch.Tensor, kb: int, max_cut: int) -> torch.Tensor:
    """The coefficients ``c_ij e_ij`` of fields u and v of samples with ``cut <= kb``: (2, m, kb, kb) float32.

    Entry ``[f, s, i - 1, j - 1]``: mode ``(i, j)`` of field ``f`` of sample ``s``, 0 outside the sample's disc
    ``r < cut + 0.5``. Only the modes inside are hashed; with an even ``max_cut`` the two modes ``j - 1 = 2q, 2q + 1``
    of a row share one hashed pair of uniforms (counters ``2p``, ``2p + 1``), so each pair is hashed once and gives
    both normals.
    """
    dev, m = cut.device, cut.shape[0]
    i = torch.arange(1, kb + 1, device=dev, dtype=torch.float32)
    r = torch.sqrt(i[:, None] ** 2 + i[None, :] ** 2)  # (K, K)
    inside = r[None] < cut.float().view(-1, 1, 1) + 0.5  # (m, K, K): the modes with e_ij > 0
    scale = inside.to(torch.float32) / r  # e_ij inside the disc, 0 outside
    coeff = torch.zeros((2, m, kb, kb), dtype=torch.float32, device=dev)
    if max_cut % 2 == 0 and kb % 2 == 0:
        # r grows with j, so a pair (2q, 2q + 1) has a mode inside iff its first one is
        mask = inside[:, :, 0::2]  # (m, K, K / 2)
        sample, row, q = mask.nonzero(as_tuple=True)
        base = row * max_cut + 2 * q  # counter of field 0, even
        pair = torch.stack([base, base + max_cut * max_cut]) >> 1  # (2, n): fields u, v
        k_lo, k_hi = _key_halves(key)
        first, second = _normal_pairs(k_lo[sample], k_hi[sample], pair)
        # nonzero and masked_scatter_ both walk the mask in row-major order
        coeff.view(2, m, kb, kb // 2, 2).masked_scatter_(mask[None, ..., None].expand(2, -1, -1, -1, 2),
                                                         torch.stack([first, second], dim=-1))
    else:
        sample, row, col = inside.nonzero(as_tuple=True)
        for f in range(2):
            coeff[f, sample, row, col] = hashed_normal(key[sample], (f * max_cut + row) * max_cut + col)
    return coeff.mul_(scale)


def _cut_buckets(cut: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """Samples grouped by cut into about 16 buckets of even width bounds: ``[(kb, indices), ...]``."""
    kmax = int(cut.max())
    step = max(8, 2 * math.ceil(kmax / 32))
    bound = (torch.div(cut + step - 1, step, rounding_mode="floor") * step).clamp_(max=kmax + kmax % 2)
    out = []
    for kb in torch.unique(bound).tolist():
        out.append((int(kb), (bound == kb).nonzero().view(-1)))
    return out


def displacement(cut: torch.Tensor, temp: torch.Tensor, key: torch.Tensor, size: tuple[int, int],
                 max_cut: int, budget: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """The displacement fields ``(dx, dy)`` in pixels, each (m, H, W) float32, of per-sample ``cut``, ``T``, key.

    ``u[y, x] = sum_ij c_ij e_ij sin(pi i x') sin(pi j y')`` (``x' = x / (W - 1)``), ``dx = sqrt(T) u W``, and
    ``v``, ``dy`` likewise (with H); ``c_ij`` is :func:`hashed_normal` of the key at counter ``(f * max_cut + i - 1)
    * max_cut + j - 1`` for field ``f`` (0: u, 1: v), so a mode's coefficient does not depend on the other samples.

    Each field is the matrix product ``S_y C^T S_x^T`` of the sample's coefficients ``C`` (kb x kb) with the sines
    ``S_x`` (W x kb), ``S_y`` (H x kb), built once per call. Samples are grouped by cut (:func:`_cut_buckets`) so
    that a sample's products and hashes run over about its own ``cut x cut`` modes, not the batch's largest;
    ``budget`` bounds the floats of one group's coefficients (larger groups run in parts).
    """
    h, w = size
    dev, m = cut.device, cut.shape[0]
    dx = torch.empty((m, h, w), dtype=torch.float32, device=dev)
    dy = torch.empty_like(dx)
    if m == 0:
        return dx, dy
    kmax = int(cut.max())
    kmax += kmax % 2
    sx, sy = _modes(w, kmax, dev), _modes(h, kmax, dev)  # (W, K), (H, K)
    amp = temp.sqrt().float()
    for kb, idx in _cut_buckets(cut):
        step = max(1, budget // (2 * kb * kb + 2 * kb * max(h, w) + 2 * h * w))
        for a in range(0, idx.numel(), step):
            sel = idx[a:a + step]
            coeff = _field_coefficients(cut[sel], key[sel], kb, max_cut)  # (2, m', K, K) [i, j]
            # u[y, x] = sum_ij c_ij sx[x, i] sy[y, j] = (sy C^T sx^T)[y, x]
            field = torch.matmul(torch.matmul(sy[:, :kb], coeff.transpose(-1, -2)), sx[:, :kb].t())
            dx[sel] = field[0] * (amp[sel] * w).view(-1, 1, 1)
            dy[sel] = field[1] * (amp[sel] * h).view(-1, 1, 1)
    return dx, dy


def remap(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of ``x`` at ``(x - dx, y - dy)``, coordinates clamped to the image (the reference's)."""
    h, w = x.shape[-2:]
    xs = torch.arange(w, device=x.device, dtype=torch.float32).view(1, 1, w)
    ys = torch.arange(h, device=x.device, dtype=torch.float32).view(1, h, 1)
    xn = (xs - dx).clamp_(0, w - 1)
    yn = (ys - dy).clamp_(0, h - 1)
    grid = torch.stack([xn * (2.0 / max(w - 1, 1)) - 1.0, yn * (2.0 / max(h - 1, 1)) - 1.0], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def color(x: torch.Tensor, coeff: torch.Tensor, k0: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """``x + sum_l coeff[:, c, l] sin(pi (k0 + l) x)`` per channel, clipped to [0, 1]; coeff (m, >=C, L).

    The sum is evaluated by Clenshaw's recurrence for the sines' three-term recurrence ``sin((k + 1) t) = 2 cos(t)
    sin(k t) - sin((k - 1) t)``: ``b_l = coeff_l + 2 cos(t) b_{l+1} - b_{l+2}`` from the last frequency down, then
    ``sum = sin(k0 t) b_0 - sin((k0 - 1) t) b_1`` (two passes over the pixels per frequency and one ``cos`` and two
    ``sin`` per pixel, instead of one ``sin`` per frequency; float32 error about 1e-5 after 100 terms). Trailing
    zero coefficients (frequencies beyond an image's cut) are skipped: the images are sorted by their number of
    active frequencies, so that every frequency runs on a prefix of them. ``chunk`` is kept for compatibility and
    unused.
    """
    del chunk
    m, c, h, w = x.shape
    coeff = coeff[:, :c]
    active = (coeff != 0).any(dim=1)  # (m, L)
    ar = torch.arange(1, active.shape[1] + 1, device=x.device)
    length = (active * ar).amax(dim=1) if active.shape[1] else torch.zeros(m, dtype=torch.long, device=x.device)
    length, order = torch.sort(length, descending=True)
    counts = [int(v) for v in (length.view(1, -1) > torch.arange(0, int(length[0]) if m else 0,
                                                                device=x.device).view(-1, 1)).sum(1).tolist()]
    xs = x.index_select(0, order).reshape(m, c, h * w)
    if not counts:
        return x.clamp(0.0, 1.0)
    n0 = counts[0]  # images with at least one active frequency: a prefix
    cs, ks = coeff.index_select(0, order[:n0]).to(x.dtype), k0.index_select(0, order[:n0])
    t = xs[:n0] * math.pi
    twice_cos = 2.0 * torch.cos(t)
    b1, b2 = torch.zeros_like(t), torch.zeros_like(t)  # b_{l+1}, b_{l+2}
    for step in range(len(counts) - 1, -1, -1):  # a loop over frequencies, not over images
        n = counts[step]
        torch.sub(cs[:n, :, step, None], b2[:n], out=b2[:n])
        b2[:n].addcmul_(twice_cos[:n], b1[:n])
        b1, b2 = b2, b1  # b1 = b_step, b2 = b_{step + 1}
    k = ks.to(x.dtype).view(n0, 1, 1)
    out = xs.clone()
    out[:n0].addcmul_(torch.sin(k * t), b1).addcmul_(torch.sin((k - 1) * t), b2, value=-1.0)
    out = out.clamp_(0.0, 1.0).view(m, c, h, w)
    return torch.empty_like(out).index_copy_(0, order, out)


def _color_lookup(chains: torch.Tensor, levels: torch.Tensor, sel: torch.Tensor, coeff: torch.Tensor,
                  k0: torch.Tensor, budget: int) -> None:
    """:func:`color` of chain slots ``sel`` whose images are still uint8 ``levels`` (B, C, H, W) scaled to [0, 1].

    Slot ``s`` holds image ``s % B``. The sum is evaluated at the 256 levels ``v / 255`` (the float32 values the
    chains hold) for every slot and channel, then each pixel takes its level's value: elementwise the same
    arithmetic as :func:`color` on the pixels. The results go into ``chains`` (in parts of about ``budget``
    floats).
    """
    b, c, h, w = levels.shape
    table_x = (torch.arange(256, dtype=torch.float32, device=levels.device) / 255.0).view(1, 1, 1, 256)
    step = max(1, budget // (c * (6 * 256 + 3 * h * w)))
    for a in range(0, sel.numel(), step):
        part = sel[a:a + step]
        m = part.numel()
        table = color(table_x.expand(m, c, 1, 256).contiguous(), coeff[a:a + step], k0[a:a + step])
        index = levels.index_select(0, part % b).view(m, c, h * w).long()
        chains.index_copy_(0, part, torch.gather(table.view(m, c, 256), 2, index).view(m, c, h, w))


# ----------------------------------------------------------------------------------------------------------------
class PrimeBatch(nn.Module):
    """PRIME on a batch of images, every image with its own random chains and weights, on any device.

    Args:
        config: A ``prime-...`` config string or a :class:`PrimeConfig` (``"prime"``: the reference's CIFAR-10
            configuration; ``"prime-imagenet"``: its ImageNet one).
        num_mixes: Views per image, overriding the config's ``n`` (the call convention of
            :class:`~timm_dynmix.augment.augmix_batch.AugMixBatch`, used by the trainer and the timm launcher).
        generator: Default ``torch.Generator`` for the draws (on the batch's device); ``forward`` and ``views``
            take one per call too. Without any (and without ``seed``), draws come from torch's default generator.

    ``forward(x)`` takes a uint8 (0-255) or float ([0, 1]) batch ``(B, C, H, W)``, C = 1 or 3, H, W >= 8, and
    returns ``num_mixes`` batches of the same shape and dtype (uint8 rounded), view k of image i in ``out[k][i]``.
    With ``seed`` and ``indices`` (dataset indices of the images), the draws of image i, view k come only from
    ``derive_seed(seed, epoch, indices[i], k + 1, split="prime")``, whatever the rest of the batch.
    :meth:`views` makes the normalized split-major training batch ``[clean, mix_1, ..., mix_N]``.

    Example:
        >>> aug = PrimeBatch("prime")
        >>> mix1, mix2 = aug(x_uint8, seed=0, epoch=3, indices=batch_indices)     # each (B, 3, 32, 32) uint8
        >>> x = aug.views(x_uint8, mean, std, generator=g)   # (3B, 3, 32, 32) float32, JsdLoss(num_splits=3)
    """

    def __init__(self, config: str | PrimeConfig = "prime", *, num_mixes: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.config = parse_prime_config(config)
        if num_mixes is not None:  # PrimeConfig validates it (an integer in its allowed range)
            self.config = dataclasses.replace(self.config, num_mixes=num_mixes)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator

    @property
    def num_mixes(self) -> int:
        return self.config.num_mixes

    @property
    def num_splits(self) -> int:
        """Views per image in :meth:`views` (clean + ``num_mixes``), the ``num_splits`` of ``JsdLoss``."""
        return self.config.num_mixes + 1

    @property
    def jsd_weight(self) -> float:
        return self.config.jsd_weight

    def extra_repr(self) -> str:
        return repr(self.config.to_string())

    # -- sample ---------------------------------------------------------------------------------------------------
    def sample_params(self, batch_size: int, size: tuple[int, int], *, device: torch.device | str | None = None,
                      generator: torch.Generator | None = None, seed: int | None = None, epoch: int = 0,
                      indices: Sequence[int] | torch.Tensor | None = None) -> PrimeParams:
        """Draw the choices of ``num_mixes`` views of ``batch_size`` images of ``size = (H, W)``.

        With ``seed``, image i's view k is drawn on a CPU generator seeded with ``derive_seed(seed, epoch,
        indices[i], k + 1, split="prime")`` (``indices`` defaults to ``range(batch_size)``), then moved to
        ``device``. Otherwise all draws are vectorized on ``generator`` (on ``device``).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 2 for s in size)):
            raise ValueError(f"size must be (H, W) with integers >= 2, got {size!r}")
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        device = torch.device(device)
        cfg, b, n = self.config, batch_size, self.config.num_mixes
        if seed is None:
            if indices is not None:
                raise ValueError("indices need a seed: pass seed=... (per-sample draws) or leave indices out")
            g = _check_generator(generator, device)
            return _finish(cfg, _transform(cfg, *_draw(cfg, n * b, device, g)), b, size)
        if generator is not None:
            raise ValueError("pass either seed (per-sample draws) or generator, not both")
        idx = list(range(b)) if indices is None else _as_indices(indices, b)
        cpu = torch.device("cpu")
        draws = []
        for k in range(n):  # per (view, image) generators: the draws do not depend on the batch
            for i in idx:
                g = torch.Generator().manual_seed(derive_seed(seed, epoch, i, k + 1, split=SEED_SPLIT))
                draws.append(_draw(cfg, 1, cpu, g))
        raw = _transform(cfg, *(torch.cat(block) for block in zip(*draws)))
        return _finish(cfg, raw, b, size).to(device)

    # -- apply ----------------------------------------------------------------------------------------------------
    def _chunk_floats(self, device: torch.device) -> int:
        return _CUDA_CHUNK_FLOATS if device.type == "cuda" else _CPU_CHUNK_FLOATS

    def _step(self, chains: torch.Tensor, params: PrimeParams, t: int, levels: torch.Tensor | None = None) -> None:
        """Apply step ``t`` of every chain in place (chains shorter than ``t + 1`` are left alone).

        ``levels``: the uint8 batch the chains were copied from, when they still hold its values ``v / 255``
        (step 0 of a uint8 batch); the color primitive then evaluates its sum once per level and image (256 values
        per channel) and looks the pixels up, instead of evaluating it per pixel: the same numbers, 4x fewer
        evaluations at 32 px and 196x fewer at 224 px.
        """
        active = params.depth > t
        budget = self._chunk_floats(chains.device)
        for f in self.config.families:  # a loop over the three families, not over images
            sel = (active & (params.family[t] == FAMILIES.index(f))).nonzero().view(-1)
            if sel.numel() == 0:
                continue
            if f == "color" and levels is not None and levels[0, 0].numel() > 256:
                _color_lookup(chains, levels, sel, params.color_coeff[t, sel], params.color_k0[t, sel], budget)
                continue
            x = chains.index_select(0, sel)
            if f == "spectral":
                y = spectral(x, params.kernel[t, sel])
            elif f == "color":
                coeff, k0 = params.color_coeff[t, sel], params.color_k0[t, sel]
                per = x[0].numel() * 6  # the angles, 2 cos, two Clenshaw terms, the output
                step = max(1, budget // per)
                y = torch.cat([color(x[a:a + step], coeff[a:a + step], k0[a:a + step])
                               for a in range(0, sel.numel(), step)])
            else:
                cut, temp, key = params.diffeo_cut[t, sel], params.diffeo_temp[t, sel], params.diffeo_key[t, sel]
                per = 4 * x[0, 0].numel()  # the two fields and the sampling grid
                step = max(1, budget // per)
                parts = []
                for a in range(0, sel.numel(), step):  # one remap per step unless the fields exceed the budget
                    dx, dy = displacement(cut[a:a + step], temp[a:a + step], key[a:a + step], params.size,
                                          self.config.diffeo_cut, budget=budget)
                    parts.append(remap(x[a:a + step], dx, dy))
                y = parts[0] if len(parts) == 1 else torch.cat(parts)
            chains.index_copy_(0, sel, y)

    def _mixed(self, x01: torch.Tensor, params: PrimeParams, levels: torch.Tensor | None = None) -> torch.Tensor:
        """The views ``(num_mixes, B, C, H, W)`` float32 in [0, 1] of a float32 [0, 1] batch.

        ``levels``: the uint8 batch when ``x01`` is ``levels.float() / 255`` (see :meth:`_step`).
        """
        n, wd, b = params.num_mixes, params.width, params.batch_size
        chains = x01.repeat(n * wd, 1, 1, 1)  # slot (view * width + chain) * B + image
        for t in range(self.config.max_depth):
            self._step(chains, params, t, levels if t == 0 else None)
        chains = chains.view(n, wd, b, *x01.shape[1:])
        mix = torch.einsum("nkbcyx,nbk->nbcyx", chains, params.weights.to(chains.dtype))
        m = params.skip.to(chains.dtype).view(n, b, 1, 1, 1)
        return torch.lerp(x01.unsqueeze(0).expand_as(mix), mix, m)

    def _check_params(self, x: torch.Tensor, params: PrimeParams) -> None:
        if not isinstance(params, PrimeParams):
            raise TypeError(f"params must be PrimeParams (from sample_params), got {type(params).__name__}")
        cfg = self.config
        if (params.size != tuple(x.shape[2:]) or params.batch_size != x.shape[0] or params.num_mixes != cfg.num_mixes
                or params.width != cfg.width or params.family.shape[0] != cfg.max_depth
                or params.kernel.shape[-1] != cfg.kernel_size or params.color_coeff.shape[-1] != _color_length(cfg)):
            raise ValueError(f"params were drawn for {params.batch_size} images of {params.size} "
                             f"({params.num_mixes} views, width {params.width}, depth {params.family.shape[0]}), "
                             f"got a batch of shape {tuple(x.shape)} for config {cfg.to_string()!r}")

    def apply(  # type: ignore[override]  # torchvision v2's sample-then-apply, not nn.Module.apply(fn)
            self, x: torch.Tensor, params: PrimeParams) -> tuple[torch.Tensor, ...]:
        """The ``num_mixes`` views of ``x`` for given ``params`` (same shape and dtype as ``x``)."""
        x = _check_batch(x, "PrimeBatch")
        self._check_params(x, params)
        store, exact = _to_storage(x)  # uint8 stays uint8; floats become float32 on the 0-255 scale
        views = self._mixed(store.float() / 255.0, params.to(x.device),
                            store if store.dtype == torch.uint8 else None)
        if exact:
            return tuple(v.mul(255.0).round_().clamp_(0, 255).to(torch.uint8) for v in views)
        return tuple(v.to(x.dtype) for v in views)

    def _params_for(self, x: torch.Tensor, generator: torch.Generator | None, seed: int | None, epoch: int,
                    indices: Sequence[int] | torch.Tensor | None) -> PrimeParams:
        x = _check_batch(x, "PrimeBatch")
        if seed is None:
            g = _check_generator(generator if generator is not None else self.generator, x.device)
            if indices is not None:
                raise ValueError("indices need a seed: pass seed=... (per-sample draws) or leave indices out")
            return self.sample_params(x.shape[0], (int(x.shape[2]), int(x.shape[3])), device=x.device, generator=g)
        if generator is not None:
            raise ValueError("pass either seed (per-sample draws) or generator, not both")
        return self.sample_params(x.shape[0], (int(x.shape[2]), int(x.shape[3])), device=x.device, seed=seed,
                                  epoch=epoch,
                                  indices=indices)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, *, seed: int | None = None,
                epoch: int = 0, indices: Sequence[int] | torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``num_mixes`` PRIME views of every image of ``x`` (uint8 or float in [0, 1], (B, C, H, W))."""
        return self.apply(x, self._params_for(x, generator, seed, epoch, indices))

    def views(self, x: torch.Tensor, mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
              std: Sequence[float] = IMAGENET_DEFAULT_STD, generator: torch.Generator | None = None, *,
              seed: int | None = None, epoch: int = 0,
              indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """The normalized split-major training batch ``[clean, mix_1, ..., mix_N]`` of a uint8 (or [0, 1]) batch.

        Returns a float32 tensor of shape ``((1 + num_mixes) * B, C, H, W)``: rows ``[:B]`` are the clean images,
        rows ``[k * B:(k + 1) * B]`` view k, all normalized with ``(x - mean) / std`` on the [0, 1] scale (the
        views are not rounded to uint8 first). Use ``JsdLoss(num_splits=self.num_splits)`` with the labels
        repeated ``num_splits`` times and the config's ``jsd_weight``.
        """
        params = self._params_for(x, generator, seed, epoch, indices)
        store, _ = _to_storage(x)
        x01 = store.float() / 255.0
        b, c = x.shape[:2]
        mean_t, std_t = _channel_stats(mean, std, c, x.device)
        mixed = self._mixed(x01, params, store if store.dtype == torch.uint8 else None)
        out = torch.cat([x01.unsqueeze(0), mixed]).view((1 + self.num_mixes) * b, *x.shape[1:])
        return (out - mean_t.view(1, c, 1, 1)) / std_t.view(1, c, 1, 1)


def _as_indices(indices: Sequence[int] | torch.Tensor, batch_size: int) -> list[int]:
    if isinstance(indices, torch.Tensor):
        if indices.dim() != 1 or indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ValueError(f"indices must be a 1-D integer tensor, got dtype {indices.dtype} and shape "
                             f"{tuple(indices.shape)}")
        values = [int(v) for v in indices.tolist()]
    else:
        try:
            values = [operator.index(v) for v in indices]
        except TypeError:
            raise ValueError(f"indices must be a sequence of integers, got {indices!r}") from None
    if len(values) != batch_size:
        raise ValueError(f"indices must hold one dataset index per image ({batch_size}), got {len(values)}")
    if any(v < 0 for v in values):
        raise ValueError(f"indices must be >= 0, got {min(values)}")
    return values
