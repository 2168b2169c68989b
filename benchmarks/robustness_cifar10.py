"""Which augmentation makes a CIFAR-10 classifier robust? Study v2: one enforced protocol, CIFAR-10-C and -C-bar.

Claim checked: DynMix (the paper reports CIFAR-10-C error 8.9 against AugMix's 11.2 for WRN-40-2, 100 epochs) is
more robust than AugMix; PRIME (Modas et al., ECCV 2022) is the strongest cheap method since. Every arm trains the
fast CPU recipe (``examples/configs/cifar10_fast_cpu.yaml``: same network, stem, data path, epochs, schedule, batch
and seeds, in fp32 on every machine (:data:`PROTOCOL`); only the augmentation and its loss differ), and every model
is evaluated on the same regenerated CIFAR-10-C (``make-c --suite c --params cifar``: 15 + 4 corruptions x 5
severities) and CIFAR-10-C-bar (``make-c --suite c-bar``: Mintun et al.'s 10 corruptions x 5 severities), a
class-balanced seeded subset of the test set, the same images in every cell. Before a table is written the resolved
configurations of its runs are checked (:func:`timm_dynmix.fairness.check_comparable`): runs that differ in anything
but the augmentation/loss fields (and the seed) are refused, naming the fields, unless ``--allow-diff FIELD`` is
given (stated under the table).

Study v1 (``benchmarks/results/robustness_cifar10/``) is superseded: its arms trained different networks (a frozen
whitened stem on the in-memory path, a learned one on the DataLoader path) and recorded no resolved configuration.

Data: the CIFAR-10 copy in ``../shared/data/cifar10`` (rebuilt from JPEG files: absolute errors are about 2-3 points
higher than on the original pixels, and the corruptions are regenerated, not the released arrays): compare arms with
each other, not with published figures.

One command runs the whole study and can be stopped at any moment: every arm is an ordinary training run with
checkpoints (``--resume latest``), a finished training (``results.json``) or evaluation (``report.json``) is never
redone, and ``benchmarks/results/robustness_cifar10_v2/<arm>_seed<k>.json`` is written as each arm completes, with the
commit, the exact commands and the resolved configuration that produced it::

    nice python benchmarks/robustness_cifar10.py                    # everything, in priority order
    python benchmarks/robustness_cifar10.py --arms standard,standard_whitened_stem --seeds 0
    nice python benchmarks/robustness_cifar10.py --jobs 2 -- --num-threads 1   # two arms at once, one core each
    python benchmarks/robustness_cifar10.py --list                  # the plan and what is done
    python benchmarks/robustness_cifar10.py --summary               # tables from the finished result files
    python benchmarks/robustness_cifar10.py --cards                 # hub_cards/: cards of the top three arms

Arms, in priority order (``--priority a,s`` selects groups):

a. the five methods, seed 0: standard, AugMix + JSD (official ops), DynMix + JSD (the paper's), DynMix + JSD
   without the vertical flip (v1's best variant), PRIME + JSD;
s. the stem choice: the standard arm with the frozen whitened stem v1 used (seed 0), against group a's standard;
b. the rest of the paper's Table 1, seed 0: mixup, CutMix, AutoAugment*;
d. seeds 1 and 2 of group a;
e. the winner and the runner-up of group a (mean CIFAR-10-C error over seeds) at twice the epochs, seed 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timm_dynmix.fairness import COMPARED_FIELDS, SEED_FIELDS, check_comparable, format_allowed_differences
from timm_dynmix.runtime import cpu_model

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10"
RESULTS = ROOT / "benchmarks" / "results" / "robustness_cifar10_v2"
RECIPE = ROOT / "examples" / "configs" / "cifar10_fast_cpu.yaml"
CARDS = ROOT / "hub_cards"
DEFAULT_WORK_DIR = (Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "timm-dynmix"
                    / "robustness_cifar10_v2")
FAMILIES = ("noise", "blur", "weather", "digital")


@dataclass(frozen=True)
class Arm:
    """One arm of the study: a name, its group, the training flags and published figures for other networks."""

    name: str
    group: str
    label: str
    train_args: tuple[str, ...]
    published: str = ""  # other networks and budgets, for context only


_DYNMIX_T1 = "DynMix paper, WRN-40-2, 100 epochs: C {}"
_MINTUN = "Mintun et al., WRN-40-2: C {} / C-bar {}"
ARMS: tuple[Arm, ...] = (
    Arm("standard", "a", "Standard", ("--aug", "none"), "DynMix paper C 26.9; " + _MINTUN.format(27.0, 27.1)),
    Arm("augmix_jsd", "a", "AugMix + JSD", ("--aug", "augmix"), "DynMix paper C 11.2; " + _MINTUN.format(11.1, 16.0)),
    Arm("dynmix_jsd", "a", "DynMix + JSD (paper)", ("--aug", "dynmix"), _DYNMIX_T1.format(8.9)),
    Arm("dynmix_upright_jsd", "a", "DynMix + JSD, no vertical flip", ("--aug", "dynmix-ocifar_upright")),
    Arm("prime_jsd", "a", "PRIME + JSD", ("--aug", "prime"), "PRIME paper, ResNet-18: C 11.0 (AugMix 11.4)"),
    Arm("standard_whitened_stem", "s", "Standard, frozen whitened stem (v1's)", ("--aug", "none", "--stem",
                                                                                 "whitened")),
    Arm("mixup", "b", "Mixup", ("--aug", "mixup"), "AugMix paper, WRN-40-2: C 22.3"),
    Arm("cutmix", "b", "CutMix", ("--aug", "cutmix"), "AugMix paper, WRN-40-2: C 27.1"),
    Arm("aa_star", "b", "AutoAugment*", ("--aug", "autoaugment"), "AugMix paper, WRN-40-2: C 23.9"),
)
ARM_BY_NAME = {a.name: a for a in ARMS}
METHODS = tuple(a.name for a in ARMS if a.group == "a")
SEEDS = (0, 1, 2)
GROUPS = ("a", "s", "b", "d", "e")
LONGER = "_2x"  # suffix of the group-e arms (twice the recipe's epochs)
# The study's precision is pinned, not left to the machine: the recipe's default (bf16 + channels-last where the CPU
# computes bf16 natively, else fp32) would make runs from machines with and without AVX512_BF16 incomparable, and the
# study is resumed across machines. fp32 is the same arithmetic everywhere.
PROTOCOL = ("--mixed_precision", "no", "--no-channels-last", "--data-in-memory")


# ---- helpers -------------------------------------------------------------------------------------------------------
def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def provenance() -> dict[str, Any]:
    """The commit (and whether the tree had local changes), machine and date of this run."""
    import torch

    dirty = bool(_git("status", "--porcelain", "--", "timm_dynmix", "benchmarks/robustness_cifar10.py", "examples"))
    return {"commit": _git("rev-parse", "HEAD") or None, "dirty": dirty,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu_model(),
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


def _cbar_supported() -> bool:
    """Whether this version of timm-dynmix generates CIFAR-10-C-bar (``make-c --suite c-bar``)."""
    try:
        from timm_dynmix.robustness import make_c
    except ImportError:
        return False
    return "c-bar" in getattr(make_c, "SUITES", ())


# ---- the study -----------------------------------------------------------------------------------------------------
class Study:
    """Paths and commands of one study; every step is skipped when its output exists."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.work_dir).expanduser().resolve()
        self.results = Path(args.results_dir).resolve()
        self.benches = {"c": self.work / f"cifar10-c-{args.per_cell}"}
        if not args.no_cbar and _cbar_supported():
            self.benches["c-bar"] = self.work / f"cifar10-c-bar-{args.per_cell}"

    def result_file(self, arm: str, seed: int) -> Path:
        return self.results / f"{arm}_seed{seed}.json"

    def run_dir(self, arm: str, seed: int) -> Path:
        return self.work / "runs" / f"{arm}_seed{seed}"

    def make_c_cmd(self, suite: str) -> list[str]:
        suite_args = ["--suite", suite] if suite != "c" else []
        return [sys.executable, "-m", "timm_dynmix.cli", "make-c", "--dataset", str(self.args.data_dir), *suite_args,
                "--params", "cifar", "--max-per-cell", str(self.args.per_cell), "--class-balanced",
                "--seed", "0", "--out", str(self.benches[suite]), "--no-progress"]

    def train_cmd(self, arm: Arm, seed: int, longer: bool = False) -> list[str]:
        name = arm.name + (LONGER if longer else "")
        epochs = ["--epochs", str(2 * _recipe_epochs(self.args.recipe))] if longer else []
        return [sys.executable, "-m", "timm_dynmix.cli", "train", "-c", str(self.args.recipe), "--dataset", "cifar10",
                "--data-dir", str(self.args.data_dir), *PROTOCOL, *arm.train_args, *epochs, "--seed", str(seed),
                "--output-dir", str(self.run_dir(name, seed)), "--resume", "latest", *self.args.extra_train_args]

    def eval_cmd(self, name: str, seed: int, suite: str) -> list[str]:
        run = self.run_dir(name, seed)
        return [sys.executable, "-m", "timm_dynmix.cli", "eval", "--model", f"local-dir:{run}", "--benchmark",
                str(self.benches[suite]), "--out", str(run / _eval_folder(suite)), "--no-progress"]

    def ensure_benchmarks(self) -> None:
        """Generate the -C (and -C-bar) sets (make-c skips the corruptions it already finished)."""
        for suite in self.benches:
            _run(self.make_c_cmd(suite), self.work / "logs" / f"make_c_{suite}.log")

    def run_arm(self, arm: Arm, seed: int, longer: bool = False) -> dict[str, Any]:
        """Train and evaluate one arm (skipping what is done) and write its result file.

        A result file without C-bar figures (written before C-bar existed) gets them added when the C-bar benchmark
        is available and the run folder is still there."""
        name = arm.name + (LONGER if longer else "")
        out = self.result_file(name, seed)
        old = json.loads(out.read_text()) if out.is_file() else None
        if old is not None and (old.get("cbar_error") is not None or "c-bar" not in self.benches
                                or not (self.run_dir(name, seed) / "results.json").is_file()):
            return old
        run = self.run_dir(name, seed)
        cmds = {f"make_c_{s}": _cmd_str(self.make_c_cmd(s)) for s in self.benches}
        cmds["train"] = _cmd_str(self.train_cmd(arm, seed, longer))
        if not (run / "results.json").is_file():
            started = run / "study_provenance.json"  # the code the training ran, not the code at the end
            if not started.is_file():
                _write_json(started, provenance())
            else:  # resumed from its checkpoints: record every commit the training continued on
                record = json.loads(started.read_text())
                record.setdefault("resumed_on", []).append(provenance())
                _write_json(started, record)
            _run(self.train_cmd(arm, seed, longer), self.work / "logs" / f"{name}_seed{seed}.train.log")
        reports = {}
        for suite in self.benches:
            cmds[f"eval_{suite}"] = _cmd_str(self.eval_cmd(name, seed, suite))
            report = run / _eval_folder(suite) / "report.json"
            if not report.is_file():
                _run(self.eval_cmd(name, seed, suite), self.work / "logs" / f"{name}_seed{seed}.eval_{suite}.log")
            reports[suite] = json.loads(report.read_text())
        result = summarize_run(arm, seed, json.loads((run / "results.json").read_text()), reports, longer)
        result["commands"] = cmds
        result["study_command"] = "python benchmarks/robustness_cifar10.py " + " ".join(
            shlex.quote(a) for a in self.args.argv)
        result["provenance"] = provenance()  # of the evaluation and this file
        started = run / "study_provenance.json"
        result["train_provenance"] = json.loads(started.read_text()) if started.is_file() else None
        if old is not None:  # C-bar added to an earlier result: keep when and how the rest was made
            result["provenance_before_cbar"] = old.get("provenance")
        _write_json(out, result)
        cbar = "" if result["cbar_error"] is None else f", CIFAR-10-C-bar error {result['cbar_error']:.2f}%"
        print(f"done: {name} seed {seed}: clean error {result['clean_error']:.2f}%, CIFAR-10-C error "
              f"{result['corruption_error']:.2f}%{cbar}  -> {_display(str(out))}", flush=True)
        return result

    def top_two(self) -> list[str] | None:
        """The two group-a arms with the lowest mean CIFAR-10-C error over seeds 0-2, once all of them are done."""
        means = {}
        for name in METHODS:
            files = [self.result_file(name, s) for s in SEEDS]
            if not all(f.is_file() for f in files):
                return None
            means[name] = statistics.mean(json.loads(f.read_text())["corruption_error"] for f in files)
        return sorted(means, key=means.get)[:2]

    def plan(self) -> list[tuple[Arm, int, bool]]:
        """``(arm, seed, twice the epochs)`` in priority order."""
        if self.args.arms:
            seeds = [int(s) for s in self.args.seeds.split(",")] if self.args.seeds else [0]
            return [(ARM_BY_NAME[n], s, False) for s in seeds for n in self.args.arms.split(",")]
        todo: list[tuple[Arm, int, bool]] = []
        for group in self.args.priority.split(","):
            if group in ("a", "s", "b"):
                todo += [(a, 0, False) for a in ARMS if a.group == group]
            elif group == "d":
                todo += [(ARM_BY_NAME[n], s, False) for s in SEEDS[1:] for n in METHODS]
            elif group == "e":
                todo += [(ARM_BY_NAME[n], 0, True) for n in self.top_two() or ()]
        return todo


def _eval_folder(suite: str) -> str:
    return "eval-cifar10-c" if suite == "c" else "eval-cifar10-c-bar"


def _recipe_epochs(recipe: str | Path) -> int:
    from timm_dynmix.train.config import load_recipe

    return int(load_recipe(recipe).get("epochs", 8))


def family_errors(per_corruption: dict[str, float]) -> dict[str, float]:
    """Mean error per CIFAR-10-C corruption family (noise, blur, weather, digital)."""
    from timm_dynmix.robustness.corruptions import CORRUPTION_GROUPS

    out = {}
    for family in FAMILIES:
        values = [per_corruption[c] for c in CORRUPTION_GROUPS[family] if c in per_corruption]
        if values:
            out[family] = statistics.mean(values)
    return out


def summarize_run(arm: Arm, seed: int, results: dict[str, Any], reports: dict[str, dict[str, Any]],
                  longer: bool = False) -> dict[str, Any]:
    """The per-arm result file: errors (percent) on each suite, calibration, time, and the resolved configuration."""
    c = reports["c"]
    cbar = reports.get("c-bar") or {}
    per_sev = c.get("summary", {}).get("mean_error_by_severity") or {}
    return {
        "arm": arm.name + (LONGER if longer else ""), "base_arm": arm.name, "label": arm.label, "group":
            "e" if longer else arm.group if seed == 0 else "d", "seed": seed,
        "aug": results.get("aug"), "jsd": results.get("jsd"), "num_mixes": results.get("num_mixes"),
        "model": results.get("model"), "epochs": results.get("epochs"), "completed": results.get("completed", True),
        "clean_error": c.get("clean_error"), "corruption_error": c.get("corruption_error"),
        "cbar_error": cbar.get("cbar_error", cbar.get("corruption_error")) if cbar else None,
        "errors_by_corruption": c.get("per_corruption"), "errors_by_family": family_errors(c.get("per_corruption")
                                                                                           or {}),
        "cbar_errors_by_corruption": cbar.get("per_corruption") if cbar else None,
        "errors_by_severity": per_sev,
        "extra_corruptions": {k: v.get("error") for k, v in (c.get("extra_corruptions") or {}).items()},
        "rms_calibration_error_clean": (c.get("clean") or {}).get("rms_calibration_error"),
        "rms_calibration_error_corrupted": c.get("rms_calibration_error"),
        "rms_calibration_error_cbar": cbar.get("rms_calibration_error") if cbar else None,
        "clean_error_full_test_set": _pct_err(results.get("metrics", {}).get("clean_top1")),
        "train_time_s": sum(h.get("epoch_time_s", 0.0) for h in results.get("history", [])),
        "train_images_per_s": results.get("train_samples_per_s"),
        "benchmark": c.get("dataset"), "benchmark_cbar": cbar.get("dataset") if cbar else None,
        "published": arm.published or None,
        "resolved_config": _displayed_paths(results.get("resolved")),
    }


def _displayed_paths(resolved: dict[str, Any] | None) -> dict[str, Any] | None:
    """The resolved configuration with its local paths as :func:`_display` shows them (relative or ``~/``): the
    result files are committed. Paths are bookkeeping fields, never compared."""
    if resolved is None:
        return None
    return {k: _display(v) if k in ("output_dir", "data_dir", "resume") and isinstance(v, str) else v
            for k, v in resolved.items()}


def _pct_err(top1: float | None) -> float | None:
    return None if top1 is None else round(100.0 - top1, 2)


# ---- tables --------------------------------------------------------------------------------------------------------
def load_results(results_dir: Path) -> dict[str, list[dict[str, Any]]]:
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(results_dir.glob("*_seed*.json")):
        r = json.loads(f.read_text())
        by_arm.setdefault(r["arm"], []).append(r)
    return by_arm


def _values(rs: list[dict[str, Any]], key: str) -> list[float]:
    return [r[key] for r in rs if r.get(key) is not None]


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def check_runs(by_arm: dict[str, list[dict[str, Any]]], names: list[str], allow_diff: list[str],
               extra: tuple[str, ...] = ()) -> list[str]:
    """Refuse (``IncomparableRunsError``) runs of ``names`` that did not train the same way; check that they were
    evaluated on the same benchmarks. Returns the lines that state the differences ``allow_diff`` accepted."""
    runs = {f"{r['arm']}_seed{r['seed']}": r for n in names for r in by_arm.get(n, [])}
    if not runs:
        return []
    shown = check_comparable({k: r.get("resolved_config") for k, r in runs.items()},
                             compared=COMPARED_FIELDS | SEED_FIELDS, allow_diff=[*allow_diff, *extra])
    for key in ("benchmark", "benchmark_cbar"):
        seen = {json.dumps(r.get(key), sort_keys=True) for r in runs.values() if r.get(key) is not None}
        if len(seen) > 1:
            from timm_dynmix.fairness import IncomparableRunsError

            raise IncomparableRunsError(f"these runs were evaluated on different {key}s: {sorted(seen)}")
    return format_allowed_differences({k: v for k, v in shown.items() if k not in extra})


def verdict(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> str:
    """``better``/``worse``/``tie`` of arm a against arm b: better only when the mean error is lower by more than
    twice the larger seed spread on *both* CIFAR-10-C and -C-bar (a single seed has no spread: a tie)."""
    calls = []
    for key in ("corruption_error", "cbar_error"):
        va, vb = _values(a, key), _values(b, key)
        if len(va) < 2 or len(vb) < 2:
            return "tie (fewer than two seeds)"
        diff = statistics.mean(va) - statistics.mean(vb)
        margin = 2 * max(statistics.stdev(va), statistics.stdev(vb))
        calls.append("better" if diff < -margin else "worse" if diff > margin else "tie")
    return calls[0] if calls[0] == calls[1] else "tie"


def _row(rs: list[dict[str, Any]], label: str) -> str:
    seeds = ",".join(str(r["seed"]) for r in rs)
    rms = f"{_ms(_values(rs, 'rms_calibration_error_clean'))} / {_ms(_values(rs, 'rms_calibration_error_corrupted'))}"
    minutes = statistics.mean(r["train_time_s"] for r in rs) / 60
    return (f"| {label} | {seeds} | {_ms(_values(rs, 'clean_error'))} | {_ms(_values(rs, 'corruption_error'))} | "
            f"{_ms(_values(rs, 'cbar_error'))} | {rms} | {minutes:.1f} |")


_HEAD = ("| arm | seeds | clean error (%) | CIFAR-10-C error (%) | CIFAR-10-C-bar error (%) | RMS calib. clean / "
         "corrupted (%) | train min |\n|---|---|---:|---:|---:|---:|---:|")


def summary_markdown(by_arm: dict[str, list[dict[str, Any]]], allow_diff: list[str] = ()) -> str:
    """The study's tables (mean ± sample std over seeds), each after the check of its runs' configurations."""
    lines: list[str] = []
    main = [a.name for a in ARMS if a.group in ("a", "b") and by_arm.get(a.name)]
    if main:
        notes = check_runs(by_arm, main, list(allow_diff))
        lines += ["Methods (same network, stem, data path and recipe; checked):", "", _HEAD]
        lines += [_row(by_arm[n], ARM_BY_NAME[n].label) for n in main]
        lines += notes
        published = [f"- {ARM_BY_NAME[n].label}: {ARM_BY_NAME[n].published}" for n in main if ARM_BY_NAME[n].published]
        if published:
            lines += ["", "Published figures, for context only (other networks, budgets and data):", "", *published]
        methods = [n for n in METHODS if by_arm.get(n)]
        pairs = [f"- {ARM_BY_NAME[x].label} against {ARM_BY_NAME[y].label}: {verdict(by_arm[x], by_arm[y])} "
                 f"(C {_diff(by_arm[x], by_arm[y], 'corruption_error')}, C-bar "
                 f"{_diff(by_arm[x], by_arm[y], 'cbar_error')})"
                 for i, x in enumerate(methods) for y in methods[i + 1:]]
        if pairs:
            lines += ["", "Differences of mean error (first minus second, points), and the call (better only when "
                      "lower by more than twice the seed spread on both benchmarks):", "", *pairs]
        lines += _family_table(by_arm, main)
    stem = [n for n in ("standard", "standard_whitened_stem") if by_arm.get(n)]
    if "standard_whitened_stem" in stem:
        seed0 = {n: [r for r in by_arm[n] if r["seed"] == 0] for n in stem}
        # a frozen stem has fewer trainable parameters: that difference is the stem's own
        notes = check_runs(seed0, stem, list(allow_diff), extra=("stem", "trainable_params"))
        lines += ["", "Stem choice (seed 0; the runs differ in the stem only, checked):", "", _HEAD,
                  *[_row(seed0[n], f"{ARM_BY_NAME[n].label} (`stem: "
                                   f"{seed0[n][0]['resolved_config']['stem']}`)") for n in stem if seed0[n]], *notes]
        lines += _family_table(seed0, stem)
    longer = [n for n in by_arm if n.endswith(LONGER)]
    if longer:
        notes = check_runs(by_arm, longer, list(allow_diff))
        lines += ["", "Twice the epochs (seed 0): does the ranking hold?", "", _HEAD,
                  *[_row(by_arm[n], ARM_BY_NAME[n[:-len(LONGER)]].label + ", 2x epochs") for n in longer], *notes]
    return "\n".join(lines) + "\n"


def _family_table(by_arm: dict[str, list[dict[str, Any]]], names: list[str]) -> list[str]:
    """Markdown lines: the CIFAR-10-C error of each arm of ``names`` per corruption family (seed mean)."""
    fam = [n for n in names if any(r.get("errors_by_family") for r in by_arm.get(n, []))]
    if not fam:
        return []
    lines = ["", "CIFAR-10-C error per corruption family (%, seed mean):", "",
             "| arm | " + " | ".join(FAMILIES) + " |", "|---|" + "---:|" * len(FAMILIES)]
    for n in fam:
        vals = [[r["errors_by_family"][f] for r in by_arm[n] if f in (r.get("errors_by_family") or {})]
                for f in FAMILIES]
        lines.append(f"| {ARM_BY_NAME[n].label} | " + " | ".join(
            f"{statistics.mean(v):.1f}" if v else "-" for v in vals) + " |")
    return lines


def _diff(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> str:
    va, vb = _values(a, key), _values(b, key)
    if not va or not vb:
        return "-"
    spread = [f"{statistics.stdev(v):.2f}" if len(v) > 1 else "n/a" for v in (va, vb)]
    return f"{statistics.mean(va) - statistics.mean(vb):+.2f}, seed std {spread[0]} / {spread[1]}"


# ---- push-ready cards ----------------------------------------------------------------------------------------------
def rank_methods(by_arm: dict[str, list[dict[str, Any]]], allow_diff: list[str] = ()) -> list[str]:
    """Group-a arms with results, best first: mean CIFAR-10-C error over their seeds, then mean -C-bar error.

    The runs are checked first (:func:`check_runs`): a ranking of runs that trained differently is refused."""
    names = [n for n in METHODS if by_arm.get(n)]
    check_runs(by_arm, names, list(allow_diff))

    def key(n: str) -> tuple[float, float]:
        cbar = _values(by_arm[n], "cbar_error")
        return statistics.mean(_values(by_arm[n], "corruption_error")), statistics.mean(cbar) if cbar else math.inf

    return sorted(names, key=key)


def card_name(result: dict[str, Any]) -> str:
    """The card folder (and suggested Hub repo) name, timm style: ``<model>.<arm>_cifar10``."""
    return f"{result.get('model') or 'model'}.{result['arm']}_cifar10"


def write_cards(study: Study, by_arm: dict[str, list[dict[str, Any]]], out: Path, top: int = 3,
                with_weights: bool = False, allow_diff: list[str] = ()) -> list[Path]:
    """For the best seed (lowest CIFAR-10-C error) of each of the ``top`` best group-a arms, write a push-ready folder
    ``out/<model>.<arm>_cifar10/``: the model card (made by the project's card code from the run's ``config.json``,
    ``results.json`` and its CIFAR-10-C and -C-bar reports: model-index with clean, C and C-bar results, the resolved
    configuration as ``training_config``), ``config.json``, and ``study_record.json`` (the study's result file: the
    exact commands, commits and figures). The weights are copied only with ``with_weights`` (they are not committed:
    this command regenerates them from the run folder, or the recorded training command retrains the run).

    Raises:
        FileNotFoundError: a chosen run's folder (weights, config or reports) is gone; the message gives the command
            that retrains it.
    """
    from timm_dynmix.hub.card import write_card

    written = []
    for name in rank_methods(by_arm, allow_diff)[:top]:
        best = min(by_arm[name], key=lambda r: (r["corruption_error"], r["seed"]))
        run = study.run_dir(name, best["seed"])
        reports = [run / _eval_folder(s) for s in ("c", "c-bar") if (run / _eval_folder(s) / "report.json").is_file()]
        needed = [run / "config.json", run / "results.json", *([run / "model.safetensors"] if with_weights else [])]
        missing = [str(p.name) for p in needed if not p.is_file()] + ([] if reports else ["eval reports"])
        if missing:
            raise FileNotFoundError(
                f"{_display(str(run))} lacks {', '.join(missing)}: retrain and evaluate it with "
                f"`python benchmarks/robustness_cifar10.py --arms {name} --seeds {best['seed']}` "
                f"(recorded training command: {(best.get('commands') or {}).get('train', 'not recorded')})")
        folder = out / card_name(best)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "config.json", folder / "config.json")
        results = json.loads((run / "results.json").read_text())
        write_card(folder, results=results, eval_reports=reports)
        record = {k: v for k, v in best.items() if k != "study_command"}
        record["weights"] = ("not committed: `python benchmarks/robustness_cifar10.py --cards --with-weights` copies "
                             "them from the run folder, or retrain with commands.train (same seed)")
        _write_json(folder / "study_record.json", record)
        if with_weights:
            tmp = folder / "model.safetensors.tmp"
            shutil.copyfile(run / "model.safetensors", tmp)
            os.replace(tmp, folder / "model.safetensors")
        written.append(folder)
    index = ["# Push-ready model cards from study v2", "",
             "Made by `python benchmarks/robustness_cifar10.py --cards` from the study's result files: for the best "
             "seed (lowest CIFAR-10-C error) of each of the best arms (mean CIFAR-10-C error over seeds). Each folder "
             "holds the model card, `config.json` and `study_record.json` (exact commands, commits, resolved "
             "configuration, figures). The weights are not committed: `--cards --with-weights` copies them in from "
             "the run folder (or retrain with the recorded command), then `timm-dynmix push hub_cards/<folder> "
             "<org>/<folder>`.", "",
             "| folder | arm | seed | clean error (%) | CIFAR-10-C error (%) | CIFAR-10-C-bar error (%) |",
             "|---|---|---:|---:|---:|---:|"]
    for folder in written:
        r = json.loads((folder / "study_record.json").read_text())
        cbar = "-" if r.get("cbar_error") is None else f"{r['cbar_error']:.2f}"
        index.append(f"| `{folder.name}` | {r['label']} | {r['seed']} | {r['clean_error']:.2f} | "
                     f"{r['corruption_error']:.2f} | {cbar} |")
    if written:
        (out / "README.md").write_text("\n".join(index) + "\n")
    return written


def c_vs_cbar_plot(by_arm: dict[str, list[dict[str, Any]]], path: Path) -> Path | None:
    """One figure a user reads in five seconds: CIFAR-10-C error against -C-bar error per arm, seed spread as bars."""
    arms = [n for n in by_arm if _values(by_arm[n], "corruption_error") and _values(by_arm[n], "cbar_error")]
    if len(arms) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for n in arms:
        c, cb = _values(by_arm[n], "corruption_error"), _values(by_arm[n], "cbar_error")
        ax.errorbar(statistics.mean(c), statistics.mean(cb), xerr=statistics.stdev(c) if len(c) > 1 else 0,
                    yerr=statistics.stdev(cb) if len(cb) > 1 else 0, fmt="o", capsize=3,
                    label=f"{ARM_BY_NAME.get(n, ARMS[0]).label if n in ARM_BY_NAME else n} ({len(c)} seeds)")
    ax.set_xlabel("CIFAR-10-C error (%)")
    ax.set_ylabel("CIFAR-10-C-bar error (%)")
    ax.set_title("Lower left is better (mean ± std over seeds)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(CIFAR10), help="the CIFAR-10 copy (default: ../shared/data/cifar10)")
    p.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR),
                   help="runs, logs and the -C sets (default: %(default)s)")
    p.add_argument("--results-dir", default=str(RESULTS), help="where the per-arm JSON files go")
    p.add_argument("--recipe", default=str(RECIPE), help="training recipe, identical for every arm")
    p.add_argument("--per-cell", type=int, default=2000, help="images per corruption x severity cell (class-balanced)")
    p.add_argument("--priority", default=",".join(GROUPS), help="groups to run, in order (default: %(default)s)")
    p.add_argument("--arms", default=None, help="comma-separated arm names instead of groups")
    p.add_argument("--seeds", default=None, help="comma-separated seeds for --arms (default: 0)")
    p.add_argument("--no-cbar", action="store_true", help="evaluate on CIFAR-10-C only")
    p.add_argument("--allow-diff", action="append", default=[], metavar="FIELD",
                   help="with --summary: accept runs whose resolved configurations differ in FIELD (stated under the "
                        "table); without it, runs that differ in anything but the augmentation/loss are refused")
    p.add_argument("--list", action="store_true", help="print the plan and what is done, run nothing")
    p.add_argument("--summary", action="store_true",
                   help="write summary.md and the C vs C-bar plot from the result files, run nothing")
    p.add_argument("--jobs", type=int, default=1,
                   help="arms trained at the same time (default: %(default)s; with 2, add `-- --num-threads 1`)")
    p.add_argument("--cards", action="store_true",
                   help="write push-ready model cards for the best seed of the top arms into --cards-dir, run nothing")
    p.add_argument("--cards-dir", default=str(CARDS), help="where --cards writes (default: hub_cards/)")
    p.add_argument("--top", type=int, default=3, help="with --cards: how many arms (default: %(default)s)")
    p.add_argument("--with-weights", action="store_true",
                   help="with --cards: also copy model.safetensors from the run folders (not committed)")
    p.add_argument("extra_train_args", nargs="*", help="after --: extra flags for every training run")
    args = p.parse_args(argv)
    args.argv = argv
    unknown = [n for n in (args.arms or "").split(",") if n and n not in ARM_BY_NAME]
    if unknown:
        p.error(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARM_BY_NAME)}")
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.top < 1:
        p.error(f"--top must be >= 1, got {args.top}")
    bad = set(args.priority.split(",")) - set(GROUPS)
    if bad:
        p.error(f"--priority takes groups {', '.join(GROUPS)}; got {', '.join(sorted(bad))}")
    study = Study(args)
    if args.cards:
        folders = write_cards(study, load_results(study.results), Path(args.cards_dir), args.top, args.with_weights,
                              args.allow_diff)
        for folder in folders:
            print(f"wrote {_display(str(folder))}")
        if not folders:
            print("no finished group-a results yet: nothing to write")
        return 0
    if args.summary:
        by_arm = load_results(study.results)
        text = summary_markdown(by_arm, args.allow_diff)  # raises IncomparableRunsError on unequal runs
        _write_json(study.results / "summary.json", {k: {"corruption_error": _values(v, "corruption_error"),
                                                         "cbar_error": _values(v, "cbar_error")}
                                                     for k, v in by_arm.items()})
        (study.results / "summary.md").write_text(text)
        print(text)
        figure = c_vs_cbar_plot(by_arm, study.results / "c_vs_cbar.png")
        if figure:
            print(f"wrote {_display(str(figure))}")
        return 0
    todo = study.plan()
    if args.list:
        for arm, seed, longer in todo:
            name = arm.name + (LONGER if longer else "")
            state = "done" if study.result_file(name, seed).is_file() else "todo"
            group = "e" if longer else arm.group if seed == 0 else "d"
            print(f"{state:5s} {group} {name}_seed{seed}: {' '.join(arm.train_args)}")
        return 0
    if not Path(args.data_dir).exists():
        p.error(f"--data-dir {args.data_dir} does not exist (the study reads the CIFAR-10 copy from there)")
    study.ensure_benchmarks()
    run_all(study, todo, args.jobs)
    if "e" in args.priority.split(",") and not args.arms:  # the top two are known only once group a is complete
        run_all(study, study.plan(), args.jobs)
    return 0


def run_all(study: Study, todo: list[tuple[Arm, int, bool]], jobs: int = 1) -> None:
    """Run the arms of ``todo`` (each skipped when done), ``jobs`` at a time in priority order. Each arm is its own
    training process (pass ``-- --num-threads 1`` with ``--jobs 2`` on a 2-core machine); a failed arm stops the
    study after the running ones finish, with its command and log."""
    if jobs <= 1:
        for arm, seed, longer in todo:
            study.run_arm(arm, seed, longer)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # threads only wait on the training subprocesses
        futures = [pool.submit(study.run_arm, arm, seed, longer) for arm, seed, longer in todo]
        for future in futures:
            future.result()  # re-raises the first failure (SystemExit with the command and the log's tail)


if __name__ == "__main__":
    sys.exit(main())
