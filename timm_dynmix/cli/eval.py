"""``timm-dynmix eval``: evaluate a model on clean, -C, -C-bar, -3DCC or -P benchmarks and write a report.

The evaluation modules (torch, timm) are imported when the command runs, not for ``--help``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from timm_dynmix.robustness.readers import BENCHMARKS

__all__ = ["add_arguments", "run", "WHERE_BENCHMARKS_COME_FROM"]

WHERE_BENCHMARKS_COME_FROM = """\
where the benchmarks come from:
  CIFAR-10-C, CIFAR-100-C, ImageNet-C, ImageNet-P: Hendrycks & Dietterich's releases on Zenodo (records 2535967,
    3555552, 2235448 and 3565846; CIFAR-10-P is linked from hendrycks/robustness). Unpack, then
    --benchmark cifar10-c --data-dir CIFAR-10-C   (<corruption>.npy + labels.npy; add --clean cifar10
                                                   --clean-data-dir DIR for the clean error)
    --benchmark imagenet-c --data-dir ImageNet-C  (<corruption>/<1..5>/<wnid>/*.JPEG; --clean the val folder)
    --benchmark imagenet-p --data-dir ImageNet-P  (<perturbation>/<wnid>/*.mp4)
  ImageNet-3DCC: the 3D Common Corruptions release (EPFL-VILAB/3DCommonCorruptions), as
    <corruption>/<1..5>/<wnid>/* with or without a group level: --benchmark imagenet-3dcc --data-dir DIR.
  When a release cannot be downloaded, `timm-dynmix make-c` regenerates a -C set from the clean test set
    (same layout, with clean.npy): --benchmark <that folder>.
  CIFAR-10-C-bar / ImageNet-C-bar (Mintun et al., NeurIPS 2021) have no download: generate CIFAR-10-C-bar with
    `timm-dynmix make-c --suite c-bar`, then --benchmark <that folder>; the report gives cbar_error (the mean
    over its 10 corruptions x 5 severities) next to the -C report's corruption_error.
"""


def _comma_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _severity_list(text: str) -> list[int]:
    try:
        return [int(t) for t in _comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"severities must be comma-separated integers 1..5, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``timm-dynmix eval``; the help ends with where the benchmarks come from."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = WHERE_BENCHMARKS_COME_FROM
    parser.add_argument("--model", help="timm name (with --checkpoint), local-dir:PATH or hf-hub:ORG/NAME")
    parser.add_argument("--checkpoint", default=None, help="raw state dict (.pth/.pt/.safetensors) for --model")
    parser.add_argument("--benchmark", help=f"{' | '.join(BENCHMARKS)} | a folder made by make-c (a -C-bar "
                        "folder is recognised by its corruptions; see below)")
    parser.add_argument("--data-dir", default=None, help="the benchmark's folder (for a named benchmark)")
    parser.add_argument("--clean", default=None, help="clean test set for the clean error of a -C benchmark "
                        "(a dataset name, Hub id or local path as make-c --dataset takes)")
    parser.add_argument("--clean-data-dir", default=None, help="local copy for a named --clean dataset")
    parser.add_argument("--severities", type=_severity_list, default=None, help="e.g. 1,2,3 (default: all 5)")
    parser.add_argument("--corruptions", type=_comma_list, default=None,
                        help="comma-separated corruptions / perturbations (default: all present)")
    parser.add_argument("--max-per-cell", type=int, default=None,
                        help="a seeded random subset of N images per cell, the same positions in every cell")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --max-per-cell subset")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: 0 for npy "
                        "arrays, up to 4 for image files)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--resize-256-crop-224", action="store_true",
                        help="AugMix's ImageNet test transform (Resize(256) + CenterCrop(224)); default: no resize")
    parser.add_argument("--difficulty", type=int, default=1, choices=(1, 2, 3), help="ImageNet-P difficulty")
    parser.add_argument("--baseline", default=None, help="JSON of baseline (e.g. AlexNet) errors for mCE: "
                        "{corruption: [5 errors] or mean, 'clean_error': e}; for -P: {'flip_probability': {...}, "
                        "'top5_distance': {...}} (fractions)")
    parser.add_argument("--rms-skip-last-bin", action="store_true",
                        help="reproduce the published calib_err, which leaves the most confident bin out")
    parser.add_argument("--name", default=None, help="benchmark name in the report (default: from --benchmark)")
    parser.add_argument("--out", default=None, help="report folder (report.json, report.md, plots/)")
    parser.add_argument("--compare", nargs="+", default=None, metavar="REPORT_DIR",
                        help="print a side-by-side table of reports, each REPORT_DIR or LABEL=REPORT_DIR (with --out "
                             "also write compare.md and compare.png, the error per corruption side by side); no model")
    parser.add_argument("--allow-diff", action="append", default=[], metavar="FIELD",
                        help="with --compare: accept runs whose resolved training configurations differ in FIELD "
                             "(repeatable; '*' for any field, or reports of models without a recorded "
                             "configuration); the differences are printed under the table. Without it, --compare "
                             "refuses runs that differ in anything but the augmentation and its loss")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--no-progress", action="store_true")


def _load_baseline(path: str | None) -> dict[str, Any] | None:
    """The JSON object of ``--baseline`` (per-corruption baseline errors), None without one."""
    if path is None:
        return None
    from timm_dynmix.fileio import read_json

    p = Path(path)
    data = read_json(p, "baseline JSON")
    if not isinstance(data, dict):
        raise ValueError(f"{p} must hold a JSON object of baseline errors, got {type(data).__name__}")
    return data


def run(args: argparse.Namespace) -> int:
    """Run ``timm-dynmix eval``: evaluate and write a report, or compare reports."""
    from timm_dynmix.fileio import atomic_write_bytes
    from timm_dynmix.robustness import report as rep
    from timm_dynmix.robustness.evaluate import (
        evaluate_corruptions,
        evaluate_perturbations,
        load_benchmark,
        load_eval_model,
    )
    from timm_dynmix.robustness.readers import PerturbationBenchmark

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    if args.compare:
        reports = rep.load_reports(args.compare)
        text = rep.compare_reports(reports, allow_diff=args.allow_diff)
        print(text)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(Path(args.out) / "compare.md", (text + "\n").encode("utf-8"))
            if not args.no_plots and any(r.get("per_corruption") for _, r in reports):
                rep.compare_plot(reports, Path(args.out) / "compare.png")
        return 0
    if not args.model or not args.benchmark or not args.out:
        raise ValueError("eval needs --model, --benchmark and --out (or --compare REPORT_DIR ...)")
    baseline = _load_baseline(args.baseline)
    model = load_eval_model(args.model, args.checkpoint)
    bench = load_benchmark(args.benchmark, data_dir=args.data_dir, clean=args.clean,
                           clean_data_dir=args.clean_data_dir, corruptions=args.corruptions,
                           severities=args.severities, max_per_cell=args.max_per_cell, seed=args.seed,
                           difficulty=args.difficulty, model=model)
    common = {"batch_size": args.batch_size, "device": args.device, "resize_256_crop_224": args.resize_256_crop_224,
              "num_workers": args.num_workers, "progress": not args.no_progress}
    meta = {"model": args.model, "checkpoint": args.checkpoint, "max_per_cell": args.max_per_cell,
            "seed": args.seed, "name": args.name, "resize_256_crop_224": args.resize_256_crop_224}
    if isinstance(bench, PerturbationBenchmark):
        result: Any = evaluate_perturbations(model, bench, **common)
    else:
        result = evaluate_corruptions(model, bench, **common)
    try:
        if result.info["is_main_process"]:
            report = rep.build_report(result, model, meta=meta, baseline=baseline,
                                      skip_last_bin=args.rms_skip_last_bin)
            report["training_config"] = _training_config(args.model)
            folder = rep.write_report(report, args.out, plots=not args.no_plots)
            print((folder / rep.REPORT_MD).read_text(encoding="utf-8"))
            print(f"report written to {folder}")
    finally:
        _close_process_group()
    return 0


def _training_config(model: str) -> dict[str, Any] | None:
    """The resolved training configuration of a model trained by timm-dynmix (``results.json["resolved"]`` beside
    its weights, for ``local-dir:`` models and folders), so that ``--compare`` can check it; None when unknown."""
    from timm_dynmix.fileio import read_json

    folder = Path(model.split(":", 1)[1] if model.startswith("local-dir:") else model)
    try:
        results = read_json(folder / "results.json", "results.json") if (folder / "results.json").is_file() else None
    except (OSError, ValueError):
        return None
    resolved = results.get("resolved") if isinstance(results, dict) else None
    return resolved if isinstance(resolved, dict) else None


def _close_process_group() -> None:
    """Under torchrun: wait for every rank, then close the process group.

    A rank that exits while another still holds the gloo group open can be aborted (SIGABRT) at shutdown.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
