"""Does DynMix beat AugMix? A CPU-scale replication of the DynMix paper's CIFAR-10-C tables (Tables 1 and 5).

Claim checked: the paper reports CIFAR-10-C error 26.9 (standard) -> 11.2 (AugMix + JSD) -> 8.9 (DynMix + JSD) for
WRN-40-2 trained 100 epochs, and the ablations no JSD 10.4, linear component only 13.3, single mixed view 9.7. This
study trains every arm with the same fast CPU recipe (``examples/configs/cifar10_fast_cpu.yaml``: same model,
epochs, schedule, batch and seeds; only the augmentation and the loss differ) and evaluates each model on a
regenerated CIFAR-10-C (``timm-dynmix make-c --params cifar``: 15 + 4 corruptions x 5 severities, a class-balanced
seeded subset of the CIFAR-10 test set, the same images in every cell).

Data: the CIFAR-10 copy in ``../shared/data/cifar10`` (rebuilt from JPEG files: absolute errors are about 2-3 points
higher than on the original pixels, and the corruptions are regenerated, not the released arrays): compare arms with
each other, not with published figures.

One command runs the whole study and can be stopped at any moment: every arm is an ordinary training run with
checkpoints (``--resume latest``), a finished training (``results.json``) or evaluation (``report.json``) is never
redone, and ``benchmarks/results/robustness_cifar10/<arm>_seed<k>.json`` is written as each arm completes, with the
commit and the exact commands that produced it::

    nice python benchmarks/robustness_cifar10.py                    # everything, in priority order
    python benchmarks/robustness_cifar10.py --arms standard,dynmix_jsd --seeds 0
    python benchmarks/robustness_cifar10.py --list                  # the plan and what is done
    python benchmarks/robustness_cifar10.py --summary               # tables from the finished result files

Arms, in priority order (``--priority a,b`` selects groups):

a. the paper's Table 1 columns we can run, plus AugMix with timm's op set (what timm users run);
b. DynMix variants the library offers beyond the paper;
c. the Table 5 ablations;
d. seeds 1 and 2 of standard, AugMix + JSD, literal DynMix + JSD and the best DynMix variant of a-b (by seed-0
   corruption error; chosen once a and b are complete).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timm_dynmix.runtime import cpu_model

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10"
RESULTS = ROOT / "benchmarks" / "results" / "robustness_cifar10"
RECIPE = ROOT / "examples" / "configs" / "cifar10_fast_cpu.yaml"
DEFAULT_WORK_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "timm-dynmix" / "robustness_cifar10"


@dataclass(frozen=True)
class Arm:
    """One column of the study: a name, its priority group, the training flags and the paper's figure."""

    name: str
    group: str
    label: str
    train_args: tuple[str, ...]
    paper: float | None = None  # the paper's CIFAR-10-C error for WRN-40-2, when it reports one
    paper_source: str = ""


_T1 = "DynMix paper Table 1 (WRN-40-2)"
_A1 = "AugMix paper Table 1 (WRN-40-2)"
_T5 = "DynMix paper Table 5 (WRN-40-2)"
ARMS: tuple[Arm, ...] = (
    Arm("standard", "a", "Standard", ("--aug", "none"), 26.9, _T1),
    Arm("mixup", "a", "Mixup", ("--aug", "mixup"), 22.3, _A1),
    Arm("cutmix", "a", "CutMix", ("--aug", "cutmix"), 27.1, _A1),
    Arm("aa_star", "a", "AutoAugment*", ("--aug", "autoaugment"), 23.9, _A1),
    Arm("augmix_jsd", "a", "AugMix + JSD (paper ops)", ("--aug", "augmix"), 11.2, _T1),
    Arm("dynmix_jsd", "a", "DynMix + JSD (literal)", ("--aug", "dynmix"), 8.9, _T1),
    Arm("augmix_timm_jsd", "a", "AugMix + JSD (timm's ops)", ("--aug", "augmix-timm")),
    Arm("dynmix_upright_jsd", "b", "DynMix + JSD, no vertical flip", ("--aug", "dynmix-ocifar_upright")),
    Arm("dynmix_blend_jsd", "b", "DynMix + JSD, skip blend", ("--aug", "dynmix-b1")),
    Arm("dynmix_blend_upright_jsd", "b", "DynMix + JSD, skip blend, no vertical flip",
        ("--aug", "dynmix-b1-ocifar_upright")),
    Arm("dynmix_indep_jsd", "b", "DynMix + JSD, independent weights", ("--aug", "dynmix-windep")),
    Arm("augmix_nojsd", "c", "AugMix, no JSD", ("--aug", "augmix", "--no-jsd")),
    Arm("dynmix_nojsd", "c", "DynMix, no JSD", ("--aug", "dynmix", "--no-jsd"), 10.4, _T5),
    Arm("dynmix_linear_jsd", "c", "DynMix + JSD, linear component only", ("--aug", "dynmix-wlinear"), 13.3, _T5),
    Arm("augmix_single_jsd", "c", "AugMix + JSD, single mixed view", ("--aug", "augmix", "--num-mixes", "1")),
    Arm("dynmix_single_jsd", "c", "DynMix + JSD, single mixed view", ("--aug", "dynmix-n1"), 9.7, _T5),
)
ARM_BY_NAME = {a.name: a for a in ARMS}
SEED_ARMS = ("standard", "augmix_jsd", "dynmix_jsd")  # group d: + the best DynMix variant
DYNMIX_CANDIDATES = ("dynmix_jsd", "dynmix_upright_jsd", "dynmix_blend_jsd", "dynmix_blend_upright_jsd",
                     "dynmix_indep_jsd")


# ---- helpers -------------------------------------------------------------------------------------------------------
def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def provenance() -> dict[str, Any]:
    """The commit (and whether the tree had local changes), machine and date of this run."""
    cpu = cpu_model()
    import torch

    dirty = bool(_git("status", "--porcelain", "--", "timm_dynmix", "benchmarks/robustness_cifar10.py", "examples"))
    return {"commit": _git("rev-parse", "HEAD") or None, "dirty": dirty,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}


def _display(part: str) -> str:
    """A path as the user would type it from the repository root: relative inside the checkout and beside it
    (``../shared/...``), ``~/...`` under the home folder; other arguments unchanged."""
    prefix, sep, rest = part.partition(":") if part.startswith("local-dir:") else ("", "", part)
    if not os.path.isabs(rest):
        return part
    path = Path(rest)
    for base, shown in ((ROOT, ""), (ROOT.parent, ".."), (Path.home(), "~")):
        try:
            rel = path.relative_to(base)
        except ValueError:
            continue
        return prefix + sep + (str(rel) if not shown else f"{shown}/{rel}")
    return part


def _cmd_str(cmd: list[str]) -> str:
    """A command as a user would type it from the repository root (see :func:`_display`)."""
    return " ".join(shlex.quote("python" if part == sys.executable else _display(part)) for part in cmd)


def _run(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {_cmd_str(cmd)}   (log: {_display(str(log))})", flush=True)
    with open(log, "ab") as f:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(f"command failed with exit code {proc.returncode}: {_cmd_str(cmd)}\n" + "\n".join(tail))


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


# ---- the study -----------------------------------------------------------------------------------------------------
class Study:
    """Paths and commands of one study; every step is skipped when its output exists."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.work_dir).expanduser().resolve()
        self.results = Path(args.results_dir).resolve()
        self.bench = self.work / f"cifar10-c-{args.per_cell}"

    def result_file(self, arm: str, seed: int) -> Path:
        return self.results / f"{arm}_seed{seed}.json"

    def run_dir(self, arm: str, seed: int) -> Path:
        return self.work / "runs" / f"{arm}_seed{seed}"

    def make_c_cmd(self) -> list[str]:
        return [sys.executable, "-m", "timm_dynmix.cli", "make-c", "--dataset", str(self.args.data_dir),
                "--params", "cifar", "--max-per-cell", str(self.args.per_cell), "--class-balanced",
                "--seed", "0", "--out", str(self.bench), "--no-progress"]

    def train_cmd(self, arm: Arm, seed: int) -> list[str]:
        return [sys.executable, "-m", "timm_dynmix.cli", "train", "-c", str(self.args.recipe), "--dataset", "cifar10",
                "--data-dir", str(self.args.data_dir), *arm.train_args, "--seed", str(seed),
                "--output-dir", str(self.run_dir(arm.name, seed)), "--resume", "latest", *self.args.extra_train_args]

    def eval_cmd(self, arm: Arm, seed: int) -> list[str]:
        run = self.run_dir(arm.name, seed)
        return [sys.executable, "-m", "timm_dynmix.cli", "eval", "--model", f"local-dir:{run}", "--benchmark",
                str(self.bench), "--out", str(run / "eval-cifar10-c"), "--no-progress"]

    def ensure_benchmark(self) -> None:
        """Generate the -C set (make-c skips the corruptions it already finished)."""
        _run(self.make_c_cmd(), self.work / "logs" / "make_c.log")

    def run_arm(self, arm: Arm, seed: int) -> dict[str, Any]:
        out = self.result_file(arm.name, seed)
        if out.is_file():
            return json.loads(out.read_text())
        run = self.run_dir(arm.name, seed)
        cmds = {"make_c": _cmd_str(self.make_c_cmd()), "train": _cmd_str(self.train_cmd(arm, seed)),
                "eval": _cmd_str(self.eval_cmd(arm, seed))}
        if not (run / "results.json").is_file():
            _run(self.train_cmd(arm, seed), self.work / "logs" / f"{arm.name}_seed{seed}.train.log")
        if not (run / "eval-cifar10-c" / "report.json").is_file():
            _run(self.eval_cmd(arm, seed), self.work / "logs" / f"{arm.name}_seed{seed}.eval.log")
        result = summarize_run(arm, seed, json.loads((run / "results.json").read_text()),
                               json.loads((run / "eval-cifar10-c" / "report.json").read_text()))
        result["commands"] = cmds
        result["study_command"] = "python benchmarks/robustness_cifar10.py " + " ".join(
            shlex.quote(a) for a in self.args.argv)
        result["provenance"] = provenance()
        _write_json(out, result)
        print(f"done: {arm.name} seed {seed}: clean error {result['clean_error']:.2f}%, "
              f"CIFAR-10-C error {result['corruption_error']:.2f}%  -> {_display(str(out))}", flush=True)
        return result

    def best_variant(self) -> str | None:
        """The DynMix arm of groups a-b with the lowest seed-0 corruption error, once all of them are done."""
        errors = {}
        for name in DYNMIX_CANDIDATES:
            f = self.result_file(name, 0)
            if not f.is_file():
                return None
            errors[name] = json.loads(f.read_text())["corruption_error"]
        return min(errors, key=errors.get)

    def plan(self) -> list[tuple[Arm, int]]:
        groups = set(self.args.priority.split(","))
        arms = [a for a in ARMS if a.group in groups] if not self.args.arms else [
            ARM_BY_NAME[n] for n in self.args.arms.split(",")]
        seeds = [int(s) for s in self.args.seeds.split(",")] if self.args.seeds else [0]
        todo = [(a, s) for s in seeds for a in arms]
        if "d" in groups and not self.args.arms:
            best = self.best_variant()
            names = list(SEED_ARMS) + ([best] if best and best not in SEED_ARMS else [])
            todo += [(ARM_BY_NAME[n], s) for s in (1, 2) for n in names]
        return todo


def summarize_run(arm: Arm, seed: int, results: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """The per-arm result file: errors (percent), calibration, time and throughput."""
    per_sev = report.get("summary", {}).get("mean_error_by_severity") or {}
    return {
        "arm": arm.name, "label": arm.label, "group": arm.group, "seed": seed, "aug": results.get("aug"),
        "jsd": results.get("jsd"), "num_mixes": results.get("num_mixes"),
        "model": results.get("model"), "epochs": results.get("epochs"), "batch_size": results.get("batch_size"),
        "precision": results.get("precision", results.get("mixed_precision")),
        "clean_error": report.get("clean_error"), "corruption_error": report.get("corruption_error"),
        "errors_by_corruption": report.get("per_corruption"),
        "errors_by_severity": per_sev,
        "extra_corruptions": {c: v.get("error") for c, v in (report.get("extra_corruptions") or {}).items()},
        "rms_calibration_error_clean": (report.get("clean") or {}).get("rms_calibration_error"),
        "rms_calibration_error_corrupted": report.get("rms_calibration_error"),
        "clean_error_full_test_set": _pct_err(results.get("metrics", {}).get("clean_top1")),
        "train_time_s": sum(h.get("epoch_time_s", 0.0) for h in results.get("history", [])),
        "train_images_per_s": results.get("train_samples_per_s"),
        "benchmark": report.get("dataset"), "paper_cifar10c_error": arm.paper, "paper_source": arm.paper_source or None,
    }


def _pct_err(top1: float | None) -> float | None:
    return None if top1 is None else round(100.0 - top1, 2)


# ---- tables --------------------------------------------------------------------------------------------------------
def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def load_results(results_dir: Path) -> dict[str, list[dict[str, Any]]]:
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(results_dir.glob("*_seed*.json")):
        r = json.loads(f.read_text())
        by_arm.setdefault(r["arm"], []).append(r)
    return by_arm


def _mean(rs: list[dict[str, Any]], key: str) -> float:
    return statistics.mean(r[key] for r in rs)


def _spread(rs: list[dict[str, Any]], key: str) -> str:
    return f"{statistics.stdev(r[key] for r in rs):.2f}" if len(rs) > 1 else "n/a (1 seed)"


def _arm_row(arm: Arm, rs: list[dict[str, Any]], extra: str = "") -> str:
    clean_rms = [r["rms_calibration_error_clean"] for r in rs if r.get("rms_calibration_error_clean") is not None]
    rms = f"{_ms(clean_rms)} / {_ms([r['rms_calibration_error_corrupted'] for r in rs])}"
    return (f"| {arm.label} | {arm.group} | {','.join(str(r['seed']) for r in rs)} | "
            f"{_ms([r['clean_error'] for r in rs])} | {_ms([r['corruption_error'] for r in rs])} |{extra} {rms} | "
            f"{_mean(rs, 'train_time_s') / 60:.1f} | {'-' if arm.paper is None else arm.paper} |")


def comparisons(by_arm: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The study's questions as differences of mean CIFAR-10-C error (points), each beside the seed spread."""
    pairs = [("dynmix_jsd", "augmix_jsd", "DynMix + JSD (literal) against AugMix + JSD (paper ops)"),
             ("dynmix_jsd", "augmix_timm_jsd", "DynMix + JSD (literal) against AugMix + JSD (timm's ops)"),
             ("dynmix_jsd", "dynmix_linear_jsd", "the non-linear term: literal DynMix against its linear component"),
             ("dynmix_jsd", "dynmix_nojsd", "the JSD loss, DynMix"),
             ("augmix_jsd", "augmix_nojsd", "the JSD loss, AugMix"),
             ("dynmix_jsd", "dynmix_single_jsd", "two mixed views against one, DynMix"),
             ("augmix_jsd", "augmix_single_jsd", "two mixed views against one, AugMix")]
    done = {n: rs for n, rs in by_arm.items() if rs}
    variants = [n for n in DYNMIX_CANDIDATES if n in done]
    if variants:
        best = min(variants, key=lambda n: _mean(done[n], "corruption_error"))
        if best != "dynmix_jsd":
            pairs.insert(1, (best, "augmix_jsd", f"the best DynMix variant ({ARM_BY_NAME[best].label}) against "
                                                 "AugMix + JSD (paper ops)"))
    lines = []
    for a, b, what in pairs:
        if a in done and b in done:
            d = _mean(done[a], "corruption_error") - _mean(done[b], "corruption_error")
            sides = [f"{ARM_BY_NAME[n].label} {_mean(done[n], 'corruption_error'):.2f} over seeds "
                     f"{','.join(str(r['seed']) for r in done[n])}" for n in (a, b)]
            lines.append(f"- {what}: {d:+.2f} points of CIFAR-10-C error ({sides[0]}, {sides[1]}); seed std "
                         f"{_spread(done[a], 'corruption_error')} / {_spread(done[b], 'corruption_error')}")
    return lines


def _per_key_table(by_arm: dict[str, list[dict[str, Any]]], done: list[Arm], key: str, title: str,
                   first: str) -> list[str]:
    """A table of one per-arm mapping of the result files (error per corruption, ...): rows its keys, columns the
    arms, cells the mean over the arm's seeds ("-" where no seed has the key)."""
    rows = list(dict.fromkeys(k for a in done for r in by_arm[a.name] for k in r.get(key) or {}))
    if key == "errors_by_severity":
        rows.sort(key=int)
    if not rows:
        return []
    lines = ["", title, "", f"| {first} | " + " | ".join(a.name for a in done) + " |", "|---|" + "---:|" * len(done)]
    for k in rows:
        vals = [[r[key][k] for r in by_arm[a.name] if k in (r.get(key) or {})] for a in done]
        lines.append(f"| {k} | " + " | ".join(f"{statistics.mean(v):.1f}" if v else "-" for v in vals) + " |")
    return lines


def summary_markdown(by_arm: dict[str, list[dict[str, Any]]]) -> str:
    """Paper-style tables (mean ± sample std over seeds where there are several) from the result files.

    Table 1 layout (groups a and b), Table 5 layout (the ablations of group c beside the methods they ablate), the
    study's questions as differences with the seed spread, then the error per corruption and per severity.
    """
    head = ("| arm | group | seeds | clean error (%) | CIFAR-10-C error (%) |{} RMS calib. clean / corrupted (%) | "
            "train min | paper C10-C (WRN-40-2) |")
    lines = ["Table 1 layout (the paper's methods, then the library's DynMix variants):", "",
             head.format(""), "|---|---|---:|---:|---:|---:|---:|---:|"]
    for arm in ARMS:
        if arm.group in ("a", "b") and by_arm.get(arm.name):
            lines.append(_arm_row(arm, by_arm[arm.name]))
    ablated = {"dynmix_nojsd": "dynmix_jsd", "dynmix_linear_jsd": "dynmix_jsd", "dynmix_single_jsd": "dynmix_jsd",
               "augmix_nojsd": "augmix_jsd", "augmix_single_jsd": "augmix_jsd"}
    rows = []
    for full in ("dynmix_jsd", "augmix_jsd"):
        for name in (full, *[n for n, f in ablated.items() if f == full]):
            rs = by_arm.get(name)
            if not rs:
                continue
            delta = ""
            if name != full and by_arm.get(full):
                delta = f" {_mean(rs, 'corruption_error') - _mean(by_arm[full], 'corruption_error'):+.2f} |"
            rows.append(_arm_row(ARM_BY_NAME[name], rs, delta or " |"))
    if any(by_arm.get(n) for n in ablated):
        lines += ["", "Table 5 layout (ablations beside the full method; change in CIFAR-10-C error, points):", "",
                  head.format(" change |"), "|---|---|---:|---:|---:|---:|---:|---:|---:|", *rows]
    found = comparisons(by_arm)
    if found:
        lines += ["", "Differences of mean CIFAR-10-C error (negative: the first arm is more robust), with the "
                  "seed-to-seed standard deviation of each arm:", "", *found]
    done = [a for a in ARMS if by_arm.get(a.name)]
    for key, title, first in (("errors_by_corruption", "Error per corruption (%, seed mean):", "corruption"),
                              ("errors_by_severity", "Mean CIFAR-10-C error per severity (%, seed mean):", "severity"),
                              ("extra_corruptions", "The 4 extra (validation) corruptions, not in the CIFAR-10-C mean "
                                                    "(%, seed mean):", "corruption")):
        lines += _per_key_table(by_arm, done, key, title, first)
    return "\n".join(lines) + "\n"


def compare_plots(by_arm: dict[str, list[dict[str, Any]]], out_dir: Path) -> list[Path]:
    """Per-corruption error of the arms side by side (``timm-dynmix eval --compare``'s plot), from the seed-0 result
    files (not the work dir, which may hold only some arms' reports): one figure for group a, one for groups b and c
    beside literal DynMix and AugMix + JSD. Arms without a seed-0 result are left out; a figure needs two arms."""
    from timm_dynmix.robustness.report import compare_plot

    figures = {"compare_table1.png": [a for a in ARMS if a.group == "a"],
               "compare_variants_ablations.png": [ARM_BY_NAME["augmix_jsd"], ARM_BY_NAME["dynmix_jsd"],
                                                  *[a for a in ARMS if a.group in ("b", "c")]]}
    written = []
    for name, arms in figures.items():
        reports = []
        for a in arms:
            r = next((r for r in by_arm.get(a.name, []) if r.get("seed") == 0 and r.get("errors_by_corruption")), None)
            if r is not None:
                bench = r.get("benchmark")
                reports.append((a.name, {"per_corruption": r["errors_by_corruption"], "clean_error": r["clean_error"],
                                         "corruption_error": r["corruption_error"],
                                         "benchmark": bench.get("name", "") if isinstance(bench, dict) else
                                         str(bench or "")}))
        if len(reports) >= 2:
            compare_plot(reports, out_dir / name)
            written.append(out_dir / name)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(CIFAR10), help="the CIFAR-10 copy (default: ../shared/data/cifar10)")
    p.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR), help="runs, logs and the -C set (default: %(default)s)")
    p.add_argument("--results-dir", default=str(RESULTS), help="where the per-arm JSON files go")
    p.add_argument("--recipe", default=str(RECIPE), help="training recipe, identical for every arm")
    p.add_argument("--per-cell", type=int, default=2000, help="images per corruption x severity cell (class-balanced)")
    p.add_argument("--priority", default="a,b,c,d", help="groups to run, in order (default: all)")
    p.add_argument("--arms", default=None, help="comma-separated arm names instead of groups")
    p.add_argument("--seeds", default=None, help="comma-separated seeds for the selected arms (default: 0)")
    p.add_argument("--list", action="store_true", help="print the plan and what is done, run nothing")
    p.add_argument("--summary", action="store_true",
                   help="write summary.md and the comparison plots from the result files, run nothing")
    p.add_argument("extra_train_args", nargs="*", help="after --: extra flags for every training run")
    args = p.parse_args(argv)
    args.argv = argv
    unknown = [n for n in (args.arms or "").split(",") if n and n not in ARM_BY_NAME]
    if unknown:
        p.error(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARM_BY_NAME)}")
    bad = set(args.priority.split(",")) - {"a", "b", "c", "d"}
    if bad:
        p.error(f"--priority takes groups a, b, c, d; got {', '.join(sorted(bad))}")
    study = Study(args)
    if args.summary:
        by_arm = load_results(study.results)
        text = summary_markdown(by_arm)
        _write_json(study.results / "summary.json", {k: [r["corruption_error"] for r in v] for k, v in by_arm.items()})
        (study.results / "summary.md").write_text(text)
        print(text)
        for f in compare_plots(by_arm, study.results):
            print(f"wrote {_display(str(f))}")
        return 0
    todo = study.plan()
    if args.list:
        for arm, seed in todo:
            state = "done" if study.result_file(arm.name, seed).is_file() else "todo"
            group = "d" if seed and arm.name in (*SEED_ARMS, *DYNMIX_CANDIDATES) and not args.arms else arm.group
            print(f"{state:5s} {group} {arm.name}_seed{seed}: {' '.join(arm.train_args)}")
        return 0
    if not Path(args.data_dir).exists():
        p.error(f"--data-dir {args.data_dir} does not exist (the study reads the CIFAR-10 copy from there)")
    study.ensure_benchmark()
    for arm, seed in todo:
        study.run_arm(arm, seed)
    if "d" in args.priority.split(",") and not args.arms:  # the best variant is known only once a and b are done
        for arm, seed in study.plan():
            study.run_arm(arm, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
