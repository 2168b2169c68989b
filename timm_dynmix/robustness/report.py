"""Evaluation reports: ``report.json`` (every cell + the model-card keys), ``report.md``, ``cells.csv`` and plots.

``report.json`` holds the keys that :mod:`timm_dynmix.hub.card` reads (all in percent, see its docstring):

* ``clean_error``: top-1 error on the clean images (None when the benchmark has none);
* ``corruption_error``: the mean over the benchmark corruptions (the 15 of CIFAR/ImageNet-C, or the 12 of
  ImageNet-3DCC, those evaluated) of each corruption's error pooled over its evaluated severities: CIFAR-10-C's
  "mean corruption error", ImageNet-C's "unnormalized mean error";
* ``mce``: the AlexNet-normalized mCE (ImageNet-C: Hendrycks' AlexNet table; ImageNet-3DCC: RobustBench's AlexNet
  means; or ``--baseline``); None for CIFAR, which is never normalized;
* ``rms_calibration_error``: the mean over the benchmark corruptions of the RMS calibration error of each
  corruption's images (all its severities pooled), Hendrycks' adaptive bins of 100;
* ``per_corruption``: the error of each benchmark corruption; ``plots``: the PNG files;
* ``cbar_error`` (-C-bar benchmarks only: CIFAR-10-C-bar, ImageNet-C-bar, detected from the folder, see
  :func:`timm_dynmix.robustness.readers.corruption_suite`): the mean over the 10 C-bar corruptions of each one's
  error over its evaluated severities; ``corruption_error`` is then None (it is the -C number), and
  ``rms_calibration_error`` and ``per_corruption`` are over the C-bar corruptions.

and everything else: ``cells`` (every corruption x severity cell: n, error, RMS calibration error, ECE, mean
confidence), ``clean`` (with its reliability bins), ``corruptions`` and ``extra_corruptions`` (the 4 validation
corruptions and any others: reported, never averaged into the benchmark numbers), ``summary`` (mean error per
severity, relative mCE in both variants, ECE), ``protocol`` (what was computed, in words), ``model`` and ``run``.
For -P benchmarks: ``flip_probability``, ``top5_distance``, ``mean_flip_probability``, ``mfr``/``mt5d`` (with a
baseline) and ``clean_error`` on the first frames.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from timm_dynmix.fileio import atomic_write_bytes
from timm_dynmix.robustness import metrics as M
from timm_dynmix.robustness.corruptions import corruption_group
from timm_dynmix.robustness.corruptions_cbar import CBAR_CORRUPTIONS, IMAGENET_CBAR_CORRUPTIONS
from timm_dynmix.robustness.readers import BENCHMARK_NAMES, benchmark_corruption_lists, cbar_benchmark_name
from timm_dynmix.robustness.results import PerturbationResult
from timm_dynmix.version import versions

__all__ = ["build_report", "write_report", "compare_reports", "REPORT_JSON", "REPORT_MD", "CELLS_CSV"]

REPORT_JSON, REPORT_MD, CELLS_CSV = "report.json", "report.md", "cells.csv"

_SHORT = {"gaussian_noise": "Gauss", "shot_noise": "Shot", "impulse_noise": "Impulse", "defocus_blur": "Defocus",
          "glass_blur": "Glass", "motion_blur": "Motion", "zoom_blur": "Zoom", "snow": "Snow", "frost": "Frost",
          "fog": "Fog", "brightness": "Bright", "contrast": "Contrast", "elastic_transform": "Elastic",
          "pixelate": "Pixel", "jpeg_compression": "JPEG", "speckle_noise": "Speckle", "gaussian_blur": "G.Blur",
          "spatter": "Spatter", "saturate": "Saturate", "blue_noise_sample": "BlueNoise",
          "brownish_noise": "Brownish", "checkerboard_cutout": "Checker", "circular_motion_blur": "CircBlur",
          "inverse_sparkles": "InvSparkle", "lines": "Lines", "pinch_and_twirl": "Pinch", "ripple": "Ripple",
          "sparkles": "Sparkles", "transverse_chromatic_abberation": "TCA", "caustic_refraction": "Caustic",
          "cocentric_sine_waves": "Sines", "perlin_noise": "Perlin", "plasma_noise": "Plasma",
          "single_frequency_greyscale": "SingleFreq"}
_CBAR_NAMES = frozenset(CBAR_CORRUPTIONS) | frozenset(IMAGENET_CBAR_CORRUPTIONS)


def _group(name: str) -> str:
    """The report group of a corruption: ``c-bar`` for the C-bar ones, else its -C group (or 3dcc / other)."""
    return "c-bar" if name in _CBAR_NAMES else corruption_group(name, strict=False)


def _pct(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(100.0 * float(x), 4)


def _calib(conf: np.ndarray, correct: np.ndarray, skip_last_bin: bool) -> dict[str, float | None]:
    return {"rms_calibration_error": _pct(M.rms_calibration_error(conf, correct, skip_last_bin=skip_last_bin)),
            "ece": _pct(M.expected_calibration_error(conf, correct)),
            "mean_confidence": _pct(float(np.mean(conf)))}


def _reliability(conf: np.ndarray, correct: np.ndarray) -> dict[str, list[Any]]:
    bins = M.reliability_bins(conf, correct)
    return {"edges": bins["edges"], "count": bins["count"],
            "confidence": [None if math.isnan(v) else v for v in bins["confidence"]],
            "accuracy": [None if math.isnan(v) else v for v in bins["accuracy"]]}


def _model_info(model: Any, meta: Mapping[str, Any]) -> dict[str, Any]:
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    return {"name": meta.get("model"), "checkpoint": meta.get("checkpoint"),
            "architecture": cfg.get("architecture"), "num_classes": getattr(model, "num_classes", None),
            "input_size": cfg.get("input_size"), "mean": cfg.get("mean"), "std": cfg.get("std")}


def _dataset_block(bench: Any, name: str, manifest: Mapping[str, Any], suite: str = "c") -> dict[str, Any]:
    if suite == "c-bar":  # always generated (there is no release): named as the benchmark, how in "generated"
        block = {"name": BENCHMARK_NAMES.get(name, name), "type": name, "split": manifest.get("split", "test")}
        if manifest:
            block["generated"] = (f"timm-dynmix make-c --suite c-bar, {manifest.get('params')} severities, seed "
                                  f"{manifest.get('seed')}, {manifest.get('num_images')} images per cell")
        return block
    if manifest:
        src = Path(str(manifest.get("source", "images")).split(" (")[0]).name or "images"
        return {"name": f"{src}-C regenerated ({manifest.get('params')} parameters, {manifest.get('num_images')} "
                        f"images per cell)",
                "type": "make-c", "split": manifest.get("split")}
    split = "test" if name.startswith("cifar") else None
    return {"name": BENCHMARK_NAMES.get(name, name), "type": name, "split": split}


def build_report(result: Any, model: Any = None, *, meta: Mapping[str, Any] | None = None,
                 baseline: Mapping[str, Any] | None = None, skip_last_bin: bool = False) -> dict[str, Any]:
    """The report dict of an evaluation result (:class:`~timm_dynmix.robustness.results.CorruptionResult` or
    :class:`~timm_dynmix.robustness.results.PerturbationResult`); see the module docstring for its keys."""

    meta = dict(meta or {})
    if isinstance(result, PerturbationResult):
        return _build_p_report(result, model, meta, baseline)
    bench = result.benchmark
    manifest = bench.info.get("manifest") or {}
    suite = bench.info.get("suite", "c")
    found = list(dict.fromkeys(c.corruption for c in result.cells if c.severity > 0))
    cbar_name = (bench.name if bench.name.endswith("c-bar") else cbar_benchmark_name(found, manifest, bench.layout)
                 ) if suite == "c-bar" else None
    name = meta.get("name") or cbar_name or (f"{manifest.get('params', 'custom')}-c-regenerated" if manifest
                                             else bench.name)
    pre = ("Resize(256) + CenterCrop(224), then " if meta.get("resize_256_crop_224") else "no resize or crop; ")
    mean, std = (_model_info(model, meta).get(k) for k in ("mean", "std"))
    report: dict[str, Any] = {
        "benchmark": name,
        "dataset": _dataset_block(bench, name, manifest, suite),
        "clean_error": None, "corruption_error": None, "mce": None, "rms_calibration_error": None,
        "per_corruption": {}, "plots": [],
    }
    clean = next((c for c in result.cells if c.severity == 0), None)
    if clean is not None:
        report["clean"] = {"n": len(clean.label), "error": _pct(M.error_rate(clean.correct)),
                           **_calib(clean.confidence, clean.correct, skip_last_bin),
                           "reliability": _reliability(clean.confidence, clean.correct)}
        report["clean_error"] = report["clean"]["error"]
    cells = [c for c in result.cells if c.severity > 0]
    report["cells"] = [{"corruption": c.corruption, "severity": c.severity,
                        "group": _group(c.corruption),
                        "n": len(c.label), "error": _pct(M.error_rate(c.correct)),
                        **_calib(c.confidence, c.correct, skip_last_bin)} for c in cells]
    names = list(dict.fromkeys(c.corruption for c in cells))
    main, extra = benchmark_corruption_lists(names, cbar_name or ("imagenet-3dcc" if name == "imagenet-3dcc" else name))
    per: dict[str, dict[str, Any]] = {}
    errors: dict[str, dict[int, float]] = {}
    for cname in names:
        mine = [c for c in cells if c.corruption == cname]
        conf = np.concatenate([c.confidence for c in mine])
        corr = np.concatenate([c.correct for c in mine])
        errors[cname] = {c.severity: M.error_rate(c.correct) for c in mine}
        per[cname] = {"group": _group(cname), "n": len(corr), "error": _pct(M.error_rate(corr)),
                      "errors_by_severity": {str(s): _pct(e) for s, e in errors[cname].items()},
                      **_calib(conf, corr, skip_last_bin)}
    report["corruptions"] = {c: per[c] for c in main}
    report["extra_corruptions"] = {c: per[c] for c in extra}
    report["per_corruption"] = {c: per[c]["error"] for c in main}
    summary: dict[str, Any] = {"benchmark_corruptions": main, "num_benchmark_corruptions": len(main)}
    if suite == "c-bar":
        summary["suite"] = "c-bar"
        report["cbar_error"] = None
    if main:
        report["cbar_error" if suite == "c-bar" else "corruption_error"] = _pct(M.corruption_error(errors, main))
        report["rms_calibration_error"] = round(float(np.mean([per[c]["rms_calibration_error"] for c in main])), 4)
        summary["ece"] = round(float(np.mean([per[c]["ece"] for c in main])), 4)
        sevs = sorted({s for c in main for s in errors[c]})
        summary["mean_error_by_severity"] = {
            str(s): _pct(float(np.mean([errors[c][s] for c in main if s in errors[c]]))) for s in sevs}
        conf = np.concatenate([c.confidence for c in cells if c.corruption in main])
        corr = np.concatenate([c.correct for c in cells if c.corruption in main])
        report["corrupted_reliability"] = _reliability(conf, corr)
        base, base_label = _baseline_for(name, baseline)
        if base is not None:
            usable = [c for c in main if c in base]
            if usable:
                value, ces = M.mce(errors, usable, base)
                report["mce"] = _pct(value)
                for c, ce in ces.items():
                    report["corruptions"][c]["ce"] = _pct(ce)
                summary["mce_baseline"] = base_label
                summary["mce_corruptions"] = usable
                base_clean = (baseline or {}).get("clean_error") if baseline else None
                if clean is not None and (name == "imagenet-c" or base_clean is not None):
                    clean_err = M.error_rate(clean.correct)
                    summary["relative_mce"] = {
                        v: _pct(M.relative_mce(errors, clean_err, usable, base, base_clean, variant=v)[0])
                        for v in ("per_severity", "once")}
    report["summary"] = summary
    report["protocol"] = {
        "preprocessing": f"uint8 RGB -> [0, 1]; {pre}(x - mean) / std with the model's mean {mean} and std {std}",
        "corruption_error": "mean over the benchmark corruptions of each corruption's top-1 error over its "
                            "evaluated severities pooled (the unnormalized mean corruption error)",
        **({"cbar_error": "the corruption error over the C-bar corruptions (Mintun et al., 2021): mean over the "
                          "10 corruptions of each one's top-1 error over its evaluated severities pooled; "
                          "corruption_error (the -C number) is None for a -C-bar benchmark"}
           if suite == "c-bar" else {}),
        "mce": "CE_c = sum_s E_c,s / sum_s E_c,s(AlexNet) over the evaluated severities; mCE = mean over the "
               "benchmark corruptions with a baseline (x100); not computed for CIFAR (never normalized)",
        "relative_mce": "per_severity: sum_s (E_c,s - E_clean) / sum_s (A_c,s - A_clean) (reported as the "
                        "relative mCE); once: (sum_s E_c,s - E_clean) / (sum_s A_c,s - A_clean); AlexNet clean "
                        f"error {100 * M.ALEXNET_CLEAN_ERROR:.3f} % (torchvision)",
        "rms_calibration_error": "Hendrycks' calib_err: examples sorted by confidence in bins of 100, "
                                 f"sqrt(sum_b n_b/N (conf_b - acc_b)^2); skip_last_bin={skip_last_bin}; the "
                                 "card value is the mean over the benchmark corruptions of each corruption's RMS "
                                 "(its severities pooled)",
        "ece": "15 equal-width bins (lo, hi], sum_b n_b/N |acc_b - conf_b|",
        "extra_corruptions": "reported separately, never averaged into the benchmark numbers",
        "subset": _subset_text(meta, manifest),
    }
    if bench.info.get("clean_preprocessing"):
        report["protocol"]["clean_preprocessing"] = bench.info["clean_preprocessing"]
    report["model"] = _model_info(model, meta)
    report["run"] = {k: v for k, v in result.info.items() if k != "is_main_process"} | {"versions": versions()}
    return report


def _subset_text(meta: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    parts = []
    if manifest:
        parts.append(f"benchmark generated from {manifest.get('subset', 'all images')}")
    if meta.get("max_per_cell"):
        parts.append(f"--max-per-cell {meta['max_per_cell']}: a sorted random subset of positions (seed "
                     f"{meta.get('seed', 0)}), the same in every cell")
    return "; ".join(parts) or "all images of every cell"


def _baseline_for(name: str, baseline: Mapping[str, Any] | None) -> tuple[Mapping[str, Any] | None, str | None]:
    if baseline:
        return {k: v for k, v in baseline.items() if k != "clean_error"}, "user-supplied (--baseline)"
    if name == "imagenet-c":
        return M.ALEXNET_ERRORS, "AlexNet (torchvision), Hendrycks' ImageNet-C table"
    if name == "imagenet-3dcc":
        return M.ALEXNET_3DCC_ERRORS, "AlexNet mean errors from RobustBench's 5,000-image subset (Resize 224)"
    return None, None


def _build_p_report(result: Any, model: Any, meta: Mapping[str, Any],
                    baseline: Mapping[str, Any] | None) -> dict[str, Any]:
    bench = result.benchmark
    name = meta.get("name") or bench.name
    fps, t5ds, firsts = {}, {}, []
    for pset in bench.sets:
        pred, top5, labels = result.predictions[pset.name]
        fps[pset.name] = M.flip_probability(pred, pset.noise, bench.difficulty if not pset.noise else 1)
        t5ds[pset.name] = M.top5_distance(top5, pset.noise, bench.difficulty if not pset.noise else 1)
        if bench.has_labels and pset.noise:  # frame 0 of a noise sequence is the clean image
            firsts.append(pred[:, 0] == labels)
    main = [p for p in M.IMAGENET_P_PERTURBATIONS if p in fps]
    report: dict[str, Any] = {
        "benchmark": name, "dataset": {"name": BENCHMARK_NAMES.get(name, name), "type": name},
        "clean_error": _pct(M.error_rate(np.concatenate(firsts))) if firsts else None,
        "corruption_error": None, "mce": None, "rms_calibration_error": None, "per_corruption": {}, "plots": [],
        "flip_probability": {p: _pct(v) for p, v in fps.items()},
        "top5_distance": {p: round(v, 4) for p, v in t5ds.items()},
        "mean_flip_probability": _pct(float(np.mean([fps[p] for p in main]))) if main else None,
        "difficulty": bench.difficulty, "benchmark_perturbations": main,
        "extra_perturbations": [p for p in fps if p not in main],
    }
    if baseline:
        nested = "flip_probability" in baseline or "top5_distance" in baseline
        fp_base = baseline.get("flip_probability") if nested else baseline
        if fp_base:
            mfr, ratios = M.normalized_mean(fps, fp_base, main)
            report["mfr"] = _pct(mfr)
            report["flip_rate"] = {p: _pct(v) for p, v in ratios.items()}
        if baseline.get("top5_distance"):
            mt5d, _ = M.normalized_mean(t5ds, baseline["top5_distance"], main)
            report["mt5d"] = _pct(mt5d)
    report["protocol"] = {
        "flip_probability": "noise sequences: frames 2..n against frame 1; others: consecutive frames (stride = "
                            "difficulty); per-video mean, then mean over videos",
        "top5_distance": "sum over the reference frame's top-5 of |i - min(rank in the new frame, 5)|",
        "mfr": "mean over the 10 benchmark perturbations of FP / FP(AlexNet) (baseline from --baseline)",
        "clean_error": "top-1 error on the first (clean) frames of the noise sequences",
    }
    report["model"] = _model_info(model, meta)
    report["run"] = {k: v for k, v in result.info.items() if k != "is_main_process"} | {"versions": versions()}
    return report


# ---- writing -----------------------------------------------------------------------------------------------------
def _f(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _markdown(report: Mapping[str, Any]) -> str:
    model = report.get("model", {}).get("name") or "model"
    lines = [f"# Robustness report: `{model}` on {report['dataset'].get('name', report['benchmark'])}", ""]
    if "flip_probability" in report:
        lines += ["| Perturbation | Flip probability (%) | Top-5 distance |", "|---|---|---|"]
        for p, v in report["flip_probability"].items():
            lines.append(f"| {p} | {_f(v)} | {_f(report['top5_distance'][p], 3)} |")
        lines += ["", f"Mean flip probability (benchmark perturbations): {_f(report.get('mean_flip_probability'))} %"
                  + (f"; mFR {_f(report['mfr'])} %" if report.get("mfr") is not None else "")
                  + (f"; mT5D {_f(report['mt5d'])} %" if report.get("mt5d") is not None else "")
                  + (f"; clean error (first frames) {_f(report['clean_error'])} %"
                     if report.get("clean_error") is not None else ""), ""]
        return "\n".join(lines)
    clean = report.get("clean") or {}
    cbar = "cbar_error" in report  # a -C-bar benchmark: its mean error is cbar_error
    main_error = report.get("cbar_error") if cbar else report.get("corruption_error")
    head = ["Clean error", "C-bar error" if cbar else "Corruption error"] + \
        (["mCE"] if report.get("mce") is not None else []) + \
        ["RMS calib. (clean)", "RMS calib. (corrupted)", "ECE (clean)", "ECE (corrupted)"]
    vals = [report.get("clean_error"), main_error] + \
        ([report["mce"]] if report.get("mce") is not None else []) + \
        [clean.get("rms_calibration_error"), report.get("rms_calibration_error"), clean.get("ece"),
         report.get("summary", {}).get("ece")]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), "| " + " | ".join(_f(v) for v in vals) + " |",
              ""]
    rel = report.get("summary", {}).get("relative_mce")
    if rel:
        lines += [f"Relative mCE: {_f(rel['per_severity'])} (per-severity degradation; the 'once' variant: "
                  f"{_f(rel['once'])}).", ""]
    corr = report.get("corruptions", {})
    if corr:
        groups: dict[str, list[str]] = {}
        for c, v in corr.items():
            groups.setdefault(v["group"], []).append(c)
        names = [c for g in groups.values() for c in g]
        lines += ["Top-1 error (%) per corruption, mean over severities"
                  + (" (CE, AlexNet = 100, in brackets)" if report.get("mce") is not None else "") + ":", "",
                  "Groups: " + "; ".join(f"{g} = " + ", ".join(_SHORT.get(c, c) for c in cs)
                                         for g, cs in groups.items()) + ".", ""]
        lines += ["| " + " | ".join(_SHORT.get(c, c) for c in names) + " |", "|" + "---|" * len(names),
                  "| " + " | ".join(_f(corr[c]["error"], 1) + (f" ({corr[c]['ce']:.0f})" if "ce" in corr[c] else "")
                                    for c in names) + " |", ""]
    cells = report.get("cells", [])
    if cells:
        sevs = sorted({c["severity"] for c in cells})
        lines += ["Top-1 error (%) per corruption and severity:", "",
                  "| Corruption | " + " | ".join(f"s{s}" for s in sevs) + " | mean | RMS calib. |",
                  "|" + "---|" * (len(sevs) + 3)]
        allc = {**report.get("corruptions", {}), **report.get("extra_corruptions", {})}
        for c, v in allc.items():
            by = v["errors_by_severity"]
            mark = " *" if c in report.get("extra_corruptions", {}) else ""
            lines.append(f"| {c}{mark} | " + " | ".join(_f(by.get(str(s)), 1) for s in sevs)
                         + f" | {_f(v['error'], 2)} | {_f(v['rms_calibration_error'], 2)} |")
        mbs = report.get("summary", {}).get("mean_error_by_severity")
        if mbs:
            lines.append("| **mean (benchmark)** | " + " | ".join(_f(mbs.get(str(s)), 1) for s in sevs)
                         + f" | {_f(main_error, 2)} | {_f(report.get('rms_calibration_error'))} |")
        if report.get("extra_corruptions"):
            lines += ["", "\\* extra (validation) corruption: reported, not averaged into the benchmark numbers."]
        lines.append("")
    lines += ["Protocol:", ""] + [f"- {k}: {v}" for k, v in report.get("protocol", {}).items()] + [""]
    run = report.get("run", {})
    lines.append(f"Evaluated {run.get('num_images', '?')} images on {run.get('world_size', 1)} process(es) "
                 f"({run.get('device', '?')}) in {run.get('elapsed_s', 0):.1f} s.")
    return "\n".join(lines) + "\n"


def _plots(report: dict[str, Any], folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out_dir = folder / "plots"
    out_dir.mkdir(exist_ok=True)
    written = []
    allc = {**report.get("corruptions", {}), **report.get("extra_corruptions", {})}
    if allc:
        groups: dict[str, list[str]] = {}
        for c, v in allc.items():
            groups.setdefault(v["group"], []).append(c)
        fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.4), sharey=True, squeeze=False)
        for ax, (g, cs) in zip(axes[0], groups.items()):
            for c in cs:
                by = allc[c]["errors_by_severity"]
                sev = sorted(int(s) for s in by)
                ax.plot(sev, [by[str(s)] for s in sev], marker="o", label=_SHORT.get(c, c))
            if report.get("clean_error") is not None:
                ax.axhline(report["clean_error"], color="gray", ls="--", lw=1, label="clean")
            ax.set_title(g)
            ax.set_xlabel("severity")
            ax.set_xticks([1, 2, 3, 4, 5])
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("top-1 error (%)")
        fig.tight_layout()
        fig.savefig(out_dir / "error_vs_severity.png", dpi=110)
        plt.close(fig)
        written.append("plots/error_vs_severity.png")

        names = list(allc)
        sevs = sorted({int(s) for v in allc.values() for s in v["errors_by_severity"]})
        grid = np.array([[allc[c]["errors_by_severity"].get(str(s), np.nan) for s in sevs] for c in names],
                        dtype=float)
        fig, ax = plt.subplots(figsize=(1.2 * len(sevs) + 3, 0.32 * len(names) + 1.2))
        im = ax.imshow(grid, cmap="magma_r", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(sevs)), [str(s) for s in sevs])
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("severity")
        for i in range(len(names)):
            for j in range(len(sevs)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if grid[i, j] > 55 else "black")
        fig.colorbar(im, ax=ax, label="top-1 error (%)")
        fig.tight_layout()
        fig.savefig(out_dir / "heatmap.png", dpi=110)
        plt.close(fig)
        written.append("plots/heatmap.png")

    curves = [(k, report[k]["reliability"] if k == "clean" else report[k]) for k in ("clean", "corrupted_reliability")
              if (report.get(k) or {}) and (k != "clean" or "reliability" in report[k])]
    if curves:
        fig, axes = plt.subplots(1, len(curves), figsize=(3.8 * len(curves), 3.6), squeeze=False)
        for ax, (k, rel) in zip(axes[0], curves):
            edges = np.array(rel["edges"])
            acc = np.array([np.nan if v is None else v for v in rel["accuracy"]], dtype=float)
            conf = np.array([np.nan if v is None else v for v in rel["confidence"]], dtype=float)
            ax.bar(edges[:-1], np.nan_to_num(acc), width=np.diff(edges), align="edge", edgecolor="black",
                   alpha=0.7, label="accuracy")
            centers = (edges[:-1] + edges[1:]) / 2
            ax.plot(centers, conf, "_", color="tab:red", ms=12, mew=2, label="mean confidence of the bin")
            ax.plot([0, 1], [0, 1], "k--", lw=1)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("confidence")
            ax.set_ylabel("accuracy")
            ax.set_title("clean" if k == "clean" else "corrupted (benchmark corruptions)")
            ax.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        fig.savefig(out_dir / "reliability.png", dpi=110)
        plt.close(fig)
        written.append("plots/reliability.png")

    if "flip_probability" in report:
        fps = report["flip_probability"]
        fig, ax = plt.subplots(figsize=(0.6 * len(fps) + 2, 3.2))
        ax.bar(range(len(fps)), list(fps.values()))
        ax.set_xticks(range(len(fps)), list(fps), rotation=45, ha="right")
        ax.set_ylabel("flip probability (%)")
        fig.tight_layout()
        fig.savefig(out_dir / "flip_probability.png", dpi=110)
        plt.close(fig)
        written.append("plots/flip_probability.png")
    return written


def write_report(report: dict[str, Any], folder: str | os.PathLike[str], plots: bool = True) -> Path:
    """Write ``report.json``, ``report.md``, ``cells.csv`` (for -C) and ``plots/*.png`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    report["plots"] = _plots(report, folder) if plots else []
    if report.get("cells"):
        keys = ["corruption", "severity", "group", "n", "error", "rms_calibration_error", "ece", "mean_confidence"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        for row in report["cells"]:
            w.writerow({k: row.get(k) for k in keys})
        atomic_write_bytes(folder / CELLS_CSV, buf.getvalue().encode("utf-8"))
    atomic_write_bytes(folder / REPORT_JSON, json.dumps(report, indent=2, allow_nan=False).encode("utf-8"))
    atomic_write_bytes(folder / REPORT_MD, _markdown(report).encode("utf-8"))
    return folder


def _report_labels(paths: Sequence[Path]) -> list[str]:
    """The shortest trailing path parts that tell the report folders apart (``a/eval``, ``b/eval``: ``a``, ``b``)."""
    parts = [p.parts for p in paths]
    for k in range(1, max(len(q) for q in parts) + 1):
        labels = ["/".join(q[-k:]) for q in parts]
        if len(set(labels)) == len(labels):
            if k > 1 and len({q[-1] for q in parts}) == 1:  # a shared last part (eval-cifar10-c) says nothing
                labels = ["/".join(q[-k:-1]) for q in parts]
            return labels
    return [str(p) for p in paths]


def load_reports(folders: Sequence[str | os.PathLike[str]]) -> list[tuple[str, dict[str, Any]]]:
    """Read several ``report.json`` for a comparison, each with a label.

    Args:
        folders: report folders (or ``report.json`` files), each optionally written ``LABEL=FOLDER``; without a label
            the folder's name is used, or as many trailing path parts as tell the folders apart.

    Returns:
        ``(label, report)`` pairs in the given order.
    """
    labels: list[str | None] = []
    paths: list[Path] = []
    for f in folders:
        text = os.fspath(f)
        label, sep, rest = text.partition("=")
        given = bool(sep) and bool(label) and "/" not in label and not Path(text).exists()
        path = Path(rest if given else text)
        file = path / REPORT_JSON if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"no {REPORT_JSON} in {path}")
        labels.append(label if given else None)
        paths.append(path if path.is_dir() else path.parent)
    auto = _report_labels(paths) if paths else []
    reports = []
    for given_label, fallback, path in zip(labels, auto, paths):
        file = path / REPORT_JSON
        try:
            reports.append((given_label or fallback, json.loads(file.read_text("utf-8"))))
        except json.JSONDecodeError as e:
            raise ValueError(f"{file} is not valid JSON: {e}") from None
    return reports


_Reports = Sequence[str | os.PathLike[str]] | Sequence[tuple[str, dict[str, Any]]]


def _loaded(items: _Reports) -> list[tuple[str, dict[str, Any]]]:
    """``(label, report)`` pairs as they are, or report folders read with :func:`load_reports`."""
    if all(isinstance(i, tuple) for i in items):
        return list(cast(Sequence[tuple[str, dict[str, Any]]], items))
    return load_reports(cast(Sequence[str | os.PathLike[str]], items))


def compare_reports(folders: _Reports, allow_diff: Sequence[str] = ()) -> str:
    """A side-by-side markdown table of several ``report.json`` (clean, corruption, mCE, RMS, per corruption).

    The models' resolved training configurations (``report["training_config"]``) must agree in everything but the
    augmentation and its loss (:func:`timm_dynmix.fairness.check_comparable`); the differences ``allow_diff``
    accepts are listed under the table.

    Args:
        folders: report folders, each optionally ``LABEL=FOLDER`` (see :func:`load_reports`), or the
            ``(label, report)`` pairs it returned.
        allow_diff: Training-configuration fields allowed to differ (``"*"``: any, and unrecorded ones).

    Raises:
        timm_dynmix.fairness.IncomparableRunsError: the runs trained differently in a field not allowed.
    """
    from timm_dynmix.fairness import check_comparable, format_allowed_differences

    reports = _loaded(folders)
    if len(reports) < 2:
        raise ValueError("--compare needs at least two report folders")
    shown = check_comparable({name: r.get("training_config") for name, r in reports}, allow_diff=allow_diff)
    benches = {r["benchmark"] for _, r in reports}
    title = f"Comparison on {', '.join(sorted(benches))}" + (" (different benchmarks!)" if len(benches) > 1 else "")
    cols = [f"{name} (`{r.get('model', {}).get('name') or '?'}`)" for name, r in reports]
    rows = [("Clean error (%)", "clean_error"), ("Corruption error (%)", "corruption_error"),
            ("C-bar error (%)", "cbar_error"), ("mCE (%)", "mce"),
            ("RMS calibration error (%)", "rms_calibration_error"), ("Mean flip probability (%)",
                                                                     "mean_flip_probability"), ("mFR (%)", "mfr")]
    lines = [f"## {title}", "", "| Metric | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for label, key in rows:
        vals = [r.get(key) for _, r in reports]
        if any(v is not None for v in vals):
            lines.append(f"| {label} | " + " | ".join(_f(v) for v in vals) + " |")
    corr = list(dict.fromkeys(c for _, r in reports for c in r.get("per_corruption", {})))
    for c in corr:
        lines.append(f"| {c} | " + " | ".join(_f(r.get("per_corruption", {}).get(c)) for _, r in reports) + " |")
    fp = list(dict.fromkeys(p for _, r in reports for p in r.get("flip_probability", {})))
    for p in fp:
        lines.append(f"| FP {p} | " + " | ".join(_f(r.get("flip_probability", {}).get(p)) for _, r in reports) + " |")
    return "\n".join(lines + format_allowed_differences(shown))


def compare_plot(folders: _Reports, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Plot the error per corruption of several reports side by side (grouped bars) into a PNG file.

    One group of bars per benchmark corruption, then the clean error and the mean corruption error; one bar per
    report. Extra (validation) corruptions are left out, as they are out of the benchmark mean.

    Args:
        folders: report folders, each optionally ``LABEL=FOLDER`` (see :func:`load_reports`), or the
            ``(label, report)`` pairs it returned.
        path: the PNG file to write.

    Returns:
        What was plotted: ``{"labels": [...], "groups": [...], "errors": [[per group] per report], "colors":
        [hex colour per report]}`` (NaN where a report lacks a value; every report gets its own colour).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    reports = _loaded(folders)
    if len(reports) < 2:
        raise ValueError("--compare needs at least two report folders")
    corr = list(dict.fromkeys(c for _, r in reports for c in r.get("per_corruption", {})))
    if not corr:
        raise ValueError("the reports have no corruption errors to plot (a -C benchmark report is needed)")
    groups = [*corr, "clean", "mean -C"]
    errors = [[r.get("per_corruption", {}).get(c) for c in corr] + [r.get("clean_error"), r.get("corruption_error")]
              for _, r in reports]
    grid = np.array([[np.nan if v is None else v for v in row] for row in errors], dtype=float)
    n = len(reports)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(min(16.0, max(8.0, 0.22 * n * len(groups) + 2)), 4.2))
    x = np.arange(len(groups))
    # one colour per report: the default cycle repeats after 10, so larger comparisons take tab20 or a sampled map
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "turbo")
    colors = [matplotlib.colors.to_hex(cmap(k) if n <= 20 else cmap(k / (n - 1))) for k in range(n)]
    for k, (label, _) in enumerate(reports):
        ax.bar(x + (k - (n - 1) / 2) * width, grid[k], width, label=label, color=colors[k])
    ax.set_xticks(x, [_SHORT.get(g, g) for g in groups], rotation=45, ha="right")
    ax.set_ylabel("top-1 error (%)")
    benches = sorted({r["benchmark"] for _, r in reports})
    ax.set_title(f"Error per corruption, {', '.join(benches)}")
    ax.legend(fontsize=7, ncol=min(n, 4))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return {"labels": [label for label, _ in reports], "groups": groups, "errors": grid.tolist(), "colors": colors}
