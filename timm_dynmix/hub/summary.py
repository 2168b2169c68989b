"""What a training run recorded, read once for ``config.json`` and the model card: :class:`RunSummary`.

``results.json`` (written by training) names the augmentation, the dataset and the recipe. The card and the Hub
config both need its augmentation (canonical DynMix string, weight mode, settings table) and its dataset (display
name, Hub id, publishable source); :meth:`RunSummary.from_results` reads them, and :attr:`RunSummary.tag` is the
pretrained tag ``<augmentation>_<dataset>`` used in ``config.json``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from timm_dynmix.augment.spec import AugSpec, create_aug_spec

__all__ = ["RunSummary", "AugSummary", "DatasetSummary", "augmentation_summary", "recorded_spec", "dataset_summary",
           "stopped_early", "slug", "format_value", "as_mapping", "HUB_ID_RE", "WEIGHT_TEXT"]

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_TEXT = {
    "pair": "`m1 ~ Beta(alpha, alpha)`, `m2 = 1 - m1` (AugMix's Dirichlet convention); the mix stays a convex "
            "combination, `X = X2 + (1 - (1 - m1)^2)(X1 - X2)`.",
    "indep": "`m1` and `m2` drawn independently from `Beta(alpha, alpha)`; the weights sum to `m1 + m2`, and the "
             "mix is clipped to [0, 1].",
    "linear": "pair weights without the residual term, `X = m1*X1 + m2*X2` (the paper's linear-only ablation).",
}


class AugSummary(TypedDict):
    """The augmentation of a run: the string as recorded, its parsed spec (None when it does not parse) and, for
    DynMix, its canonical form and settings."""

    string: str
    spec: AugSpec | None
    is_dynmix: bool
    canonical: str
    weights: str | None
    weights_text: str | None
    rows: list[tuple[str, str, Any]]  # (config key, setting, value) for the card's table


class DatasetSummary(TypedDict):
    """The dataset of a run, as far as it may be published (never a local path)."""

    name: str
    hub_id: str | None
    source: str | None
    provenance: Any
    split: str | None


def as_mapping(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` as a mapping (None -> ``{}``).

    Raises:
        TypeError: if ``value`` is neither None nor a mapping; the message names ``what``.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict (as in results.json), got {type(value).__name__}")
    return value


def slug(text: str) -> str:
    """Lower-case letters and digits of ``text`` only (``"CIFAR-10"`` -> ``"cifar10"``)."""
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def format_value(value: Any) -> str:
    """A setting as the card shows it: yes/no, floats to 6 significant digits, lists comma-separated."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def dataset_summary(results: Mapping[str, Any]) -> DatasetSummary | None:
    """The dataset ``results["dataset"]`` names (a name or a dict), or None when it names none."""
    ds = results.get("dataset")
    if ds is None:
        return None
    if isinstance(ds, str):
        ds = {"name": ds}
    ds = as_mapping(ds, "results['dataset']")
    repo = ds.get("repo") or ds.get("hub_id")
    path = ds.get("path")
    name = ds.get("name") or repo or (Path(str(path)).name if path else None)
    if not name:
        return None
    hub_id = str(repo) if repo and HUB_ID_RE.match(str(repo)) else None
    if hub_id:
        source = f"[{hub_id}](https://huggingface.co/datasets/{hub_id})"
    elif repo or path:
        # never publish a local path: the folder name is enough to identify the copy
        source = f"local copy `{Path(str(repo or path)).name}`"
    else:
        source = None
    split = ds.get("eval_split") or ds.get("val_split") or ds.get("split")
    return {"name": str(name), "hub_id": hub_id, "source": source, "provenance": ds.get("provenance"),
            "split": str(split) if split else None}


@functools.lru_cache(maxsize=64)
def recorded_spec(aug: str) -> AugSpec | None:
    """The :class:`~timm_dynmix.augment.spec.AugSpec` of an augmentation string a run recorded (``results["aug"]``),
    or None when it does not parse (an older or hand-edited record: shown as given).

    This is where the hub layer turns the recorded string into a spec: parsed once per string (the card, the Hub
    config and the summary all read it here).
    """
    try:
        return create_aug_spec(aug)
    except (TypeError, ValueError):
        return None


def augmentation_summary(results: Mapping[str, Any]) -> AugSummary | None:
    """The augmentation ``results["aug"]`` names, or None; parsed once (:func:`recorded_spec`), DynMix strings into
    their settings."""
    aug = results.get("aug")
    if aug is None:
        return None
    aug = str(aug)
    spec = recorded_spec(aug)
    info: AugSummary = {"string": aug, "spec": spec, "is_dynmix": False, "canonical": aug, "weights": None,
                        "weights_text": None, "rows": []}
    if spec is None or spec.family != "dynmix":
        return info  # an unparseable record: show the string as given, without the table
    cfg = spec.params
    info["is_dynmix"], info["canonical"] = True, cfg.to_string()
    info["weights"], info["weights_text"] = cfg.weights, WEIGHT_TEXT[cfg.weights]
    ops = cfg.op_set_name or ", ".join(cfg.ops)
    info["rows"] = [
        ("m", "magnitude (severity; levels drawn in [0.1, m])", format_value(cfg.magnitude)),
        ("d", "max chain depth", cfg.depth),
        *([("p", "probability of a depth-2 chain", format_value(cfg.depth2_prob))] if cfg.depth == 2 else []),
        ("a", "alpha of Beta(alpha, alpha)", format_value(cfg.alpha)),
        ("w", "weight mode", cfg.weights),
        ("b", "skip blend with the clean image", "on" if cfg.blend else "off"),
        ("n", "mixed views per image", cfg.num_mixes),
        ("o", "ops", f"`{ops}`" if cfg.op_set_name else ops),
    ]
    return info


def stopped_early(results: Mapping[str, Any]) -> str | None:
    """None for a run that did all it planned (or that recorded no ``completed``), else how far it got:
    ``"stopped early after 0.0025 of 8 epochs (2 of 800 optimizer steps; --max-steps 2)"``."""
    if results.get("completed") is not False:
        return None
    done, planned = results.get("epochs_completed"), results.get("epochs")
    steps, steps_planned = results.get("steps_completed", results.get("steps")), results.get("steps_planned")
    text = "stopped early"
    if done is not None:
        text += f" after {format_value(done)}" + (f" of {format_value(planned)}" if planned is not None else "") \
            + " epochs"
    details: list[str] = []
    if steps is not None:
        details.append(f"{steps}" + (f" of {steps_planned}" if steps_planned is not None else "") + " optimizer steps")
    reason = results.get("stopped_early_reason")
    if reason:
        details.append(reason)
    return text + (f" ({'; '.join(details)})" if details else "")


@dataclass(frozen=True)
class RunSummary:
    """The augmentation and dataset of a training run, from its ``results.json`` record.

    Attributes:
        aug: The augmentation, or None when the run recorded none.
        dataset: The dataset, or None when the run recorded none.
        stopped_early: How far a run that stopped before its planned end got (see :func:`stopped_early`), else None.
    """

    aug: AugSummary | None = None
    dataset: DatasetSummary | None = None
    stopped_early: str | None = None

    @classmethod
    def from_results(cls, results: Mapping[str, Any] | None) -> RunSummary:
        """Read ``results`` (the training record; None for none).

        Raises:
            TypeError: if ``results`` or its ``dataset`` entry is not a dict.
        """
        results = as_mapping(results, "results")
        return cls(aug=augmentation_summary(results), dataset=dataset_summary(results),
                   stopped_early=stopped_early(results))

    @property
    def tag(self) -> str | None:
        """The pretrained tag ``<augmentation family>_<dataset>`` (``dynmix_cifar10``), or None without either."""
        aug, ds = self.aug, self.dataset
        family = "" if not aug else slug(aug["spec"].name if aug["spec"] else aug["string"].split("-")[0])
        return "_".join(t for t in (family, slug(ds["name"]) if ds else "") if t) or None

    def description(self, architecture: str, version: str) -> str:
        """One line for ``config.json``: what was trained with what on which data, by which timm-dynmix."""
        return (f"{architecture} trained" + (f" with {self.aug['canonical']}" if self.aug else "")
                + (f" on {self.dataset['name']}" if self.dataset else "")
                + (f", {self.stopped_early}" if self.stopped_early else "") + f", saved by timm-dynmix {version}")
