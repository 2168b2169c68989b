"""``DynamicMixupBatch``: Dynamic Mixup on image batches, with per-sample random ops, on any device.

The same algorithm as :class:`timm_dynmix.DynamicMixup` (same ``DynMixConfig``, op table, level -> parameter
formulas and mixing), but on a ``(B, C, H, W)`` tensor: every image gets its own chains (op choice, depth, level,
sign) and its own mixing weights, drawn from a ``torch.Generator`` on the batch's device. There is no Python loop
over images: the chain slots of a batch are grouped by op kernel and each group is processed with batched tensor
code (``grid_sample`` for rotations, gathers for translations and shears, per-sample lookup tables built from
vectorized histograms for the pixel ops, per-size separable resampling for ``downscale``).

Exactness (uint8 input). Every op reproduces PIL's arithmetic on the uint8 grid, as ``OPS[name].apply`` does:

* flips, translations (whole pixels: a gather of the input's values, 0 where uncovered), solarize, posterize:
  exact.
* autocontrast: PIL's lookup table ``int(i * scale + offset)`` with ``scale = 255 / (hi - lo)``,
  ``offset = -lo * scale``, computed in float64 like Python, clipped to [0, 255]; identity when a channel holds a
  single value (``hi <= lo``). Exact.
* equalize: PIL's per-channel table: ``step = (N - count of the largest value present) // 255``; identity when
  ``step == 0`` (a single value, or nearly so); else ``lut[i] = (step // 2 + #pixels below i) // step``, clipped
  to 255. Exact.
* rotate, shear: PIL samples the input at ``A @ (x + 0.5, y + 0.5)`` (pixel centres), returns 0 where that
  point falls outside ``[0, W) x [0, H)``, interpolates bilinearly with edge-clamped neighbours inside, and
  *truncates* the result to uint8. We do the same (``grid_sample`` with ``padding_mode="border"`` plus an
  outside mask for rotations; two-tap lerps and gathers for shears), in float32 instead of double, and truncate
  after adding ``1e-3`` so that float32 rounding does not turn an exact integer such as 37 into 36.99999.
  Pixels differ by 1 where the exact value lies within about 1e-3 below an integer, where PIL's double
  arithmetic lands just below an exact integer, or, for rotations, where float32 coordinates move a sample
  across a pixel; outputs match PIL to under 0.1/255 on average.
* downscale: PIL's separable resampling (a point-sampled box filter to shrink, the triangle filter to grow back),
  with PIL's coefficients quantized to 22 fixed-point bits and rounding to uint8 after each pass. Pixels whose
  value is within float32 error of a rounding tie may differ by 1.

Float input (values in [0, 1]) runs the same code on the 0-255 scale without the intermediate uint8 rounding of
the geometric ops and of the mix, and returns floats; the pixel ops are defined on 256 levels, so they round
their input to the nearest level first.

Randomness. ``sample_params`` draws the same distribution as ``DynamicMixup.sample_params`` (per chain: depth 2
with probability ``depth2_prob``; per op call: an op uniformly with replacement, a level uniform in
``[0.1, magnitude)``, a random sign for signed ops; per view: m1 ~ Beta(alpha, alpha), m2 = 1 - m1 or an
independent Beta, the optional blend weight b ~ Beta). Only the order of the draws differs (it is vectorized:
see :meth:`DynamicMixupBatch.sample_params`), so a seed does not reproduce the PIL path's views, but the two
paths are identical in distribution (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from timm_dynmix.augment.config import DynMixConfig, parse_config
from timm_dynmix.augment.dynmix import MixParams
from timm_dynmix.augment.ops import MIN_LEVEL, OPS

__all__ = ["DynamicMixupBatch", "BatchParams", "apply_op", "MIN_SIZE"]

MIN_SIZE = 8  # smallest image side, as for the PIL path
TRUNC_EPS = 1e-3  # added before truncating float32 bilinear results to uint8 (PIL truncates exact doubles)
FLOAT_RANGE_TOL = 1e-2  # float batches may stray this far outside [0, 1] (clamped); further is an error
_CPU_CHUNK_BYTES = 16 << 20  # CPU: chain storage per chunk; keeps temporaries under glibc's mmap threshold
_CUDA_CHUNK_BYTES = 1 << 30

_OP_NAMES = tuple(OPS)
CODE = {name: i for i, name in enumerate(_OP_NAMES)}


# ----------------------------------------------------------------------------------------------------------------
# input checks
def _check_batch(x: object, what: str = "DynamicMixupBatch") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        hint = " (for PIL images use timm_dynmix.DynamicMixup)" if type(x).__module__.startswith("PIL") else ""
        raise TypeError(f"{what} expects a torch.Tensor batch (B, C, H, W), got {type(x).__name__}{hint}")
    if x.ndim != 4:
        hint = "; add a batch dimension with x.unsqueeze(0)" if x.ndim == 3 else ""
        raise ValueError(f"{what} expects a 4-D batch (B, C, H, W), got a {x.ndim}-D tensor of shape "
                         f"{tuple(x.shape)}{hint}")
    if x.dtype != torch.uint8 and not x.dtype.is_floating_point:
        raise ValueError(f"{what} expects a uint8 batch (0-255) or a floating-point batch in [0, 1], "
                         f"got dtype {x.dtype}")
    c, h, w = x.shape[1:]
    if c not in (1, 3):
        hint = ("; this looks channels-last, use x.permute(0, 3, 1, 2)" if x.shape[-1] in (1, 3) else
                "; drop an alpha channel first, e.g. x[:, :3]" if c == 4 else "")
        raise ValueError(f"{what} supports 1 or 3 channels, got C={c} (shape {tuple(x.shape)}){hint}")
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"{what} needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {h}x{w} (H x W)")
    return x


def _check_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    gdev = generator.device
    same = gdev.type == device.type and (device.type == "cpu" or gdev.index in (None, device.index))
    if not same:
        raise ValueError(f"the generator is on {gdev} but the batch is on {device}; "
                         f"create it with torch.Generator(device={str(device)!r}).manual_seed(seed)")
    return generator


def _to_storage(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """uint8 batches stay uint8 (exact mode); float batches become float32 on the 0-255 scale."""
    if x.dtype == torch.uint8:
        return x, True
    if x.numel() == 0:
        return x.detach().float(), False
    lo_t, hi_t = torch.aminmax(x.detach())
    lo, hi = float(lo_t), float(hi_t)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -FLOAT_RANGE_TOL or hi > 1 + FLOAT_RANGE_TOL:
        raise ValueError(f"float batches must hold images in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                         "divide 0-255 floats by 255, and run DynMix before normalization (or pass uint8)")
    return x.detach().float().mul(255.0).clamp_(0.0, 255.0), False


# ----------------------------------------------------------------------------------------------------------------
# op kernels: (x storage (n, C, H, W), code (n,), param (n,) float64, exact) -> same shape and dtype
def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype == torch.uint8 else x


def _finish_bilinear(out: torch.Tensor, exact: bool) -> torch.Tensor:
    if not exact:
        return out
    return out.add_(TRUNC_EPS).to(torch.uint8)  # values are in [0, 255]; the cast truncates like PIL's (UINT8)v


def _k_flip_h(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    return x.flip(-1)


def _k_flip_v(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    return x.flip(-2)


def _shift(x: torch.Tensor, s: torch.Tensor, dim: int, exact: bool) -> torch.Tensor:
    """Resample along ``dim`` (-1: x, -2: y) at ``j + s`` for output index ``j``, PIL-style.

    ``s`` is (n, M) float64, one shift per row (dim -1, M = H) or per column (dim -2, M = W). PIL's input point is
    ``j + 0.5 + s``: outside ``[0, L)`` the output is 0; inside it interpolates between the edge-clamped
    neighbours ``floor(j + s)`` and ``floor(j + s) + 1`` with weight ``frac(s)``.

    The line is padded to ``[x0, x0, x0..x(L-1), x(L-1), x(L-1)]`` and interpolated once with the per-line
    weight; entry ``m`` of the result then holds the value at ``j + s`` for ``m = j + floor(s) + 2``. The ends
    are set to 0, and the two half-pixel border entries to 0 where their point lies outside, so that one gather
    with clamped indices gives PIL's output, without a mask.
    """
    n, c, h, w = x.shape
    length = w if dim == -1 else h
    xf = _as_float(x)
    k = torch.floor(s)
    f = (s - k).float()
    j = torch.arange(length, device=x.device)
    first, last = xf.narrow(dim, 0, 1), xf.narrow(dim, length - 1, 1)
    xp = torch.cat([first, first, xf, last, last], dim=dim)  # L + 4
    fv = f.view(n, 1, h, 1) if dim == -1 else f.view(n, 1, 1, w)
    lerped = torch.lerp(xp.narrow(dim, 0, length + 3), xp.narrow(dim, 1, length + 3), fv)  # L + 3
    # entry 1 is x0, the value on [-0.5, 0): inside when frac >= 0.5; entry L + 1 (on [L - 1, L - 0.5)) when < 0.5
    lerped.narrow(dim, 0, 1).zero_()
    lerped.narrow(dim, length + 2, 1).zero_()
    lerped.narrow(dim, 1, 1).mul_((fv >= 0.5).to(fv.dtype))
    lerped.narrow(dim, length + 1, 1).mul_((fv < 0.5).to(fv.dtype))
    if dim == -1:
        m = (k.long().view(n, h, 1) + (j + 2).view(1, 1, w)).clamp_(0, w + 2)
    else:
        m = (k.long().view(n, 1, w) + (j + 2).view(1, h, 1)).clamp_(0, h + 2)
    out = lerped.gather(dim, m.view(n, 1, h, w).expand(n, c, h, w))
    return _finish_bilinear(out, exact)


def _k_shear_x(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    # PIL coefficients (1, p, -p * cy, 0, 1, 0) -> xin = u + p * (v - cy): row v is shifted by p * (v - cy)
    n, _, h, _ = x.shape
    v = torch.arange(h, device=x.device, dtype=torch.float64) + (0.5 - h / 2.0)
    return _shift(x, p.view(n, 1) * v.view(1, h), -1, exact)


def _k_shear_y(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    # (1, 0, 0, p, 1, -p * cx) -> yin = v + p * (u - cx): column u is shifted by p * (u - cx)
    n, _, _, w = x.shape
    u = torch.arange(w, device=x.device, dtype=torch.float64) + (0.5 - w / 2.0)
    return _shift(x, p.view(n, 1) * u.view(1, w), -2, exact)


def _k_translate(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    """translate_x / translate_y by whole pixels: ``out[v, u] = x[v - dy, u - dx]``, 0 where uncovered.

    A gather of the input's own values (no arithmetic on them), so uint8 and float batches are moved exactly, as
    the PIL path's paste does. ``p`` holds whole numbers (checked where parameters enter).
    """
    n, c, h, w = x.shape
    d = p.long().view(n, 1, 1)
    horizontal = (code == CODE["translate_x"]).view(n, 1, 1)
    zero = torch.zeros_like(d)
    u = torch.arange(w, device=x.device).view(1, 1, w) - torch.where(horizontal, d, zero)  # source column (n, 1, W)
    v = torch.arange(h, device=x.device).view(1, h, 1) - torch.where(horizontal, zero, d)  # source row (n, H, 1)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)  # (n, H, W)
    idx = (v.clamp(0, h - 1) * w + u.clamp(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
    out = x.reshape(n, c, h * w).gather(2, idx).view(n, c, h, w)
    return out.mul_(inside.view(n, 1, h, w).to(out.dtype))


def _check_whole_translations(code: torch.Tensor, param: torch.Tensor) -> None:
    """``ValueError`` unless every translation parameter is a whole number of pixels (as ``OPS[...].apply``)."""
    moves = (code == CODE["translate_x"]) | (code == CODE["translate_y"])
    bad = moves & ~(torch.isfinite(param) & (param == torch.trunc(param)))
    if bool(bad.any()):
        raise ValueError(f"translate_x and translate_y move whole pixels: their parameters must be whole numbers, "
                         f"got {torch.unique(param[bad])[:4].tolist()}")


def _k_rotate(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    # PIL's Image.rotate(p): output centre (u, v) samples the input at
    # (cos r (u - cx) - sin r (v - cy) + cx,  sin r (u - cx) + cos r (v - cy) + cy),  r = radians(p mod 360)
    n, _, h, w = x.shape
    r = torch.deg2rad(torch.remainder(p, 360.0))
    cos, sin = torch.cos(r).view(n, 1, 1), torch.sin(r).view(n, 1, 1)
    u = (torch.arange(w, device=x.device, dtype=torch.float64) + (0.5 - w / 2.0)).view(1, 1, w)
    v = (torch.arange(h, device=x.device, dtype=torch.float64) + (0.5 - h / 2.0)).view(1, h, 1)
    # grid_sample's normalized coordinates (align_corners=False): g = 2 * xin / W - 1
    grid = torch.empty(n, h, w, 2, device=x.device, dtype=torch.float32)
    torch.add((cos * u * (2.0 / w)).float(), (-sin * v * (2.0 / w)).float(), out=grid[..., 0])
    torch.add((sin * u * (2.0 / h)).float(), (cos * v * (2.0 / h)).float(), out=grid[..., 1])
    inside = (grid >= -1.0) & (grid < 1.0)
    inside = inside[..., 0] & inside[..., 1]
    out = F.grid_sample(_as_float(x), grid, mode="bilinear", padding_mode="border", align_corners=False)
    out.mul_(inside.view(n, 1, h, w).to(out.dtype))
    return _finish_bilinear(out, exact)


def _quantized(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.uint8 else x.round().clamp_(0.0, 255.0).to(torch.uint8)


def _histograms(q: torch.Tensor) -> torch.Tensor:
    """Per-(image, channel) 256-bin histograms of a uint8 batch (n, C, H, W) -> (n * C, 256) int64."""
    rows = q.shape[0] * q.shape[1]
    offsets = (torch.arange(rows, device=q.device, dtype=torch.int32) * 256).view(rows, 1)
    flat = q.reshape(rows, -1).int().add_(offsets)
    return torch.bincount(flat.view(-1), minlength=rows * 256).view(rows, 256)


def _autocontrast_lut(q: torch.Tensor) -> torch.Tensor:
    """PIL's ImageOps.autocontrast tables (cutoff 0) for a uint8 batch: (n * C, 256) float64."""
    rows = q.shape[0] * q.shape[1]
    flat = q.reshape(rows, -1)
    lo, hi = flat.amin(dim=1).double().view(rows, 1), flat.amax(dim=1).double().view(rows, 1)
    i = torch.arange(256, device=q.device, dtype=torch.float64).view(1, 256)
    scale = torch.full_like(lo, 255.0) / (hi - lo).clamp(min=1.0)  # tensor / tensor: a true division like Python's
    offset = -lo * scale
    lut = torch.floor(i * scale + offset).clamp_(0.0, 255.0)  # int(ix * scale + offset), clipped (same after clip)
    return torch.where(hi > lo, lut, i)


def _equalize_lut(q: torch.Tensor) -> torch.Tensor:
    """PIL's ImageOps.equalize tables for a uint8 batch: (n * C, 256) float64.

    Integer divisions of counts below 2**31 are exact as float64 divisions followed by floor.
    """
    hist = _histograms(q).double()
    top = q.reshape(hist.shape[0], -1).amax(dim=1, keepdim=True).long()  # the largest value present
    step = torch.floor((hist.sum(1, keepdim=True) - hist.gather(1, top)) / 255.0)
    below = torch.cumsum(hist, dim=1) - hist  # pixels strictly below each value
    lut = torch.floor((torch.floor(step / 2.0) + below) / step.clamp(min=1.0)).clamp_(max=255.0)
    i = torch.arange(256, device=q.device, dtype=torch.float64).view(1, 256)
    return torch.where(step > 0, lut, i)


def _k_lut(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    """The pixel ops (solarize, posterize, autocontrast, equalize): one 256-entry table per image and channel.

    ``code`` comes sorted (see ``_apply_codes``): every op's images form one contiguous run.
    """
    n, c, h, w = x.shape
    q = _quantized(x)
    kinds, counts = torch.unique_consecutive(code, return_counts=True)
    i = torch.arange(256, device=x.device, dtype=torch.float32).view(1, 1, 256)
    tables, start = [], 0
    for kind, count in zip(kinds.tolist(), counts.tolist()):
        sl = slice(start, start + count)
        start += count
        if kind == CODE["solarize"]:  # invert values >= threshold
            t = p[sl].float().view(-1, 1, 1)
            tables.append(torch.where(i >= t, 255.0 - i, i).expand(count, c, 256))
        elif kind == CODE["posterize"]:  # i & ~(2 ** (8 - bits) - 1)
            keep = torch.exp2(8.0 - p[sl].float().clamp(min=1.0)).view(-1, 1, 1)
            tables.append((torch.floor(i / keep) * keep).expand(count, c, 256))
        else:
            fn = _autocontrast_lut if kind == CODE["autocontrast"] else _equalize_lut
            tables.append(fn(q[sl]).float().view(count, c, 256))
    lut = tables[0] if len(tables) == 1 else torch.cat(tables)
    out = lut.to(torch.uint8).view(n * c, 256).gather(1, q.reshape(n * c, h * w).long()).view(n, c, h, w)
    return out if exact else out.float()


@lru_cache(maxsize=512)
def _pil_coeffs(in_size: int, out_size: int, box: bool) -> tuple[np.ndarray, np.ndarray]:
    """PIL's resampling taps for one axis (``precompute_coeffs``): indices (out, K) and 8-bit fixed-point weights.

    ``box`` selects PIL's BOX filter (1 on (-0.5, 0.5], support 0.5), otherwise BILINEAR (triangle, support 1).
    Taps with weight 0 are dropped (K is the largest number of non-zero taps of an output pixel).
    """
    support0 = 0.5 if box else 1.0
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = support0 * filterscale
    ksize = math.ceil(support) * 2 + 1
    idx = np.zeros((out_size, ksize), np.int64)
    wts = np.zeros((out_size, ksize), np.float64)
    for xx in range(out_size):  # a loop over output columns of one axis (<= the image side), not over images
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        taps = (np.arange(xmax) + xmin - center + 0.5) / filterscale
        k = ((taps > -0.5) & (taps <= 0.5)).astype(np.float64) if box else np.clip(1.0 - np.abs(taps), 0.0, None)
        if k.sum() != 0.0:
            k = k / k.sum()
        k = np.floor(0.5 + k * (1 << 22)) / (1 << 22)  # normalize_coeffs_8bpc (weights >= 0)
        nz = np.flatnonzero(k)
        idx[xx, :len(nz)] = xmin + nz
        idx[xx, len(nz):] = xmin
        wts[xx, :len(nz)] = k[nz]
    used = max(1, int((wts != 0).sum(1).max()))
    return idx[:, :used], wts[:, :used].astype(np.float32)


def _resample_axis(x: torch.Tensor, dim: int, out_size: int, box: bool, exact: bool) -> torch.Tensor:
    n, c, h = x.shape[:3]
    in_size = x.shape[dim]
    if in_size == out_size:
        return x
    idx, wts = _pil_coeffs(in_size, out_size, box)
    idx_t = torch.from_numpy(idx).to(x.device)
    w_t = torch.from_numpy(wts).to(x.device)
    out: torch.Tensor | None = None
    for t in range(idx.shape[1]):  # <= 2 taps for these filters
        if dim == -1:  # a gather with a broadcast index is much faster than index_select along the last dim
            term = x.gather(-1, idx_t[:, t].view(1, 1, 1, out_size).expand(n, c, h, out_size))
            term.mul_(w_t[:, t].view(1, 1, 1, out_size))
        else:
            term = x.index_select(-2, idx_t[:, t]).mul_(w_t[:, t].view(1, 1, out_size, 1))
        out = term if out is None else out.add_(term)
    if out is None:
        raise ValueError(f"a resampling filter needs at least one tap, got index shape {tuple(idx.shape)}")
    if exact:  # PIL stores every pass as uint8: round half up (weights sum to 1: no clipping needed)
        out = out.add_(0.5).floor_()
    return out


def _k_downscale(x: torch.Tensor, code: torch.Tensor, p: torch.Tensor, exact: bool) -> torch.Tensor:
    # PIL: img.resize((round(W * p), round(H * p)), BOX).resize((W, H), BILINEAR); horizontal pass first
    h, w = x.shape[2:]
    small_w = torch.round(w * p).clamp(min=1).long()
    small_h = torch.round(h * p).clamp(min=1).long()
    key = small_h * (w + 1) + small_w
    out = x.clone()
    for k in torch.unique(key).tolist():  # one batched resize per distinct target size
        idx = (key == k).nonzero().view(-1)
        sh, sw = divmod(int(k), w + 1)
        y = x.index_select(0, idx).float()
        y = _resample_axis(_resample_axis(y, -1, sw, True, exact), -2, sh, True, exact)
        y = _resample_axis(_resample_axis(y, -1, w, False, exact), -2, h, False, exact)
        out.index_copy_(0, idx, y.to(x.dtype) if exact else y)
    return out


Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], torch.Tensor]
_KERNELS: dict[str, tuple[Kernel, tuple[str, ...]]] = {
    "flip_h": (_k_flip_h, ("flip_h",)),
    "flip_v": (_k_flip_v, ("flip_v",)),
    "translate": (_k_translate, ("translate_x", "translate_y")),
    "shear_x": (_k_shear_x, ("shear_x",)),
    "shear_y": (_k_shear_y, ("shear_y",)),
    "rotate": (_k_rotate, ("rotate",)),
    "lut": (_k_lut, ("autocontrast", "equalize", "solarize", "posterize")),
    "downscale": (_k_downscale, ("downscale",)),
}
_KERNEL_LIST = tuple(_KERNELS.values())
_KERNEL_OF_CODE = torch.tensor([next(i for i, (_, ops) in enumerate(_KERNEL_LIST) if name in ops)
                                for name in _OP_NAMES])
if sorted(n for _, ops in _KERNEL_LIST for n in ops) != sorted(_OP_NAMES):
    raise RuntimeError("every DynMix op needs exactly one batched kernel")


def _apply_codes(x: torch.Tensor, code: torch.Tensor, param: torch.Tensor, exact: bool) -> torch.Tensor:
    """Apply op ``code[i]`` (an index into ``OPS``, or -1 for none) with ``param[i]`` to every ``x[i]``.

    The slots are sorted by kernel (then by op), so that every kernel runs once, on a contiguous slice, and sees
    each of its ops as a contiguous run; the results are put back in the original order with one gather.
    """
    idle = len(_KERNEL_LIST)
    kid = torch.where(code >= 0, _KERNEL_OF_CODE.to(code.device)[code.clamp(min=0)], idle)
    counts = torch.bincount(kid, minlength=idle + 1).tolist()  # the one host sync of a step
    if counts[idle] == x.shape[0]:
        return x
    order = torch.argsort(kid * len(_OP_NAMES) + code.clamp(min=0), stable=True)
    xs, cs, ps = x.index_select(0, order), code[order], param[order]
    outs, start = [], 0
    for (kernel, _), count in zip(_KERNEL_LIST + ((None, ()),), counts):
        if count:
            sl = slice(start, start + count)
            outs.append(xs[sl] if kernel is None else kernel(xs[sl], cs[sl], ps[sl], exact))
            start += count
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    return out.index_select(0, torch.argsort(order))


def apply_op(name: str, x: torch.Tensor, param: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Apply one DynMix op with a given parameter to every image of a batch (the batched ``OPS[name].apply``).

    Args:
        name: An op name (``timm_dynmix.OPS``).
        x: uint8 (B, C, H, W) batch, or floats in [0, 1]; C is 1 or 3.
        param: The op's parameter (as from ``OPS[name].sample``): one number for the whole batch, or one per image.

    Returns:
        A batch of the same shape and dtype.
    """
    if name not in CODE:
        raise ValueError(f"unknown DynMix op {name!r}; known ops: {', '.join(_OP_NAMES)}")
    x = _check_batch(x, "apply_op")
    store, exact = _to_storage(x)
    n = x.shape[0]
    p = torch.as_tensor(param, dtype=torch.float64, device=x.device).expand(n).clone()
    code = torch.full((n,), CODE[name], dtype=torch.long, device=x.device)
    _check_whole_translations(code, p)
    out = _apply_codes(store, code, p, exact)
    return out if exact else out.div_(255.0).to(x.dtype)


# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchParams:
    """The random choices of ``num_mixes`` DynMix views of every image of a batch.

    Chain slot ``s = (view * 2 + chain) * batch_size + image`` holds one chain of one view of one image.

    Attributes:
        code: (2, S) int64: the op of step 1 and step 2 of every chain, as an index into ``OPS`` (-1: no step 2).
        param: (2, S) float64: the op parameters (signed; 0 for ops without one).
        level: (2, S) float64: the levels drawn (NaN where there is no step).
        m1: (num_mixes, B) float64: weight of chain 1.
        m2: (num_mixes, B) float64: weight of chain 2.
        blend: (num_mixes, B) float64 skip-blend weights, or None when blending is off.
        size: (H, W) of the images the parameters were drawn for.
    """

    code: torch.Tensor
    param: torch.Tensor
    level: torch.Tensor
    m1: torch.Tensor
    m2: torch.Tensor
    blend: torch.Tensor | None
    size: tuple[int, int]

    @property
    def num_mixes(self) -> int:
        return self.m1.shape[0]

    @property
    def batch_size(self) -> int:
        return self.m1.shape[1]

    @property
    def depth(self) -> torch.Tensor:
        """(S,) int64 chain depths (1 or 2)."""
        return 1 + (self.code[1] >= 0).long()

    def mix_params(self, view: int, index: int) -> MixParams:
        """The choices of view ``view`` of image ``index`` as the PIL path's :class:`MixParams`."""
        b = self.batch_size
        chains, levels = [], []
        for chain in range(2):
            slot = (view * 2 + chain) * b + index
            steps = [(_OP_NAMES[int(self.code[t, slot])], float(self.param[t, slot]))
                     for t in range(2) if int(self.code[t, slot]) >= 0]
            chains.append(tuple(steps))
            levels.append(tuple(float(self.level[t, slot]) for t in range(len(steps))))
        blend = None if self.blend is None else float(self.blend[view, index])
        return MixParams(tuple(chains), tuple(levels), float(self.m1[view, index]), float(self.m2[view, index]),
                         blend)


def _beta(alpha: float, shape: tuple[int, ...], device: torch.device,
          generator: torch.Generator | None) -> torch.Tensor:
    """Beta(alpha, alpha) samples in float64, exact for any alpha > 0.

    Beta = G1 / (G1 + G2) with G ~ Gamma(alpha); ``Gamma(alpha) = Gamma(alpha + 1) * U ** (1 / alpha)`` keeps
    small alphas (where Gamma(alpha) underflows to 0) exact in log space.
    """
    conc = torch.full(shape + (2,), alpha + 1.0, dtype=torch.float64, device=device)
    gam = torch._standard_gamma(conc, generator=generator)
    u = torch.rand(shape + (2,), dtype=torch.float64, device=device, generator=generator)
    log_g = torch.log(gam) + torch.log(u.clamp_(min=torch.finfo(torch.float64).tiny)) / alpha
    return torch.sigmoid(log_g[..., 0] - log_g[..., 1])


class DynamicMixupBatch(nn.Module):
    """Dynamic Mixup of a batch of images, every image with its own random chains and weights, on any device.

    Args:
        config: A ``dynmix-...`` config string or a :class:`DynMixConfig` (``"dynmix"`` = the defaults).
        generator: Default ``torch.Generator`` for the draws (on the batch's device); ``forward`` and ``views``
            take one per call too. Without any, draws come from torch's default generator of the device.
        chunk_size: Images processed at once (memory bound); default: about 16 MiB of chains on the CPU (this
            keeps temporaries small enough to avoid page-fault costs), 1 GiB on GPUs.

    ``forward(x)`` takes a uint8 (0-255) or float ([0, 1]) batch ``(B, C, H, W)``, C = 1 or 3, H, W >= 8, and
    returns a tuple of ``num_mixes`` batches of the same shape and dtype (uint8 rounded), view k of image i in
    ``out[k][i]``. :meth:`views` makes the normalized split-major training batch ``[clean, mix_1, ..., mix_N]``.

    Example:
        >>> aug = DynamicMixupBatch("dynmix-m3", generator=torch.Generator().manual_seed(0))
        >>> mix1, mix2 = aug(x_uint8)                      # each (B, 3, 32, 32) uint8
        >>> x = aug.views(x_uint8, mean, std)               # (3B, 3, 32, 32) float32, for JsdLoss(num_splits=3)
    """

    def __init__(self, config: str | DynMixConfig = "dynmix", *, generator: torch.Generator | None = None,
                 chunk_size: int | None = None):
        super().__init__()
        self.config = parse_config(config)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                       or chunk_size < 1):
            raise ValueError(f"chunk_size must be None or an integer >= 1, got {chunk_size!r}")
        self.generator = generator
        self.chunk_size = chunk_size
        self._codes = torch.tensor([CODE[name] for name in self.config.ops])

    @property
    def num_mixes(self) -> int:
        return self.config.num_mixes

    @property
    def num_splits(self) -> int:
        """Views per image in :meth:`views` (clean + ``num_mixes``), the ``num_splits`` of ``JsdLoss``."""
        return self.config.num_mixes + 1

    def extra_repr(self) -> str:
        return repr(self.config.to_string())

    # -- sample ---------------------------------------------------------------------------------------------------
    def sample_params(self, batch_size: int, size: tuple[int, int], *, device: torch.device | str | None = None,
                      generator: torch.Generator | None = None) -> BatchParams:
        """Draw the choices of ``num_mixes`` views of ``batch_size`` images of ``size = (H, W)``.

        Draw order (vectorized; one call reproduces from the generator state): op indices (2, S), levels (2, S),
        signs (2, S), depth-2 coins (S,) when ``depth == 2``, then m1, m2 (``indep`` only) and b (``blend``
        only), each as Gamma then uniform draws. S = 2 * num_mixes * batch_size chain slots.
        """
        cfg = self.config
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        g = _check_generator(generator, device)
        h, w = size
        n, b = cfg.num_mixes, int(batch_size)
        slots = 2 * n * b
        op = torch.randint(len(cfg.ops), (2, slots), device=device, generator=g)
        level = MIN_LEVEL + (cfg.magnitude - MIN_LEVEL) * torch.rand((2, slots), dtype=torch.float64, device=device,
                                                                     generator=g)
        negative = torch.rand((2, slots), dtype=torch.float64, device=device, generator=g) < 0.5
        if cfg.depth == 2:
            depth2 = torch.rand(slots, dtype=torch.float64, device=device, generator=g) < float(cfg.depth2_prob or 0)
        else:
            depth2 = torch.zeros(slots, dtype=torch.bool, device=device)
        m1 = _beta(cfg.alpha, (n, b), device, g)
        m2 = _beta(cfg.alpha, (n, b), device, g) if cfg.weights == "indep" else 1.0 - m1
        blend = _beta(cfg.alpha, (n, b), device, g) if cfg.blend else None

        param = torch.zeros((2, slots), dtype=torch.float64, device=device)
        for k, name in enumerate(cfg.ops):  # a loop over the op table, not over images
            o = OPS[name]
            if o.magnitude is None:
                continue
            magnitude: Any = o.magnitude  # float -> float, applied here to a tensor of levels
            value = magnitude(level, (w, h))  # the PIL path's level -> parameter formula, elementwise
            if o.signed:
                value = torch.where(negative, -value, value)
            param = torch.where(op == k, value, param)
        code = self._codes.to(device)[op]
        code[1] = torch.where(depth2, code[1], -1)
        param[1] = torch.where(depth2, param[1], 0.0)
        level[1] = torch.where(depth2, level[1], math.nan)
        return BatchParams(code, param, level, m1, m2, blend, (h, w))

    # -- apply ----------------------------------------------------------------------------------------------------
    def _chunk(self, x: torch.Tensor) -> int:
        if self.chunk_size is not None:
            return self.chunk_size
        c, h, w = x.shape[1:]
        per_image = 2 * self.num_mixes * c * h * w * (1 if x.dtype == torch.uint8 else 4)
        budget = _CUDA_CHUNK_BYTES if x.device.type == "cuda" else _CPU_CHUNK_BYTES
        return max(1, budget // per_image)

    def _run(self, store: torch.Tensor, exact: bool, params: BatchParams,
             sink: Callable[[int, int, int, torch.Tensor], None]) -> None:
        """Run the chains and the mix; hand every view chunk, float32 on the 0-255 scale, to ``sink``."""
        b = store.shape[0]
        n = self.num_mixes
        weights = self.config.weights
        step = self._chunk(store)
        dev = store.device
        for b0 in range(0, b, step):  # chunks of images bound memory; each chunk is one batched computation
            b1 = min(b, b0 + step)
            nb = b1 - b0
            slots = (torch.arange(2 * n, device=dev).view(-1, 1) * b + torch.arange(b0, b1, device=dev)).view(-1)
            chains = store[b0:b1].repeat(2 * n, 1, 1, 1)
            for t in range(2):
                chains = _apply_codes(chains, params.code[t, slots], params.param[t, slots], exact)
            chains = chains.view(n, 2, nb, *store.shape[1:])
            for v in range(n):
                m1 = params.m1[v, b0:b1]
                m2 = params.m2[v, b0:b1]
                if weights == "linear":
                    w1, w2 = m1, m2
                else:  # m1 X1 + m2 X2 + m1 m2 (X1 - X2) = m1 (1 + m2) X1 + m2 (1 - m1) X2
                    w1, w2 = m1 * (1.0 + m2), m2 * (1.0 - m1)
                out = chains[v, 0] * w1.float().view(nb, 1, 1, 1)  # float32 (uint8 * float32 promotes)
                out.add_(chains[v, 1] * w2.float().view(nb, 1, 1, 1)).clamp_(0.0, 255.0)
                if params.blend is not None:
                    bl = params.blend[v, b0:b1].float().view(nb, 1, 1, 1)
                    out.mul_(bl).add_(store[b0:b1] * (1.0 - bl))
                sink(v, b0, b1, out)

    def _prepare(self, x: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, bool, BatchParams]:
        x = _check_batch(x)
        g = _check_generator(generator if generator is not None else self.generator, x.device)
        store, exact = _to_storage(x)
        params = self.sample_params(x.shape[0], (int(x.shape[2]), int(x.shape[3])), device=x.device, generator=g)
        return store, exact, params

    def apply(  # type: ignore[override]  # torchvision v2's sample-then-apply, not nn.Module.apply(fn)
            self, x: torch.Tensor, params: BatchParams) -> tuple[torch.Tensor, ...]:
        """The ``num_mixes`` views of ``x`` for given ``params`` (same shape and dtype as ``x``)."""
        x = _check_batch(x)
        if params.size != tuple(x.shape[2:]) or params.batch_size != x.shape[0]:
            raise ValueError(f"params were drawn for {params.batch_size} images of {params.size}, "
                             f"got a batch of shape {tuple(x.shape)}")
        _check_whole_translations(params.code, params.param)
        store, exact = _to_storage(x)
        return self._apply_params(x, store, exact, params)

    def _apply_params(self, x: torch.Tensor, store: torch.Tensor, exact: bool,
               params: BatchParams) -> tuple[torch.Tensor, ...]:
        outs = [torch.empty_like(x) for _ in range(self.num_mixes)]

        def sink(v: int, b0: int, b1: int, out: torch.Tensor) -> None:
            if exact:
                outs[v][b0:b1].copy_(out.round_())
            else:
                outs[v][b0:b1].copy_(out.mul_(1.0 / 255.0))

        self._run(store, exact, params, sink)
        return tuple(outs)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """``num_mixes`` DynMix views of every image of ``x`` (uint8 or float in [0, 1], (B, C, H, W))."""
        store, exact, params = self._prepare(x, generator)
        return self._apply_params(x, store, exact, params)

    def views(self, x: torch.Tensor, mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
              std: Sequence[float] = IMAGENET_DEFAULT_STD, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """The normalized split-major training batch ``[clean, mix_1, ..., mix_N]`` of a uint8 (or [0, 1]) batch.

        Returns a float32 tensor of shape ``((1 + num_mixes) * B, C, H, W)``: rows ``[:B]`` are the clean images,
        rows ``[k * B:(k + 1) * B]`` view k, all normalized with ``(x / 255 - mean) / std``. The views are not
        rounded to uint8 before normalization (as ``create_transform(..., aug="dynmix")`` does on the PIL path).
        Feed it to the model and use ``JsdLoss(num_splits=self.num_splits)`` with the labels repeated
        ``num_splits`` times (``y.repeat(num_splits)``).
        """
        store, exact, params = self._prepare(x, generator)
        b, c = x.shape[:2]
        mean_t, std_t = _channel_stats(mean, std, c, x.device)
        scale = (1.0 / (255.0 * std_t)).view(1, c, 1, 1)
        shift = (-mean_t / std_t).view(1, c, 1, 1)
        out = torch.empty(((1 + self.num_mixes) * b, *x.shape[1:]), dtype=torch.float32, device=x.device)
        torch.mul(store, scale, out=out[:b]).add_(shift)

        def sink(v: int, b0: int, b1: int, mixed: torch.Tensor) -> None:
            dst = out[(v + 1) * b + b0:(v + 1) * b + b1]
            torch.mul(mixed, scale, out=dst).add_(shift)

        self._run(store, exact, params, sink)
        return out


def _channel_stats(mean: Sequence[float], std: Sequence[float], channels: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    out = []
    for name, values in (("mean", mean), ("std", std)):
        t = torch.as_tensor(values, dtype=torch.float32).flatten()
        if t.numel() not in (1, channels):
            raise ValueError(f"{name} needs 1 or {channels} values for a {channels}-channel batch, got {t.tolist()}")
        out.append(t.expand(channels).to(device))
    if bool((out[1] <= 0).any()):
        raise ValueError(f"std must be positive, got {out[1].tolist()}")
    return out[0], out[1]
