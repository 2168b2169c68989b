"""Model cards for timm-dynmix checkpoints, and the evaluation report format they read.

A card is ``README.md`` in a saved model folder: YAML front matter written by huggingface_hub's ``ModelCardData``
(``library_name: timm``, tags, license, datasets and a ``model-index`` with the evaluation results) and a body
rendered from the Jinja template ``templates/modelcard.md.j2`` of this package (the DynMix config string and
weight mode, the training recipe and data provenance from ``results.json``, robustness tables and plots from
evaluation reports, usage code and citations). Every section uses what the run recorded and is left out when it
recorded nothing.

Evaluation report (``report.json`` in a report folder; every metric is a percentage, 0-100)::

    {
      "benchmark": "cifar10-c",                 # required: benchmark name
      "dataset": {"name": "CIFAR-10-C",         # optional: display name (default: from the benchmark),
                  "type": "cifar10-c",          #   Hub dataset id or type (default: the benchmark),
                  "split": "test"},             #   split (optional)
      "clean_error": 5.1,                       # top-1 error on the uncorrupted images
      "corruption_error": 11.2,                 # mean top-1 error over the corruptions (and severities)
      "mce": 68.4,                              # AlexNet-normalized mean corruption error (ImageNet-C style)
      "rms_calibration_error": 3.2,             # RMS calibration error on the corrupted images
      "cbar_error": 16.0,                       # -C-bar benchmarks: mean top-1 error over the 10 C-bar corruptions
      "per_corruption": {"gaussian_noise": 14.3, ...},   # top-1 error per corruption, mean over severities
      "plots": ["per_corruption.png", ...]      # PNG files in the report folder, shown in the card
    }

At least one of the five metrics must be given; any other key is ignored, so reports may carry more.
A CIFAR-10-C-bar / ImageNet-C-bar report (``cbar_error``) becomes its own model-index result, named by its dataset
(``CIFAR-10-C-bar``), beside the -C one.
``clean_error``, ``corruption_error``, ``cbar_error``, ``rms_calibration_error`` and the ``per_corruption`` values
lie in [0, 100]; ``mce`` is >= 0 (it exceeds 100 for models worse than AlexNet).

CLI: ``timm-dynmix card OUTPUT_DIR [--eval-report DIR ...] [--repo-id ORG/NAME]`` (re)writes the card of a saved
model folder from its ``config.json`` and ``results.json``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from timm_dynmix.fileio import fsync_dir, fsync_tree, read_json, replace_dir
from timm_dynmix.hub.summary import (
    AugSummary,
    as_mapping,
    augmentation_summary,
    dataset_summary,
    format_value,
    slug,
    stopped_early,
)
from timm_dynmix.models.load import requires_timm_dynmix
from timm_dynmix.robustness.readers import BENCHMARK_NAMES
from timm_dynmix.version import __version__

if TYPE_CHECKING:
    from huggingface_hub import ModelCard, ModelCardData

__all__ = [
    "EvalReport", "load_eval_report", "as_eval_reports", "card_data", "render_card", "write_card", "validate_card",
    "templates_dir",
    "CARD_NAME", "CARD_TAGS", "EVAL_REPORT_NAME", "PLOTS_DIR", "REPO_ID_PLACEHOLDER", "TEMPLATE_NAME",
]

CARD_NAME = "README.md"
EVAL_REPORT_NAME = "report.json"
PLOTS_DIR = "plots"
TEMPLATE_NAME = "modelcard.md.j2"
CARD_TAGS = ("image-classification", "timm", "dynmix", "robustness")
# push_to_hub replaces this with the real repo id in the uploaded card
REPO_ID_PLACEHOLDER = "your-org/your-model"

_METRICS = ("clean_error", "corruption_error", "cbar_error", "mce", "rms_calibration_error")
_METRIC_INFO = {  # key -> (model-index metric type, display name)
    "clean_error": ("error", "Clean top-1 error (%)"),
    "corruption_error": ("corruption_error", "Corruption error (%)"),
    "cbar_error": ("cbar_error", "C-bar error (%)"),
    "mce": ("mCE", "mCE (%)"),
    "rms_calibration_error": ("rms_calibration_error", "RMS calibration error (%)"),
}



# ---- evaluation reports --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalReport:
    """One evaluation report (see the module docstring for the ``report.json`` schema); metrics in percent."""

    benchmark: str
    dataset_name: str
    dataset_type: str
    dataset_split: str | None = None
    clean_error: float | None = None
    corruption_error: float | None = None
    cbar_error: float | None = None
    mce: float | None = None
    rms_calibration_error: float | None = None
    per_corruption: tuple[tuple[str, float], ...] = ()
    plots: tuple[Path, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], folder: str | os.PathLike[str] | None = None,
                  source: str = "report") -> EvalReport:
        """Validate a parsed ``report.json``; ``folder`` holds its plots, ``source`` names it in error messages."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{source}: an evaluation report must be a JSON object, got {type(data).__name__}")
        bench = data.get("benchmark")
        if not isinstance(bench, str) or not bench.strip():
            raise ValueError(f"{source}: 'benchmark' must be a non-empty string (e.g. 'cifar10-c'), got {bench!r}")
        ds = data.get("dataset") or {}
        if not isinstance(ds, Mapping):
            raise TypeError(f"{source}: 'dataset' must be an object with name/type/split, got {ds!r}")
        metrics: dict[str, float] = {}
        for key in _METRICS:
            if data.get(key) is not None:
                metrics[key] = _percent(data[key], f"{source}: '{key}'", upper=None if key == "mce" else 100.0)
        if not metrics:
            raise ValueError(f"{source}: an evaluation report needs at least one of {', '.join(_METRICS)}")
        per = data.get("per_corruption") or {}
        if not isinstance(per, Mapping):
            raise TypeError(f"{source}: 'per_corruption' must map corruption names to errors, got {per!r}")
        per_corruption = tuple((str(k), _percent(v, f"{source}: per_corruption[{k!r}]")) for k, v in per.items())
        plots = data.get("plots") or []
        if isinstance(plots, str) or not isinstance(plots, Sequence):
            raise TypeError(f"{source}: 'plots' must be a list of PNG file names, got {plots!r}")
        plot_paths = []
        for name in plots:
            if not isinstance(name, str) or not name.lower().endswith(".png") or Path(name).is_absolute() \
                    or ".." in Path(name).parts:
                raise ValueError(f"{source}: plots must be relative .png file names inside the report folder, "
                                 f"got {name!r}")
            if folder is None:
                raise ValueError(f"{source}: plot {name!r} given but the report has no folder to find it in")
            path = Path(folder) / name
            if not path.is_file():
                raise FileNotFoundError(f"{source}: plot {name!r} is listed but {path} does not exist")
            plot_paths.append(path)
        return cls(
            benchmark=bench.strip(),
            dataset_name=str(ds.get("name") or BENCHMARK_NAMES.get(bench.strip().lower(), bench.strip())),
            dataset_type=str(ds.get("type") or bench.strip()),
            dataset_split=str(ds["split"]) if ds.get("split") else None,
            per_corruption=per_corruption,
            plots=tuple(plot_paths),
            **metrics,
        )


def load_eval_report(path: str | os.PathLike[str]) -> EvalReport:
    """Read an evaluation report: a folder holding ``report.json`` (and its plots), or the ``report.json`` itself."""
    path = Path(path)
    file = path / EVAL_REPORT_NAME if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no evaluation report at {path} (expected a folder with {EVAL_REPORT_NAME})")
    data = read_json(file, "evaluation report")
    return EvalReport.from_dict(data, folder=file.parent, source=str(file))


def _percent(value: Any, what: str, upper: float | None = 100.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{what} must be a finite number (a percentage), got {value!r}")
    if value < 0 or (upper is not None and value > upper):
        allowed = f"[0, {upper:g}]" if upper is not None else ">= 0"
        raise ValueError(f"{what} must be a percentage in {allowed}, got {value!r}")
    return float(value)


def as_eval_reports(reports: Iterable[EvalReport | str | os.PathLike[str]] | None) -> list[EvalReport]:
    """``EvalReport`` objects from reports and report folders (None -> ``[]``).

    Raises:
        ValueError: for two reports of the same benchmark, or an invalid report file.
    """
    if reports is None:
        return []
    if isinstance(reports, (str, os.PathLike, EvalReport)):
        reports = [reports]
    out = [r if isinstance(r, EvalReport) else load_eval_report(r) for r in reports]
    names = [r.benchmark for r in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"two evaluation reports for the same benchmark: {', '.join(dup)}")
    return out


# ---- card data -----------------------------------------------------------------------------------------------------
def _fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _duration(seconds: Any) -> str | None:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return None
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {s:02d} s" if m else f"{s} s")


class _JsdInfo(TypedDict):
    """The JSD consistency loss of a run, as the card shows it."""

    weight: str  # the loss weight as the card shows it, or "λ" when the run recorded none
    num_splits: int  # clean view + mixed views


def _jsd_info(results: Mapping[str, Any], aug: AugSummary | None) -> _JsdInfo | None:
    if not results.get("jsd"):
        return None
    num_mixes = results.get("num_mixes")
    if not isinstance(num_mixes, int) and aug and aug["spec"] is not None and aug["spec"].has_views:
        num_mixes = aug["spec"].views
    if not isinstance(num_mixes, int) or isinstance(num_mixes, bool):
        return None
    weight = results.get("jsd_weight")
    return {"weight": format_value(weight) if weight is not None else "λ", "num_splits": num_mixes + 1}


_RECIPE = (("model", "Architecture"), ("epochs", "Epochs"), ("batch_size", "Batch size"),
           ("optimizer", "Optimizer"), ("lr", "Learning rate"), ("weight_decay", "Weight decay"),
           ("scheduler", "LR schedule"), ("mixed_precision", "Mixed precision"), ("world_size", "Processes"),
           ("seed", "Seed"))


def _recipe(results: Mapping[str, Any], aug: AugSummary | None, jsd: _JsdInfo | None) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if aug:
        rows.append(("Augmentation", f"`{aug['canonical']}`"))
    if "jsd" in results:
        rows.append(("JSD consistency loss", f"on, weight {jsd['weight']}, {jsd['num_splits']} views" if jsd
                     else ("on" if results.get("jsd") else "off")))
    for key, label in _RECIPE:
        if results.get(key) is not None:
            value = results[key]
            rows.append((label, f"`{value}`" if key == "model" else format_value(value)))
    _mark_epochs_done(rows, results)
    elapsed = _duration(results.get("elapsed_s"))
    if elapsed:
        rows.append(("Training time", elapsed))
    return rows


def _mark_epochs_done(rows: list[tuple[str, str]], results: Mapping[str, Any]) -> None:
    """A run that stopped early shows its epochs as planned and done, not as if it ran them all."""
    if results.get("completed") is False and results.get("epochs_completed") is not None:
        rows[:] = [(label, f"{value} planned, {format_value(results['epochs_completed'])} done (stopped early)")
                   if label == "Epochs" else (label, value) for label, value in rows]


_METRIC_LABELS = {"clean_top1": "Clean top-1 accuracy (%)", "clean_top5": "Clean top-5 accuracy (%)",
                  "train_loss": "Final training loss", "clean_loss": "Clean test loss",
                  "lr": "Final learning rate", "samples_per_s": "Training images/s (last epoch)",
                  "epoch_time_s": "Last epoch time (s)", "eval_samples": "Test images"}


def _metrics(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    metrics = as_mapping(results.get("metrics"), "results['metrics']")
    return [(_METRIC_LABELS.get(k, k), format_value(v)) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def _plot_name(report: EvalReport, plot: Path) -> str:
    return f"{PLOTS_DIR}/{slug(report.benchmark) or 'report'}_{plot.name}"


def card_data(config: Mapping[str, Any], results: Mapping[str, Any] | None = None,
              eval_reports: Iterable[EvalReport] = (), license: str | None = None) -> ModelCardData:
    """The card's front matter as a ``huggingface_hub.ModelCardData`` (with ``model-index`` eval results).

    The model-index holds the clean top-1 accuracy from ``results["metrics"]["clean_top1"]`` (percent) and, per
    evaluation report, its clean error, corruption error (or C-bar error), mCE and RMS calibration error.
    ``training_config`` holds the run's resolved configuration (``results["resolved"]``: every option after the
    automatic choices), so that a comparison of published models can check that they trained the same way.
    """
    from huggingface_hub import EvalResult, ModelCardData

    results = as_mapping(results, "results")
    ds = dataset_summary(results)
    aug = augmentation_summary(results)
    tags = list(CARD_TAGS)
    if aug and not aug["is_dynmix"]:
        name = results.get("aug_name") or (aug["spec"].name if aug["spec"] else aug["string"].split("-")[0])
        family = re.sub(r"[^a-z0-9-]+", "", str(name).lower())
        if family and family not in tags:
            tags.append(family)
    evals: list[EvalResult] = []
    task_type, task_name = "image-classification", "Image Classification"
    top1 = as_mapping(results.get("metrics"), "results['metrics']").get("clean_top1")
    if stopped_early(results):  # a partial run's accuracy is not a result of its recipe: no model-index entry
        tags.append("stopped-early")
        top1 = None
    if ds and isinstance(top1, (int, float)) and not isinstance(top1, bool) and math.isfinite(top1):
        evals.append(EvalResult(task_type=task_type, task_name=task_name,
                                dataset_type=ds["hub_id"] or slug(ds["name"]) or "dataset", dataset_name=ds["name"],
                                dataset_split=ds["split"], metric_type="accuracy", metric_name="Top-1 accuracy (%)",
                                metric_value=round(float(top1), 4)))
    for rep in eval_reports:
        for key in _METRICS:
            value = getattr(rep, key)
            if value is not None:
                mtype, mname = _METRIC_INFO[key]
                evals.append(EvalResult(task_type=task_type, task_name=task_name, dataset_type=rep.dataset_type,
                                        dataset_name=rep.dataset_name, dataset_split=rep.dataset_split,
                                        metric_type=mtype, metric_name=mname, metric_value=round(value, 4)))
    pcfg = as_mapping(config.get("pretrained_cfg"), "config['pretrained_cfg']")
    resolved = results.get("resolved")
    extra: dict[str, Any] = {"training_config": _public_config(resolved)} if resolved else {}
    return ModelCardData(
        library_name="timm",
        license=license or pcfg.get("license") or "apache-2.0",
        tags=tags,
        pipeline_tag="image-classification",
        datasets=[ds["hub_id"]] if ds and ds["hub_id"] else None,
        model_name=_model_name(config),
        eval_results=evals or None,
        **extra,
    )


# local paths and account names: not part of how a model was trained, and not for a public card
_PRIVATE_FIELDS = ("output_dir", "data_dir", "resume", "push_to_hub", "report_to")


def _public_config(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved training configuration for the card, without local paths and account names."""
    return {k: v for k, v in as_mapping(resolved, "results['resolved']").items() if k not in _PRIVATE_FIELDS}


def _model_name(config: Mapping[str, Any]) -> str:
    tag = as_mapping(config.get("pretrained_cfg"), "config['pretrained_cfg']").get("tag")
    return f"{config['architecture']}.{tag}" if tag else str(config["architecture"])


def _context(config: Mapping[str, Any], results: Mapping[str, Any], reports: list[EvalReport],
             repo_id: str | None, data: ModelCardData) -> dict[str, Any]:
    pcfg = as_mapping(config.get("pretrained_cfg"), "config['pretrained_cfg']")
    arch = str(config["architecture"])
    aug = augmentation_summary(results)
    jsd = _jsd_info(results, aug)
    versions = as_mapping(results.get("versions"), "results['versions']")
    size = pcfg.get("input_size")
    report_ctx: list[dict[str, Any]] = []
    summary: list[dict[str, str]] = []
    for rep in reports:
        rows = [(_METRIC_INFO[k][1], _fmt_pct(getattr(rep, k))) for k in _METRICS if getattr(rep, k) is not None]
        title = rep.dataset_name if rep.dataset_name == rep.benchmark else f"{rep.dataset_name} (`{rep.benchmark}`)"
        report_ctx.append({
            "title": title, "dataset_name": rep.dataset_name, "rows": rows,
            "per_corruption": [(name, _fmt_pct(err)) for name, err in rep.per_corruption],
            "plots": [(f"{rep.dataset_name}: {p.stem.replace('_', ' ')}", _plot_name(rep, p)) for p in rep.plots],
        })
        summary.append({"benchmark": title, **{k: _fmt_pct(getattr(rep, k)) for k in _METRICS}})
    return {
        "card_data": data.to_yaml(),
        "model_name": _model_name(config),
        "architecture": arch,
        "requires_import": requires_timm_dynmix(arch),
        "num_classes": config.get("num_classes", pcfg.get("num_classes")),
        "input_size": "x".join(str(s) for s in size) if size else "unknown",
        "mean": format_value(pcfg.get("mean", "unknown")),
        "std": format_value(pcfg.get("std", "unknown")),
        "interpolation": pcfg.get("interpolation", "bicubic"),
        "crop_pct": format_value(pcfg.get("crop_pct", 0.875)),
        "label_names": list(config["label_names"]) if config.get("label_names") else None,
        "license": data.license,
        "aug": aug,
        "jsd": jsd,
        "recipe": _recipe(results, aug, jsd),
        "dataset": dataset_summary(results),
        "metrics": _metrics(results),
        "stopped_early": stopped_early(results),
        "reports": report_ctx,
        "summary_rows": summary,
        "versions": [f"{k} {v}" for k, v in versions.items()],
        "repo_id": repo_id or REPO_ID_PLACEHOLDER,
        "timm_dynmix_version": __version__,
    }


# ---- rendering -----------------------------------------------------------------------------------------------------
def templates_dir() -> Path:
    """The folder of the card templates, ``templates/`` inside this package (shipped in the wheel)."""
    folder = Path(__file__).resolve().parent / "templates"
    if not (folder / TEMPLATE_NAME).is_file():
        raise FileNotFoundError(f"model card template {TEMPLATE_NAME} not found in {folder}; the installation is "
                                f"incomplete (reinstall timm-dynmix)")
    return folder


def render_card(config: Mapping[str, Any], *, results: Mapping[str, Any] | None = None,
                eval_reports: Iterable[EvalReport | str | os.PathLike[str]] | None = None, repo_id: str | None = None,
                license: str | None = None, template: str | os.PathLike[str] | None = None) -> ModelCard:
    """Render the model card (a ``huggingface_hub.ModelCard``) of a saved model.

    Args:
        config: The model's ``config.json`` as a dict (timm's Hub format, as written by ``save_pretrained``).
        results: The training record (``results.json``); missing keys leave their card sections out.
        eval_reports: Evaluation reports (``EvalReport``, or folders holding ``report.json``).
        repo_id: The Hub repo id used in the usage code; a placeholder that ``push_to_hub`` fills in otherwise.
        license: License id for the front matter (default: the config's, else apache-2.0).
        template: A Jinja template file to use instead of ``timm_dynmix/hub/templates/modelcard.md.j2``.
    """
    import jinja2
    from huggingface_hub import ModelCard

    config = as_mapping(config, "config")
    if not config.get("architecture"):
        raise ValueError("config has no 'architecture': pass the config.json written by save_pretrained")
    results = as_mapping(results, "results")
    reports = as_eval_reports(eval_reports)
    template = Path(template) if template is not None else templates_dir() / TEMPLATE_NAME
    if not template.is_file():
        raise FileNotFoundError(f"model card template {template} does not exist")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template.parent)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    data = card_data(config, results, reports, license=license)
    text = env.get_template(template.name).render(**_context(config, results, reports, repo_id, data))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return ModelCard(text)


def validate_card(card: ModelCard | str | os.PathLike[str]) -> ModelCard:
    """Parse a card back (a ``ModelCard``, its text as a ``str``, or a README.md ``Path``) and check its metadata.

    Checks that the front matter parses with ``ModelCard.load``, declares ``library_name: timm``, a license and our
    tags, and that its ``model-index`` converts back to eval results, each with a finite numeric value.

    Returns:
        The parsed ``ModelCard``.

    Raises:
        ValueError: naming the first problem found.
    """
    from huggingface_hub import ModelCard

    if isinstance(card, os.PathLike):
        text = Path(card).read_text(encoding="utf-8")
    elif isinstance(card, (ModelCard, str)):
        text = str(card)
    else:
        raise TypeError(f"validate_card takes a ModelCard, its text or a README.md path, got {type(card).__name__}")
    import yaml

    try:
        parsed = ModelCard(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ValueError(f"the model card metadata does not parse: {' '.join(str(e).split())}") from None
    # ModelCard parses its front matter into a ModelCardData (its card_data_class); RepoCard declares ``data`` as
    # the base CardData, which has none of the model card fields read below
    data = cast("ModelCardData", parsed.data)
    if data.library_name != "timm":
        raise ValueError(f"the model card must declare library_name 'timm', got {data.library_name!r}")
    if not data.license:
        raise ValueError("the model card declares no license")
    missing = [t for t in CARD_TAGS if t not in (data.tags or [])]
    if missing:
        raise ValueError(f"the model card lacks the tags {', '.join(missing)}")
    for r in data.eval_results or []:
        if isinstance(r.metric_value, bool) or not isinstance(r.metric_value, (int, float)) \
                or not math.isfinite(r.metric_value):
            raise ValueError(f"model-index metric {r.metric_type!r} on {r.dataset_name!r} has a non-numeric value "
                             f"{r.metric_value!r}")
    return parsed


def write_card(folder: str | os.PathLike[str], config: Mapping[str, Any] | None = None, *,
               results: Mapping[str, Any] | None = None,
               eval_reports: Iterable[EvalReport | str | os.PathLike[str]] | None = None, repo_id: str | None = None,
               license: str | None = None, template: str | os.PathLike[str] | None = None) -> Path:
    """Write ``README.md`` (and the reports' plots under ``plots/``) into a saved model folder.

    ``config`` defaults to the folder's ``config.json``. The card is validated, then written to a temporary file
    and renamed into place; ``plots/`` is replaced as a whole (removed when no report has plots).

    Returns:
        The path of the card.
    """
    folder = Path(folder)
    if config is None:
        cfg_file = folder / "config.json"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"no config.json in {folder}: save the model there first "
                                    "(timm_dynmix.hub.save_pretrained or the training script)")
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    reports = as_eval_reports(eval_reports)
    card = render_card(config, results=results, eval_reports=reports, repo_id=repo_id, license=license,
                       template=template)
    validate_card(card)
    folder.mkdir(parents=True, exist_ok=True)
    plots = [(p, _plot_name(rep, p)) for rep in reports for p in rep.plots]
    staging = Path(tempfile.mkdtemp(prefix=".card-", dir=folder))
    try:
        if plots:
            (staging / PLOTS_DIR).mkdir()
            for src, rel in plots:
                shutil.copyfile(src, staging / rel)
        (staging / CARD_NAME).write_text(str(card), encoding="utf-8")
        fsync_tree(staging)
        replace_dir(staging / PLOTS_DIR, folder / PLOTS_DIR)
        os.replace(staging / CARD_NAME, folder / CARD_NAME)
        fsync_dir(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / CARD_NAME
