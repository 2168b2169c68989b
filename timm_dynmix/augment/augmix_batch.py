"""``AugMixBatch``: the official AugMix on image batches, every draw per sample, on any device.

The same distribution as :class:`timm_dynmix.AugMix` (google-research/augmix, ``augmentations.py`` and ``aug()`` of
``cifar.py``; its docstring states the semantics), on a ``(B, C, H, W)`` uint8 or float tensor: every image and view
gets its own chain weights ``w ~ Dirichlet(alpha)``, skip weight ``m ~ Beta(alpha, alpha)``, chain depths (``depth``
or uniform in 1-3), ops (uniform with replacement), levels (uniform in ``[0.1, severity]``) and signs; then
``mixed = (1 - m) * clean + m * sum_i w_i * chain_i`` in float32, without clipping. There is no Python loop over
images in :meth:`AugMixBatch.apply`: the chain slots of every step are grouped by op kernel and each group is one
batched computation, with the PIL-exact kernels of :mod:`timm_dynmix.augment.batched`:

* autocontrast, equalize: per-image lookup tables; posterize, solarize: computed (all exact, uint8);
* rotate (whole degrees about the centre, bilinear, black fill): ``grid_sample`` as PIL samples (a pixel may differ
  by 1 where float32 and PIL's double fall on either side of a truncation; about 0.1% of pixels, tested);
* shear_x/y about the top-left corner (PIL affine ``(1, s, 0, 0, 1, 0)``): per-row / per-column two-tap lerps
  (within 1, as rotate);
* translate_x/y (whole pixels; ``+`` moves the content left / up, as the official affine): an exact gather;
* with ``all_ops=True`` the official ``augmentations_all`` adds colour, contrast, brightness and sharpness
  (``ImageEnhance`` with factor ``level * 1.8 / 10 + 0.1``): PIL's blend with a grey / mean-grey / black / smoothed
  image, truncated like PIL's (exact but for float32 rounding ties). These overlap the ImageNet-C corruptions; the
  default op set excludes them, as the official code does.

Config strings: ``augmix`` (the official CIFAR defaults, severity 3, width 3, random depth 1-3, alpha 1),
``augmix_official-s3-w3-d0-a1`` (:func:`timm_dynmix.parse_augmix_config`), or timm's grammar
``augmix-m3-w3-d-1-a1`` (``m`` severity, ``w`` width, ``d`` depth with ``-1`` or ``0`` for random, ``a`` alpha).
The timm grammar only names the parameters: the ops are the official AugMix's either way (timm's own per-image
AugMix, with its 13 ops and its magnitudes, stays ``create_transform(aug="augmix-m3-w3")``).

Float input (values in [0, 1]) runs the same kernels on the 0-255 scale without the geometric ops' uint8
truncation and returns the unrounded float mix; uint8 input returns the mix rounded to uint8. :meth:`AugMixBatch.views`
normalizes the unrounded mix in both cases (as the official code mixes normalized tensors).

Randomness. Every view's draws are one row of Gamma variates (``width`` for the Dirichlet, 2 for the Beta, as
``Gamma(alpha + 1) * U ** (1 / alpha)``, exact for small alphas) and one row of uniforms (depths, ops, levels,
signs). With ``seed`` (and ``indices``), the row of image ``i`` view ``k`` comes only from a CPU generator seeded
with ``derive_seed(seed, epoch, indices[i], k + 1, split="augmix")``: a view depends on (seed, epoch, dataset index,
view) and not on the batch it is in. Without a seed, all rows come from one ``torch.Generator`` (on the batch's
device) in one call each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from timm_dynmix.augment import batched as _b
from timm_dynmix.augment.baselines import AugMixConfig, is_official_augmix, parse_augmix_config
from timm_dynmix.augment.ops import MIN_LEVEL
from timm_dynmix.rng import derive_seed

__all__ = ["AugMixBatch", "AugMixBatchParams", "parse_augmix_batch_config", "AUGMIX_BATCH_OPS",
           "AUGMIX_BATCH_ALL_OPS", "SEED_SPLIT"]

SEED_SPLIT = "augmix"  # the split name of the per-sample seeds
#: The official op list (``augmentations.augmentations``), in its order.
AUGMIX_BATCH_OPS = ("autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y",
                    "translate_x", "translate_y")
#: The official ``augmentations_all``: the op list plus the four ops that overlap ImageNet-C.
AUGMIX_BATCH_ALL_OPS = AUGMIX_BATCH_OPS + ("color", "contrast", "brightness", "sharpness")
_CODE = {name: i for i, name in enumerate(AUGMIX_BATCH_ALL_OPS)}
_ENHANCE = ("color", "contrast", "brightness", "sharpness")
_MAX_RANDOM_DEPTH = 3  # depth 0 (the official -1): uniform in 1-3
_TIMM_KEYS = {"m": "severity", "w": "width", "d": "depth", "a": "alpha"}
_TIMM_SECTION_RE = re.compile(r"^([a-z]+)(-?[0-9.]+)$")


# ----------------------------------------------------------------------------------------------------------------
# config
def parse_augmix_batch_config(config: str | AugMixConfig) -> AugMixConfig:
    """Parse ``augmix``, ``augmix_official-...``, timm's ``augmix-m3-w3-d-1-a1`` grammar or an AugMixConfig.

    timm keys: ``m`` severity (the levels' upper bound, 0.1-10), ``w`` width, ``d`` depth (``-1`` or ``0``: random
    1-3, as the official ``-1``), ``a`` alpha. ``augmix-timm`` names timm's own per-image AugMix and is refused.

    Raises:
        ValueError: for another prefix, an unknown or repeated key (timm's ``mstd`` and ``b`` included: they belong
            to timm's own implementation), a value that is not a number, or a value out of range.
        TypeError: for anything that is neither a string nor an AugMixConfig.
    """
    if isinstance(config, AugMixConfig) or (isinstance(config, str) and is_official_augmix(config)):
        return parse_augmix_config(config)
    if not isinstance(config, str):
        raise TypeError(f"an AugMix config must be a string ('augmix', 'augmix_official-...', 'augmix-m3-w3-d-1-a1') "
                        f"or an AugMixConfig, got {type(config).__name__}")
    text = config.strip()
    if not text.startswith("augmix-") or text == "augmix-timm":
        raise ValueError(f"AugMixBatch config must be 'augmix', 'augmix_official-s3-w3-d0-a1'-style or timm's "
                         f"'augmix-m3-w3-d-1-a1' grammar, got {config!r}"
                         + (" ('augmix-timm' is timm's own per-image AugMix)" if text == "augmix-timm" else ""))
    sections = text.split("-")[1:]
    merged: list[str] = []
    for section in sections:  # "d-1" splits into "d" and "1": join a bare key with the number after it
        if merged and merged[-1] in _TIMM_KEYS and re.fullmatch(r"[0-9.]+", section):
            merged[-1] = f"{merged[-1]}-{section}"
        else:
            merged.append(section)
    kwargs: dict[str, Any] = {}
    known = ", ".join(f"'{k}' ({v})" for k, v in _TIMM_KEYS.items())
    for section in merged:
        match = _TIMM_SECTION_RE.match(section)
        if not match or match.group(1) not in _TIMM_KEYS:
            raise ValueError(f"unknown section {section!r} in AugMix config {config!r}; known keys: {known} "
                             f"(timm's 'mstd' and 'b' belong to timm's own AugMix)")
        key, raw = match.groups()
        name = _TIMM_KEYS[key]
        if name in kwargs:
            raise ValueError(f"key '{key}' ({name}) is given twice in AugMix config {config!r}")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"key '{key}' ({name}) needs a number in AugMix config {config!r}, got {raw!r}") from None
        if name == "depth" and value == -1:
            value = 0.0
        kwargs[name] = value
    return AugMixConfig(**kwargs)


# ----------------------------------------------------------------------------------------------------------------
# kernels: (x storage (n, C, H, W), code (n,) AugMix op codes, param (n,) float64, exact) -> same shape and dtype
def _k_pixel(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    """autocontrast, equalize (DynMix's per-image PIL tables), posterize, solarize (the same results, computed).

    ``code`` comes sorted: every op's images form one contiguous run.
    """
    q = _b._quantized(x)
    kinds, counts = torch.unique_consecutive(code, return_counts=True)
    outs, start = [], 0
    for kind, count in zip(kinds.tolist(), counts.tolist()):
        sl = slice(start, start + count)
        start += count
        if kind == _CODE["posterize"]:  # i & ~(2 ** (8 - bits) - 1)
            mask = (256 - torch.exp2(8.0 - p[sl].clamp(min=1.0))).to(torch.uint8).view(-1, 1, 1, 1)
            outs.append(torch.bitwise_and(q[sl], mask))
        elif kind == _CODE["solarize"]:  # invert values >= threshold
            t = p[sl].view(-1, 1, 1, 1)
            outs.append(torch.where(q[sl] >= t, 255 - q[sl], q[sl]))
        else:
            dyn = torch.full((count,), _b.CODE[AUGMIX_BATCH_ALL_OPS[kind]], dtype=code.dtype, device=code.device)
            outs.append(_b._k_lut(q[sl], dyn, p[sl], True))
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    return out if exact else out.float()


def _k_rotate(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    return _b._k_rotate(x, code, p, exact)


def _k_shear_x(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    # PIL affine (1, s, 0, 0, 1, 0): output centre (u + 0.5, v + 0.5) samples x = u + 0.5 + s * (v + 0.5)
    n, _, h, _ = x.shape
    v = torch.arange(h, device=x.device, dtype=torch.float64) + 0.5
    return _b._shift(x, p.view(n, 1) * v.view(1, h), -1, exact)


def _k_shear_y(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    n, _, _, w = x.shape
    u = torch.arange(w, device=x.device, dtype=torch.float64) + 0.5
    return _b._shift(x, p.view(n, 1) * u.view(1, w), -2, exact)


def _k_translate(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    # the official affine (1, 0, t, 0, 1, 0) reads x[u + t]: DynMix's translate by -t (out[u] = x[u - d])
    dyn = torch.where(code == _CODE["translate_x"], _b.CODE["translate_x"], _b.CODE["translate_y"])
    return _b._k_translate(x, dyn, -p, exact)


def _luminance(x: torch.Tensor, exact: bool) -> torch.Tensor:
    """PIL's ``convert("L")`` of (n, C, H, W) 0-255 values: (n, 1, H, W) float32 (ITU-R 601-2, fixed point)."""
    if x.shape[1] == 1:
        return _b._as_float(x)
    if exact:
        q = x.int()
        lum = (q[:, 0:1] * 19595 + q[:, 1:2] * 38470 + q[:, 2:3] * 7471 + 0x8000) >> 16
        return lum.float()
    return (x[:, 0:1] * 19595.0 + x[:, 1:2] * 38470.0 + x[:, 2:3] * 7471.0) * (1.0 / 65536.0)


def _smooth(x: torch.Tensor, exact: bool) -> torch.Tensor:
    """PIL's ``ImageFilter.SMOOTH`` (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, / 13, rounded; border pixels kept)."""
    xf = _b._as_float(x)
    c = xf.shape[1]
    k = torch.ones(3, 3, device=x.device, dtype=torch.float32)
    k[1, 1] = 5.0
    k = (k / 13.0).view(1, 1, 3, 3).expand(c, 1, 3, 3)
    inner = torch.nn.functional.conv2d(xf, k, groups=c)
    if exact:
        inner = inner.add_(0.5).floor_().clamp_(0.0, 255.0)
    out = xf.clone()
    out[:, :, 1:-1, 1:-1] = inner
    return out


def _k_enhance(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    """``ImageEnhance.{Color, Contrast, Brightness, Sharpness}(img).enhance(p)``: PIL's blend of a degenerate image.

    PIL computes ``degenerate + p * (img - degenerate)`` in float32 and truncates to uint8 (clipped to [0, 255]).
    """
    xf = _b._as_float(x)
    n = x.shape[0]
    degenerate = torch.zeros_like(xf)
    is_color, is_contrast = code == _CODE["color"], code == _CODE["contrast"]
    is_sharp = code == _CODE["sharpness"]
    if bool(is_color.any()) or bool(is_contrast.any()):
        lum = _luminance(x, exact)
        mean = lum.mean(dim=(1, 2, 3), keepdim=True)
        if exact:  # int(ImageStat mean + 0.5) of the L image
            mean = torch.floor(lum.double().mean(dim=(1, 2, 3), keepdim=True) + 0.5).float()
        degenerate = torch.where(is_color.view(n, 1, 1, 1), lum.expand_as(xf), degenerate)
        degenerate = torch.where(is_contrast.view(n, 1, 1, 1), mean.expand_as(xf), degenerate)
    if bool(is_sharp.any()):
        degenerate = torch.where(is_sharp.view(n, 1, 1, 1), _smooth(x, exact), degenerate)
    f = p.float().view(n, 1, 1, 1)
    out = torch.sub(xf, degenerate).mul_(f).add_(degenerate).clamp_(0.0, 255.0)  # mul then add: no fused rounding
    return out.floor_().to(torch.uint8) if exact else out


Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], torch.Tensor]
_KERNELS: tuple[tuple[Kernel, tuple[str, ...]], ...] = (
    (_k_pixel, ("autocontrast", "equalize", "posterize", "solarize")),
    (_k_rotate, ("rotate",)),
    (_k_shear_x, ("shear_x",)),
    (_k_shear_y, ("shear_y",)),
    (_k_translate, ("translate_x", "translate_y")),
    (_k_enhance, _ENHANCE),
)
_KERNEL_OF_CODE = torch.tensor([next(i for i, (_, ops) in enumerate(_KERNELS) if name in ops)
                                for name in AUGMIX_BATCH_ALL_OPS])


def _apply_codes(x: torch.Tensor, code: torch.Tensor, param: torch.Tensor, exact: bool) -> torch.Tensor:
    """Apply AugMix op ``code[i]`` (-1: none) with ``param[i]`` to every ``x[i]``, in place: one call per kernel.

    Every kernel runs once, on the slots of its ops (gathered, sorted by op so that each op is a contiguous run);
    its results are written back into ``x``; slots without a step are not touched.
    """
    idle = len(_KERNELS)
    kid = torch.where(code >= 0, _KERNEL_OF_CODE.to(code.device)[code.clamp(min=0)], idle)
    order = torch.argsort(kid * len(AUGMIX_BATCH_ALL_OPS) + code.clamp(min=0), stable=True)
    counts = torch.bincount(kid, minlength=idle + 1).tolist()  # the one host sync of a step
    start = 0
    for (kernel, _), count in zip(_KERNELS, counts):
        if count:
            idx = order[start:start + count]
            start += count
            _copy_rows(x, idx, kernel(x.index_select(0, idx), code[idx], param[idx], exact))
    return x


def _copy_rows(x: torch.Tensor, idx: torch.Tensor, rows: torch.Tensor) -> None:
    """``x[idx] = rows`` for contiguous tensors, copying whole images as wide words (index_copy_ on uint8 elements
    is about 10x slower on CPUs)."""
    n = x.shape[0]
    row_bytes = x[:1].numel() * x.element_size()
    for wide in (torch.int64, torch.int32, torch.int16, torch.uint8):
        size = torch.empty((), dtype=wide).element_size()
        if row_bytes % size == 0:
            break
    rows = rows.to(x.dtype).contiguous()
    x.view(n, -1).view(wide).index_copy_(0, idx, rows.view(rows.shape[0], -1).view(wide))


def _parameters(code: torch.Tensor, level: torch.Tensor, negative: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The official level -> parameter formulas, elementwise (float64, same float operations as Python's)."""
    h, w = size
    trunc = torch.trunc
    table = {
        "posterize": 4.0 - trunc(level * 4 / 10),  # bits kept: 4 - int_parameter(level, 4)
        "solarize": 256.0 - trunc(level * 256 / 10),  # threshold: 256 - int_parameter(level, 256)
        "rotate": trunc(level * 30 / 10),  # int_parameter(level, 30) whole degrees
        "shear_x": level * 0.3 / 10.0,  # float_parameter(level, 0.3)
        "shear_y": level * 0.3 / 10.0,
        "translate_x": trunc(level * (w / 3) / 10),  # int_parameter(level, IMAGE_SIZE / 3) whole pixels
        "translate_y": trunc(level * (h / 3) / 10),
    }
    signed = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
    enhance = level * 1.8 / 10.0 + 0.1  # float_parameter(level, 1.8) + 0.1
    param = torch.zeros_like(level)
    for name, value in table.items():
        if name in signed:
            value = torch.where(negative, -value, value)
        param = torch.where(code == _CODE[name], value, param)
    for name in _ENHANCE:
        param = torch.where(code == _CODE[name], enhance, param)
    return param


# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AugMixBatchParams:
    """The random choices of ``num_mixes`` AugMix views of every image of a batch.

    Chain slot ``s = (view * width + chain) * batch_size + image`` holds one chain of one view of one image.

    Attributes:
        code: (max depth, S) int64: the op of every step, an index into ``AUGMIX_BATCH_ALL_OPS`` (-1: no step).
        param: (max depth, S) float64: the op parameters (signed; 0 for ops without one).
        level: (max depth, S) float64: the levels drawn (NaN where there is no step).
        weights: (num_mixes, B, width) float32 chain weights (Dirichlet; each row sums to 1).
        skip: (num_mixes, B) float32 skip weights m (Beta): ``mixed = (1 - m) clean + m * sum_i w_i chain_i``.
        size: (H, W) of the images the parameters were drawn for.
    """

    code: torch.Tensor
    param: torch.Tensor
    level: torch.Tensor
    weights: torch.Tensor
    skip: torch.Tensor
    size: tuple[int, int]

    @property
    def num_mixes(self) -> int:
        return self.weights.shape[0]

    @property
    def batch_size(self) -> int:
        return self.weights.shape[1]

    @property
    def width(self) -> int:
        return self.weights.shape[2]

    @property
    def depth(self) -> torch.Tensor:
        """(S,) int64 chain depths."""
        return (self.code >= 0).long().sum(0)

    def chain(self, view: int, index: int, chain: int) -> tuple[tuple[str, float], ...]:
        """The ``(op name, parameter)`` steps of one chain, as :meth:`timm_dynmix.AugMix.apply_chain` takes them."""
        slot = (view * self.width + chain) * self.batch_size + index
        return tuple((AUGMIX_BATCH_ALL_OPS[int(self.code[t, slot])], float(self.param[t, slot]))
                     for t in range(self.code.shape[0]) if int(self.code[t, slot]) >= 0)

    def to(self, device: torch.device | str) -> AugMixBatchParams:
        return AugMixBatchParams(self.code.to(device), self.param.to(device), self.level.to(device),
                                 self.weights.to(device), self.skip.to(device), self.size)


def _check_indices(indices: Any, batch_size: int) -> list[int]:
    if isinstance(indices, np.ndarray):
        indices = torch.from_numpy(indices)
    if isinstance(indices, torch.Tensor):
        if indices.dtype.is_floating_point or indices.dtype == torch.bool or indices.ndim != 1:
            raise ValueError(f"indices must be a 1-D integer tensor or sequence, got a {indices.dtype} tensor of "
                             f"shape {tuple(indices.shape)}")
        out = indices.tolist()
    elif isinstance(indices, Sequence) and not isinstance(indices, str):
        out = list(indices)
    else:
        raise TypeError(f"indices must be a 1-D integer tensor or sequence, got {type(indices).__name__}")
    if len(out) != batch_size:
        raise ValueError(f"indices must hold one dataset index per image: {batch_size} expected, got {len(out)}")
    for i in out:
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise ValueError(f"indices must be integers >= 0, got {i!r}")
    return out


class AugMixBatch(nn.Module):
    """The official AugMix of a batch of images, every image and view with its own random draws, on any device.

    Args:
        config: ``"augmix"`` (official CIFAR defaults), ``"augmix_official-s3-w3-d0-a1"``, timm's grammar
            ``"augmix-m3-w3-d-1-a1"`` or an :class:`~timm_dynmix.AugMixConfig`.
        num_mixes: Mixed views per image (2 for AugMix + JSD: ``[clean, mix_1, mix_2]``), 1 to 8.
        all_ops: Also draw colour, contrast, brightness and sharpness (the official ``--all-ops``, the same four
            ops timm's AugMix adds); off by default: they overlap the test corruptions.
        generator: Default ``torch.Generator`` for the draws (on the batch's device) when no ``seed`` is given.
        chunk_size: Images processed at once (memory bound); default: about 16 MiB of chains on the CPU, 1 GiB on
            GPUs.

    ``forward(x)`` takes a uint8 (0-255) or float ([0, 1]) batch ``(B, C, H, W)``, C = 1 or 3, H, W >= 8, and returns
    a tuple of ``num_mixes`` batches of the same shape and dtype (uint8 rounded), view k of image i in ``out[k][i]``.
    :meth:`views` makes the normalized split-major training batch ``[clean, mix_1, ..., mix_N]``.

    Example:
        >>> aug = AugMixBatch("augmix")
        >>> x = aug.views(x_uint8, mean, std, seed=0, epoch=3, indices=batch_indices)  # (3B, C, H, W) float32
    """

    def __init__(self, config: str | AugMixConfig = "augmix", *, num_mixes: int = 2, all_ops: bool = False,
                 generator: torch.Generator | None = None, chunk_size: int | None = None):
        super().__init__()
        self.config = parse_augmix_batch_config(config)
        if isinstance(num_mixes, bool) or not isinstance(num_mixes, int) or not 1 <= num_mixes <= 8:
            raise ValueError(f"num_mixes must be an integer in [1, 8], got {num_mixes!r}")
        if not isinstance(all_ops, bool):
            raise TypeError(f"all_ops must be a bool, got {all_ops!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                       or chunk_size < 1):
            raise ValueError(f"chunk_size must be None or an integer >= 1, got {chunk_size!r}")
        self._num_mixes = num_mixes
        self.all_ops = all_ops
        self.ops = AUGMIX_BATCH_ALL_OPS if all_ops else AUGMIX_BATCH_OPS
        self.generator = generator
        self.chunk_size = chunk_size

    @property
    def num_mixes(self) -> int:
        return self._num_mixes

    @property
    def num_splits(self) -> int:
        """Views per image in :meth:`views` (clean + ``num_mixes``), the ``num_splits`` of ``JsdLoss``."""
        return self._num_mixes + 1

    @property
    def max_depth(self) -> int:
        return self.config.depth if self.config.depth > 0 else _MAX_RANDOM_DEPTH

    def extra_repr(self) -> str:
        return f"{self.config.to_string()!r}, num_mixes={self.num_mixes}, all_ops={self.all_ops}"

    # -- sample ---------------------------------------------------------------------------------------------------
    def _row_sizes(self) -> tuple[int, int]:
        width = self.config.width
        return width + 2, width + 3 * width * self.max_depth + width + 2  # gammas; uniforms

    def _draw_rows(self, rows: int, device: torch.device, generator: torch.Generator | None, seed: int | None,
                   epoch: int, indices: list[int] | None, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Gamma(alpha + 1) variates (rows, G) and uniforms (rows, U), float64; row ``view * B + image``."""
        n_gamma, n_unif = self._row_sizes()
        conc = self.config.alpha + 1.0
        if seed is None:
            gam = torch._standard_gamma(torch.full((rows, n_gamma), conc, dtype=torch.float64, device=device),
                                        generator=generator)
            u = torch.rand((rows, n_unif), dtype=torch.float64, device=device, generator=generator)
            return gam, u
        gam = torch.empty((rows, n_gamma), dtype=torch.float64)
        u = torch.empty((rows, n_unif), dtype=torch.float64)
        conc_t = torch.full((n_gamma,), conc, dtype=torch.float64)
        if indices is None:  # sample_params fills them in whenever it passes a seed
            raise ValueError("per-sample seeding needs the dataset index of every image")
        g = torch.Generator()
        for view in range(self.num_mixes):  # a loop over samples for the small per-sample parameter rows only
            for i, index in enumerate(indices):
                g.manual_seed(derive_seed(seed, epoch, index, view + 1, split=SEED_SPLIT))
                row = view * batch_size + i
                gam[row] = torch._standard_gamma(conc_t, generator=g)
                u[row] = torch.rand(n_unif, dtype=torch.float64, generator=g)
        return gam.to(device), u.to(device)

    def sample_params(self, batch_size: int, size: tuple[int, int], *, device: torch.device | str | None = None,
                      generator: torch.Generator | None = None, seed: int | None = None, epoch: int = 0,
                      indices: Sequence[int] | torch.Tensor | None = None) -> AugMixBatchParams:
        """Draw the choices of ``num_mixes`` views of ``batch_size`` images of ``size = (H, W)``.

        Args:
            batch_size: Images in the batch.
            size: (H, W) of the images (the translations scale with it).
            device: Where the parameters live (default: the generator's device, else the CPU).
            generator: Source of all draws when no ``seed`` is given (else torch's default generator).
            seed: Per-sample seeding: view ``k`` of image ``i`` from ``derive_seed(seed, epoch, indices[i], k + 1,
                split="augmix")``.
            epoch: The epoch key of the per-sample seeds.
            indices: Dataset index of every image (default with a seed: 0 to ``batch_size - 1``).

        Raises:
            ValueError: for a seed together with a generator, indices without a seed, or bad indices.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be an integer >= 0, got {batch_size!r}")
        if seed is not None and generator is not None:
            raise ValueError("give either a generator or a seed (per-sample seeding), not both")
        if indices is not None and seed is None:
            raise ValueError("indices select per-sample seeds: they need a seed too")
        rows_indices: list[int] | None = None
        if seed is not None:
            for name, value in (("seed", seed), ("epoch", epoch)):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
            rows_indices = list(range(batch_size)) if indices is None else _check_indices(indices, batch_size)
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        g = _b._check_generator(generator, device)
        cfg, n, b = self.config, self.num_mixes, batch_size
        width, depth = cfg.width, self.max_depth
        rows = n * b
        gam, u = self._draw_rows(rows, device, g, seed, epoch, rows_indices, b)
        # gammas -> Dirichlet weights and the Beta skip weight (log space: exact for any alpha)
        tiny = torch.finfo(torch.float64).tiny
        log_g = torch.log(gam) + torch.log(u[:, -(width + 2):].clamp(min=tiny)) / cfg.alpha
        weights = torch.softmax(log_g[:, :width], dim=1).float().view(n, b, width)
        skip = torch.sigmoid(log_g[:, width] - log_g[:, width + 1]).float().view(n, b)
        # uniforms -> depths, ops, levels, signs; per row: (width,) then 3 x (width, depth)
        per = width * depth
        u_depth = u[:, :width]
        u_op, u_level, u_sign = (u[:, width + k * per:width + (k + 1) * per].reshape(rows, width, depth)
                                 for k in range(3))
        if cfg.depth > 0:
            chain_depth = torch.full((rows, width), cfg.depth, dtype=torch.long, device=device)
        else:
            chain_depth = 1 + (u_depth * _MAX_RANDOM_DEPTH).long().clamp_(max=_MAX_RANDOM_DEPTH - 1)
        op = (u_op * len(self.ops)).long().clamp_(max=len(self.ops) - 1)  # the op set's codes are 0..len - 1
        level = MIN_LEVEL + (cfg.severity - MIN_LEVEL) * u_level
        negative = u_sign > 0.5  # the official test: negative when a uniform exceeds 0.5
        active = torch.arange(depth, device=device).view(1, 1, depth) < chain_depth.view(rows, width, 1)
        param = _parameters(op, level, negative, size)
        code = torch.where(active, op, -1)
        param = torch.where(active, param, 0.0)
        level = torch.where(active, level, math.nan)
        # (view, image, chain, step) -> (step, slot) with slot = (view * width + chain) * B + image
        def slots(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, b, width, depth).permute(3, 0, 2, 1).reshape(depth, n * width * b)

        return AugMixBatchParams(slots(code), slots(param), slots(level), weights, skip, (int(size[0]), int(size[1])))

    # -- apply ----------------------------------------------------------------------------------------------------
    def _chunk(self, x: torch.Tensor) -> int:
        if self.chunk_size is not None:
            return self.chunk_size
        c, h, w = x.shape[1:]
        per_image = self.num_mixes * self.config.width * c * h * w * (1 if x.dtype == torch.uint8 else 4)
        budget = _b._CUDA_CHUNK_BYTES if x.device.type == "cuda" else _b._CPU_CHUNK_BYTES
        return max(1, budget // per_image)

    def _run(self, store: torch.Tensor, exact: bool, params: AugMixBatchParams,
             sink: Callable[[int, int, int, torch.Tensor], None]) -> None:
        """Run the chains and the mix; hand every view chunk, float32 on the 0-255 scale, to ``sink``."""
        b = store.shape[0]
        n, width = self.num_mixes, params.width
        dev = store.device
        step = self._chunk(store)
        for b0 in range(0, b, step):  # chunks of images bound memory; each chunk is one batched computation
            b1 = min(b, b0 + step)
            nb = b1 - b0
            slots = (torch.arange(n * width, device=dev).view(-1, 1) * b + torch.arange(b0, b1, device=dev)).view(-1)
            chains = store[b0:b1].repeat(n * width, 1, 1, 1)
            for t in range(params.code.shape[0]):
                chains = _apply_codes(chains, params.code[t, slots], params.param[t, slots], exact)
            chains = chains.view(n, width, nb, *store.shape[1:])
            clean = _b._as_float(store[b0:b1])
            for v in range(n):
                w = params.weights[v, b0:b1]  # (nb, width) float32
                m = params.skip[v, b0:b1].view(nb, 1, 1, 1)
                mix = chains[v, 0] * w[:, 0].view(nb, 1, 1, 1)  # float32 (uint8 * float32 promotes)
                for i in range(1, width):
                    mix.addcmul_(chains[v, i], w[:, i].view(nb, 1, 1, 1))
                sink(v, b0, b1, mix.mul_(m).addcmul_(clean, 1.0 - m))

    def _prepare(self, x: torch.Tensor, generator: torch.Generator | None, seed: int | None, epoch: int,
                 indices: Any) -> tuple[torch.Tensor, bool, AugMixBatchParams]:
        x = _b._check_batch(x, "AugMixBatch")
        g = None if seed is not None else (generator if generator is not None else self.generator)
        if seed is not None and generator is not None:
            raise ValueError("give either a generator or a seed (per-sample seeding), not both")
        g = _b._check_generator(g, x.device)
        store, exact = _b._to_storage(x)
        params = self.sample_params(x.shape[0], (int(x.shape[2]), int(x.shape[3])), device=x.device, generator=g,
                                    seed=seed, epoch=epoch, indices=indices)
        return store, exact, params

    def apply(  # type: ignore[override]  # torchvision v2's sample-then-apply, not nn.Module.apply(fn)
            self, x: torch.Tensor, params: AugMixBatchParams) -> tuple[torch.Tensor, ...]:
        """The ``num_mixes`` views of ``x`` for given ``params`` (same shape and dtype as ``x``)."""
        x = _b._check_batch(x, "AugMixBatch")
        if not isinstance(params, AugMixBatchParams):
            raise TypeError(f"params must be AugMixBatchParams (from sample_params), got {type(params).__name__}")
        if params.size != tuple(x.shape[2:]) or params.batch_size != x.shape[0]:
            raise ValueError(f"params were drawn for {params.batch_size} images of {params.size}, "
                             f"got a batch of shape {tuple(x.shape)}")
        if params.num_mixes != self.num_mixes:
            raise ValueError(f"params hold {params.num_mixes} views, this AugMixBatch makes {self.num_mixes}")
        store, exact = _b._to_storage(x)
        return self._apply_params(x, store, exact, params.to(x.device))

    def _apply_params(self, x: torch.Tensor, store: torch.Tensor, exact: bool,
                      params: AugMixBatchParams) -> tuple[torch.Tensor, ...]:
        outs = [torch.empty_like(x) for _ in range(self.num_mixes)]

        def sink(v: int, b0: int, b1: int, out: torch.Tensor) -> None:
            if exact:
                outs[v][b0:b1].copy_(out.round_().clamp_(0.0, 255.0))
            else:
                outs[v][b0:b1].copy_(out.mul_(1.0 / 255.0))

        self._run(store, exact, params, sink)
        return tuple(outs)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, *, seed: int | None = None,
                epoch: int = 0, indices: Sequence[int] | torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``num_mixes`` AugMix views of every image of ``x`` (uint8 or float in [0, 1], (B, C, H, W)).

        Float views are the exact float mix (not clipped, as the official code); uint8 views are rounded.
        """
        store, exact, params = self._prepare(x, generator, seed, epoch, indices)
        return self._apply_params(x, store, exact, params)

    def views(self, x: torch.Tensor, mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
              std: Sequence[float] = IMAGENET_DEFAULT_STD, generator: torch.Generator | None = None, *,
              seed: int | None = None, epoch: int = 0,
              indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """The normalized split-major training batch ``[clean, mix_1, ..., mix_N]`` of a uint8 (or [0, 1]) batch.

        Returns a float32 tensor of shape ``((1 + num_mixes) * B, C, H, W)``: rows ``[:B]`` are the clean images,
        rows ``[k * B:(k + 1) * B]`` view k, all normalized with ``(x / 255 - mean) / std`` (the views unrounded, as
        the official code mixes normalized tensors). Use ``JsdLoss(num_splits=self.num_splits)`` with
        ``y.repeat(num_splits)``.
        """
        store, exact, params = self._prepare(x, generator, seed, epoch, indices)
        b, c = x.shape[:2]
        mean_t, std_t = _b._channel_stats(mean, std, c, x.device)
        scale = (1.0 / (255.0 * std_t)).view(1, c, 1, 1)
        shift = (-mean_t / std_t).view(1, c, 1, 1)
        out = torch.empty(((1 + self.num_mixes) * b, *x.shape[1:]), dtype=torch.float32, device=x.device)
        torch.mul(store, scale, out=out[:b]).add_(shift)

        def sink(v: int, b0: int, b1: int, mixed: torch.Tensor) -> None:
            dst = out[(v + 1) * b + b0:(v + 1) * b + b1]
            torch.mul(mixed, scale, out=dst).add_(shift)

        self._run(store, exact, params, sink)
        return out
