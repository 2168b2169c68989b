"""Robustness and calibration metrics of the corruption benchmarks (numpy; fractions in, fractions out).

Corruptions (Hendrycks & Dietterich, 2019; AugMix, 2020):

* per-cell top-1 error ``E_{c,s}``; the *corruption error* of a corruption is its error over all evaluated
  severities pooled (= the mean over severities when every severity has the same images, as in -C sets);
  the benchmark's *mean corruption error* is the mean over the 15 benchmark corruptions (CIFAR-10/100-C report
  this, unnormalized; ImageNet-C's "unnormalized mean error" is the same number).
* ``CE_c = sum_s E_{c,s} / sum_s E^{AlexNet}_{c,s}`` and ``mCE = mean_c CE_c`` (ImageNet-C); the AlexNet errors are
  :data:`ALEXNET_ERRORS` (torchvision AlexNet, full 50,000-image sets).
* Relative mCE, two variants because the paper's formula is ambiguous (the maintainers never settled it):
  ``"per_severity"`` (default) ``sum_s (E_{c,s} - E_clean) / sum_s (A_{c,s} - A_clean)``, a degradation measure;
  ``"once"`` ``(sum_s E_{c,s} - E_clean) / (sum_s A_{c,s} - A_clean)``, the formula as typeset.

Perturbations (ImageNet-P / CIFAR-P): flip probability (noise sequences against their first, clean frame; other
sequences between consecutive frames, with stride ``difficulty``), ``FR_p = FP_p / FP_p(AlexNet)``, mFR, the
top-5 distance and mT5D (the AlexNet values are not published in code: pass them).

Calibration: :func:`rms_calibration_error` (Hendrycks' ``calib_err``, adaptive bins of 100 examples; optional
``skip_last_bin`` reproduces the published code, which leaves the most confident bin out of the sum while still
dividing by all N) and :func:`expected_calibration_error` (Guo et al., 15 equal-width bins ``(lo, hi]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ALEXNET_ERRORS", "ALEXNET_CLEAN_ERROR", "ALEXNET_3DCC_ERRORS", "IMAGENET_P_PERTURBATIONS",
    "IMAGENET_P_EXTRA", "IMAGENET_3DCC_CORRUPTIONS",
    "error_rate", "rms_calibration_error", "expected_calibration_error", "reliability_bins",
    "corruption_error", "mce", "relative_mce", "flip_probability", "top5_distance", "normalized_mean",
]

# Top-1 errors of torchvision's AlexNet on ImageNet-C per severity 1..5 (full 50,000-image sets; their means are
# AugMix's ALEXNET_ERR).
ALEXNET_ERRORS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
}


def _alexnet_clean_error() -> float:
    """AlexNet's clean ImageNet top-1 error, from torchvision's weight metadata (acc@1 56.522 %)."""
    try:
        from torchvision.models import AlexNet_Weights

        return 1.0 - AlexNet_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]["acc@1"] / 100.0
    except (ImportError, KeyError):  # pragma: no cover - torchvision is a dependency
        return 1.0 - 0.56522


ALEXNET_CLEAN_ERROR: float = _alexnet_clean_error()

# ImageNet-3DCC: mean top-1 errors of AlexNet from RobustBench's own run on its fixed 5,000-image subset with
# Resize(224): not Hendrycks-style constants (the 3DCC authors published none); label results accordingly.
IMAGENET_3DCC_CORRUPTIONS: tuple[str, ...] = (
    "near_focus", "far_focus", "fog_3d", "flash", "color_quant", "low_light", "xy_motion_blur", "z_motion_blur",
    "iso_noise", "bit_error", "h265_abr", "h265_crf")
ALEXNET_3DCC_ERRORS: dict[str, float] = {
    "near_focus": 0.6107, "far_focus": 0.6515, "bit_error": 0.6834, "color_quant": 0.5962, "flash": 0.8012,
    "fog_3d": 0.7736, "h265_abr": 0.5674, "h265_crf": 0.5252, "iso_noise": 0.9315, "low_light": 0.8225,
    "xy_motion_blur": 0.8248, "z_motion_blur": 0.7959,
}

IMAGENET_P_PERTURBATIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow", "brightness", "translate", "rotate", "tilt",
    "scale")
IMAGENET_P_EXTRA: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "shear")


def _as_1d(values: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    return arr.astype(dtype)


def _check_pair(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    conf = _as_1d(confidence, "confidence")
    corr = _as_1d(correct, "correct")
    if len(conf) != len(corr):
        raise ValueError(f"confidence and correct must have the same length, got {len(conf)} and {len(corr)}")
    if len(conf) == 0:
        raise ValueError("calibration needs at least one example")
    if np.any((conf < 0) | (conf > 1)) or not np.all(np.isfinite(conf)):
        raise ValueError("confidence must hold probabilities in [0, 1]")
    return conf, corr


def error_rate(correct: Any) -> float:
    """Top-1 error: the fraction of False in ``correct``."""
    corr = _as_1d(correct, "correct", bool)
    if len(corr) == 0:
        raise ValueError("error_rate needs at least one example")
    return float(1.0 - corr.mean())


def rms_calibration_error(confidence: Any, correct: Any, bin_size: int = 100, skip_last_bin: bool = False,
                          p: str = "2") -> float:
    """Hendrycks' calibration error with adaptive bins (``calib_err``), as a fraction.

    Examples sorted by confidence are cut into ``N // bin_size`` contiguous bins of ``bin_size`` (the last bin takes
    the remainder; fewer than ``bin_size`` examples make one bin). With ``p="2"``: ``sqrt(sum_b n_b/N (conf_b -
    acc_b)^2)``; ``p="1"``: ``sum_b n_b/N |conf_b - acc_b|``; ``p="infty"``: ``max_b |conf_b - acc_b|``.

    Args:
        skip_last_bin: Leave the last (most confident) bin out of the sum but still divide by all N, as the
            published code does; off by default (the corrected version).
    """
    conf, corr = _check_pair(confidence, correct)
    if not isinstance(bin_size, int) or bin_size < 1:
        raise ValueError(f"bin_size must be a positive integer, got {bin_size!r}")
    if p not in ("1", "2", "infty"):
        raise ValueError(f"p must be '1', '2' or 'infty', got {p!r}")
    order = np.argsort(conf, kind="stable")
    conf, corr = conf[order], corr[order]
    n = len(conf)
    edges = [i * bin_size for i in range(max(1, n // bin_size))] + [n]
    gaps, weights = [], []
    for b in range(len(edges) - 1 - int(skip_last_bin)):
        lo, hi = edges[b], edges[b + 1]
        gaps.append(conf[lo:hi].mean() - corr[lo:hi].mean())
        weights.append((hi - lo) / n)
    if not gaps:
        return 0.0
    g, w = np.abs(np.array(gaps)), np.array(weights)
    if p == "2":
        return float(np.sqrt(np.sum(w * g ** 2)))
    if p == "1":
        return float(np.sum(w * g))
    return float(g.max())


def reliability_bins(confidence: Any, correct: Any, n_bins: int = 15) -> dict[str, list[float]]:
    """Equal-width confidence bins ``(lo, hi]`` over [0, 1]: edges, count, mean confidence and accuracy per bin.

    Empty bins have count 0 and NaN mean confidence / accuracy (``None`` once written to JSON).
    """
    conf, corr = _check_pair(confidence, correct)
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds edges[b] < conf <= edges[b+1]; conf == 0 falls in no bin
    idx = np.searchsorted(edges, conf, side="left") - 1
    valid = idx >= 0
    counts = np.bincount(idx[valid], minlength=n_bins).astype(np.int64)
    conf_sum = np.bincount(idx[valid], weights=conf[valid], minlength=n_bins)
    acc_sum = np.bincount(idx[valid], weights=corr[valid], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, conf_sum / np.maximum(counts, 1), np.nan)
        acc = np.where(counts > 0, acc_sum / np.maximum(counts, 1), np.nan)
    return {"edges": edges.tolist(), "count": counts.tolist(), "confidence": mean_conf.tolist(),
            "accuracy": acc.tolist()}


def expected_calibration_error(confidence: Any, correct: Any, n_bins: int = 15) -> float:
    """ECE (Guo et al. 2017): ``sum_b n_b/N |acc_b - conf_b|`` over 15 equal-width bins ``(lo, hi]``, a fraction."""
    bins = reliability_bins(confidence, correct, n_bins)
    n = len(np.asarray(confidence))
    total = 0.0
    for count, c, a in zip(bins["count"], bins["confidence"], bins["accuracy"]):
        if count:
            total += count / n * abs(a - c)
    return float(total)


def _severity_errors(errors: Mapping[int, float], name: str) -> dict[int, float]:
    if not errors:
        raise ValueError(f"no severities evaluated for {name}")
    out = {}
    for s, e in errors.items():
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 1 <= int(s) <= 5:
            raise ValueError(f"{name}: severities must be integers 1..5, got {s!r}")
        if not 0.0 <= float(e) <= 1.0:
            raise ValueError(f"{name}: errors must be fractions in [0, 1], got {e!r} at severity {s}")
        out[int(s)] = float(e)
    return out


def corruption_error(errors: Mapping[str, Mapping[int, float]], corruptions: Sequence[str]) -> float:
    """Mean over ``corruptions`` of the mean error over their severities (fractions)."""
    missing = [c for c in corruptions if c not in errors]
    if missing:
        raise ValueError(f"no errors for {', '.join(missing)}")
    if not corruptions:
        raise ValueError("corruption_error needs at least one corruption")
    return float(np.mean([np.mean(list(_severity_errors(errors[c], c).values())) for c in corruptions]))


def _baseline_sum(baseline: Any, corruption: str, severities: Sequence[int]) -> float:
    if isinstance(baseline, (int, float)):
        if sorted(severities) != [1, 2, 3, 4, 5]:
            raise ValueError(f"the baseline for {corruption} is one mean error, so all 5 severities must be evaluated "
                             f"(got {sorted(severities)})")
        return float(baseline) * 5
    values = list(baseline)
    if len(values) != 5:
        raise ValueError(f"the baseline for {corruption} must be a mean error or 5 per-severity errors, got {values}")
    return float(sum(values[s - 1] for s in severities))


def normalized_ce(errors: Mapping[int, float], baseline: Any, corruption: str) -> float:
    """``CE_c = sum_s E_s / sum_s A_s`` over the evaluated severities (a ratio; x100 for %)."""
    errs = _severity_errors(errors, corruption)
    denom = _baseline_sum(baseline, corruption, list(errs))
    if denom <= 0:
        raise ValueError(f"the baseline errors of {corruption} sum to {denom}; cannot normalize")
    return sum(errs.values()) / denom


def mce(errors: Mapping[str, Mapping[int, float]], corruptions: Sequence[str],
        baseline: Mapping[str, Any] | None = None) -> tuple[float, dict[str, float]]:
    """Mean corruption error normalized by a baseline (AlexNet by default); returns ``(mCE, {c: CE_c})`` as ratios.

    ``baseline[c]`` is 5 per-severity errors (only the evaluated severities are summed, on both sides) or one mean
    error (then all 5 severities must be evaluated). ``mce(alexnet's own errors) == 1.0`` exactly.
    """
    baseline = ALEXNET_ERRORS if baseline is None else baseline
    missing = [c for c in corruptions if c not in baseline]
    if missing:
        raise ValueError(f"no baseline errors for {', '.join(missing)}; give them (e.g. --baseline JSON)")
    if not corruptions:
        raise ValueError("mce needs at least one corruption")
    ces = {c: normalized_ce(errors[c], baseline[c], c) for c in corruptions}
    return float(np.mean(list(ces.values()))), ces


def relative_mce(errors: Mapping[str, Mapping[int, float]], clean_error: float, corruptions: Sequence[str],
                 baseline: Mapping[str, Any] | None = None, baseline_clean_error: float | None = None,
                 variant: str = "per_severity") -> tuple[float, dict[str, float]]:
    """Relative mCE (see the module docstring for the two variants); returns ``(value, {c: relative CE_c})``."""
    if variant not in ("per_severity", "once"):
        raise ValueError(f"variant must be 'per_severity' or 'once', got {variant!r}")
    baseline = ALEXNET_ERRORS if baseline is None else baseline
    a_clean = ALEXNET_CLEAN_ERROR if baseline_clean_error is None else float(baseline_clean_error)
    out = {}
    for c in corruptions:
        if c not in baseline:
            raise ValueError(f"no baseline errors for {c}")
        errs = _severity_errors(errors[c], c)
        sev = list(errs)
        a_sum = _baseline_sum(baseline[c], c, sev)
        k = len(sev) if variant == "per_severity" else 1
        num = sum(errs.values()) - k * clean_error
        den = a_sum - k * a_clean
        if den == 0:
            raise ValueError(f"the baseline's degradation on {c} is 0; relative CE is undefined")
        out[c] = num / den
    return float(np.mean(list(out.values()))), out


def normalized_mean(values: Mapping[str, float], baseline: Mapping[str, float],
                    names: Sequence[str]) -> tuple[float, dict[str, float]]:
    """``mean_p values[p] / baseline[p]`` (e.g. mFR from flip probabilities); returns ``(mean, {p: ratio})``."""
    missing = [p for p in names if p not in baseline]
    if missing:
        raise ValueError(f"no baseline values for {', '.join(missing)}")
    ratios = {}
    for p in names:
        if float(baseline[p]) <= 0:
            raise ValueError(f"baseline value for {p} must be > 0, got {baseline[p]!r}")
        ratios[p] = float(values[p]) / float(baseline[p])
    return float(np.mean(list(ratios.values()))), ratios


def _pairs(num_frames: int, noise: bool, difficulty: int) -> tuple[np.ndarray, np.ndarray]:
    """(reference, compared) frame indices of a sequence: vs frame 0 for noise, else consecutive with a stride."""
    if not isinstance(difficulty, int) or difficulty < 1:
        raise ValueError(f"difficulty must be a positive integer, got {difficulty!r}")
    if num_frames < 2:
        raise ValueError(f"a perturbation sequence needs at least 2 frames, got {num_frames}")
    if noise:
        j = np.arange(1, num_frames)
        return np.zeros_like(j), j
    ref: list[int] = []
    new: list[int] = []
    for k in range(difficulty):
        frames = np.arange(k, num_frames, difficulty)
        ref.extend(frames[:-1])
        new.extend(frames[1:])
    if not ref:
        raise ValueError(f"difficulty {difficulty} leaves no frame pair in sequences of {num_frames} frames")
    return np.array(ref), np.array(new)


def flip_probability(predictions: Any, noise: bool, difficulty: int = 1) -> float:
    """Flip probability of (videos, frames) top-1 predictions: per-video flip rate, then the mean over videos."""
    pred = np.asarray(predictions)
    if pred.ndim != 2:
        raise ValueError(f"predictions must be (videos, frames), got shape {pred.shape}")
    ref, new = _pairs(pred.shape[1], noise, difficulty)
    return float((pred[:, ref] != pred[:, new]).mean(axis=1).mean())


def top5_distance(top5: Any, noise: bool, difficulty: int = 1) -> float:
    """Mean top-5 distance of (videos, frames, 5) top-5 class lists (each sorted by decreasing score).

    For a (reference, new) frame pair: ``sum_{i<5} |i - min(rank_new(top5_ref[i]), 5)|`` with 0-based ranks in the
    new frame (a class outside its top 5 counts as rank 5); averaged over pairs, then videos.
    """
    t5 = np.asarray(top5)
    if t5.ndim != 3 or t5.shape[2] != 5:
        raise ValueError(f"top5 must be (videos, frames, 5), got shape {t5.shape}")
    ref, new = _pairs(t5.shape[1], noise, difficulty)
    a, b = t5[:, ref], t5[:, new]  # (V, P, 5)
    match = a[..., :, None] == b[..., None, :]  # (V, P, 5 ref, 5 new)
    rank = np.where(match.any(-1), match.argmax(-1), 5)
    dist = np.abs(np.arange(5) - rank).sum(-1)  # (V, P)
    return float(dist.mean(axis=1).mean())
