"""Saving checkpoints in timm's Hub format: :func:`save_pretrained` and the ``config.json`` it writes.

:func:`save_pretrained` writes a model folder: ``config.json`` (architecture, classes, label names, the true input
size and normalization, our own tag/license/paper metadata), ``model.safetensors`` (never a pickle) and the model
card ``README.md``. ``timm.create_model("local-dir:FOLDER", pretrained=True)`` and
``transformers.AutoModelForImageClassification.from_pretrained(FOLDER)`` both load it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from timm_dynmix.fileio import apply_umask, fsync_dir, fsync_tree, replace_dir
from timm_dynmix.hub.card import CARD_NAME, PLOTS_DIR, EvalReport, as_eval_reports, write_card
from timm_dynmix.hub.summary import RunSummary
from timm_dynmix.version import __version__

__all__ = ["save_pretrained", "hub_config", "CONFIG_NAME", "WEIGHTS_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

DYNMIX_PAPER = "A Dynamic Mixup Approach Towards Improved Robustness of Classifiers"
AUGMIX_PAPER = ("AugMix: A Simple Data Processing Method to Improve Robustness and Uncertainty", "arXiv:1912.02781")

# pretrained_cfg keys that describe how the saved weights expect their input (set by training)
_DATA_KEYS = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")
# test-time keys: kept only when they differ from the architecture's registered default (i.e. training set them)
_TEST_KEYS = ("test_input_size", "test_crop_pct")
# structural keys that hold for any weights of the architecture
_ARCH_KEYS = ("fixed_input_size", "min_input_size", "first_conv", "classifier")


# ---- config.json -----------------------------------------------------------------------------------------------
def _unwrap(model: Any) -> Any:
    import torch

    while True:
        if isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


def _check_model(model: Any) -> None:
    import torch

    if not isinstance(model, torch.nn.Module) or not isinstance(getattr(model, "pretrained_cfg", None), Mapping) \
            or not isinstance(getattr(model, "num_classes", None), int):
        raise TypeError("expected a timm model (from timm.create_model or timm_dynmix.create_model, with "
                        f"pretrained_cfg and num_classes), got {type(model).__name__}")
    if cast(Any, model).num_classes <= 0:
        raise ValueError(f"the model has no classifier (num_classes={model.num_classes}); save a classifier")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def hub_config(model: Any, *, label_names: Sequence[str] | None = None, results: Mapping[str, Any] | None = None,
               tag: str | None = None, license: str = "apache-2.0", data_config: Mapping[str, Any] | None = None,
               model_args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` of ``model`` in timm's Hub format, free of timm's defaults for other weights.

    ``pretrained_cfg`` keeps what describes these weights' input (``input_size``, ``mean``, ``std``, ``crop_pct``,
    ``interpolation``, ``crop_mode``, as training set them on ``model.pretrained_cfg``; ``data_config`` overrides
    them) and drops the source of the architecture's default weights (``hf_hub_id``, ``url``, ``tag``, ``license``,
    papers, test-time sizes that training did not set). ``model_args`` holds the reconstruction arguments without
    ``num_classes`` (transformers passes ``num_classes`` itself and fails on a duplicate).

    Args:
        model: A timm model.
        label_names: One name per class, in class-index order.
        results: The training record; used for the tag (``<aug>_<dataset>``) and description.
        tag: The pretrained tag (timm's ``architecture.tag``); derived from ``results`` when not given.
        license: License id of the weights.
        data_config: Input settings that override ``model.pretrained_cfg`` (keys as above, plus ``test_input_size``
            and ``test_crop_pct``).
        model_args: Reconstruction arguments added to (or replacing) those timm recorded.
    """
    import timm
    from timm.models import PretrainedCfg

    model = _unwrap(model)
    _check_model(model)
    results = results or {}
    src = dict(model.pretrained_cfg)
    arch = src.get("architecture")
    if not arch or not timm.models.is_model(arch):
        raise ValueError(f"model.pretrained_cfg['architecture'] is {arch!r}, not a timm architecture; create the "
                         "model with timm.create_model / timm_dynmix.create_model")
    data_config = dict(data_config or {})
    unknown = sorted(set(data_config) - set(_DATA_KEYS) - set(_TEST_KEYS))
    if unknown:
        raise ValueError(f"unknown data_config keys {unknown}; allowed: {', '.join(_DATA_KEYS + _TEST_KEYS)}")

    default = _registered_cfg(arch, src.get("tag"))
    # a tag timm does not know is ours, from an earlier save (e.g. a model loaded with local-dir:)
    own_tag = src.get("tag") if src.get("tag") and not default else None
    default = default or _registered_cfg(arch, None)
    cfg: dict[str, Any] = {"architecture": arch}
    for key in _DATA_KEYS + _ARCH_KEYS:
        if src.get(key) is not None:
            cfg[key] = _jsonable(src[key])
    for key in _TEST_KEYS:
        if src.get(key) is not None and (not default or _jsonable(src[key]) != _jsonable(default.get(key))):
            cfg[key] = _jsonable(src[key])
    cfg.update({k: _jsonable(v) for k, v in data_config.items()})
    chans = cfg.get("input_size", (3,))[0]
    for key in ("mean", "std"):
        if key in cfg and len(cfg[key]) != chans:
            raise ValueError(f"pretrained_cfg {key} {cfg[key]} has {len(cfg[key])} values for {chans} input channels; "
                             "set the model's normalization (data_config) before saving")
    cfg["num_classes"] = model.num_classes
    cfg["custom_load"] = False
    cfg["pool_size"] = None  # the architecture's default is for its default input size, not necessarily ours

    run = RunSummary.from_results(results)
    aug = run.aug
    if tag is None:
        tag = run.tag
    tag = tag if tag is not None else own_tag
    if tag is not None:
        if not isinstance(tag, str) or not tag or any(c in tag for c in "./@: "):
            raise ValueError(f"tag must be a non-empty string without '.', '/', '@', ':' or spaces, got {tag!r}")
        cfg["tag"] = tag
    if not isinstance(license, str) or not license:
        raise ValueError(f"license must be a license id such as 'apache-2.0', got {license!r}")
    cfg["license"] = license
    cfg["description"] = run.description(arch, __version__)
    if aug and aug["is_dynmix"]:
        cfg["paper_name"] = DYNMIX_PAPER
    elif aug and aug["spec"] is not None and aug["spec"].name == "augmix":
        cfg["paper_name"], cfg["paper_ids"] = AUGMIX_PAPER
    allowed = {f.name for f in dataclasses.fields(PretrainedCfg)}
    cfg = {k: v for k, v in cfg.items() if k in allowed}

    if label_names is None and src.get("label_names") is not None and len(src["label_names"]) == model.num_classes:
        label_names = src["label_names"]
    if label_names is not None:
        if isinstance(label_names, str) or not isinstance(label_names, Sequence) \
                or not all(isinstance(n, str) for n in label_names):
            raise TypeError(f"label_names must be a list of strings, got {label_names!r}")
        if len(label_names) != model.num_classes:
            raise ValueError(f"label_names has {len(label_names)} names for a model with {model.num_classes} classes")

    args = _model_args(model)
    args.update(model_args or {})
    args.pop("num_classes", None)
    for key, value in args.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValueError(f"model argument {key}={value!r} cannot be written to config.json; pass a JSON "
                             "replacement with model_args=") from None

    config: dict[str, Any] = {"architecture": arch, "num_classes": model.num_classes}
    if isinstance(getattr(model, "num_features", None), int):
        config["num_features"] = model.num_features
    if label_names is not None:
        config["label_names"] = list(label_names)
    if args:
        config["model_args"] = {k: _jsonable(v) for k, v in args.items()}
    cfg.pop("architecture")
    config["pretrained_cfg"] = cfg
    return config


def _registered_cfg(arch: str, tag: str | None) -> dict[str, Any]:
    """timm's registered pretrained config of ``arch.tag`` (or of ``arch``'s default tag), {} when there is none."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(f"{arch}.{tag}" if tag else arch)
    except RuntimeError:  # a tag timm does not know
        return {}
    return cfg.to_dict() if cfg is not None else {}


def _model_args(model: Any) -> dict[str, Any]:
    try:  # timm >= 1.0.2x records the factory arguments and knows the current in_chans / global_pool
        from timm.models._input import get_model_args
    except ImportError:
        return dict(getattr(model, "_model_args", {}) or {})
    return dict(get_model_args(model))


# ---- save ----------------------------------------------------------------------------------------------------------
def _save_weights(model: Any, path: Path) -> None:
    import safetensors.torch
    import torch

    tensors, storages = {}, set()
    for key, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict entry {key!r} is a {type(value).__name__}, not a tensor; safetensors "
                            "stores tensors only")
        t = value.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in storages and t.numel():
            t = t.clone()  # safetensors refuses tensors that share memory (tied weights)
        storages.add(t.untyped_storage().data_ptr())
        tensors[key] = t
    safetensors.torch.save_file(tensors, str(path), metadata={"format": "pt"})


def save_pretrained(model: Any, folder: str | os.PathLike[str], *, label_names: Sequence[str] | None = None,
                    results: Mapping[str, Any] | None = None, card: bool = True,
                    eval_reports: Iterable[EvalReport | str | os.PathLike[str]] | None = None,
                    repo_id: str | None = None, tag: str | None = None, license: str = "apache-2.0",
                    data_config: Mapping[str, Any] | None = None,
                    model_args: Mapping[str, Any] | None = None) -> Path:
    """Save ``model`` in timm's Hub format, with its model card, atomically.

    Writes ``config.json`` (see :func:`hub_config`), ``model.safetensors`` and, with ``card=True``, ``README.md``
    plus the evaluation reports' plots under ``plots/``. Everything is first written and fsynced in a temporary
    folder beside ``folder``. A new ``folder`` is then created by one rename. An existing ``folder`` (such as a
    training output folder holding ``results.json`` and checkpoints) keeps its other files: each file is renamed
    over its old version only once the complete new set is on disk (weights and plots first, then
    ``config.json``, then ``README.md``).

    Args:
        model: A timm model (DDP / DataParallel / torch.compile wrappers are unwrapped). Its ``pretrained_cfg`` must
            describe the input the weights expect (training sets ``input_size``, ``mean``, ``std``, ...).
        folder: The model folder.
        label_names: One name per class, in class-index order.
        results: The training record (``results.json`` contents) for the card, tag and description.
        card: Write the model card (``False`` leaves an existing ``README.md`` and ``plots/`` as they are).
        eval_reports: Evaluation reports for the card (``EvalReport`` or folders holding ``report.json``; see
            :mod:`timm_dynmix.hub.card` for the schema).
        repo_id: Hub repo id for the card's usage code (``push_to_hub`` fills it in otherwise).
        tag: Pretrained tag (default ``<aug>_<dataset>``, e.g. ``dynmix_cifar10``).
        license: License id of the weights (default ``apache-2.0``).
        data_config: Input settings overriding ``model.pretrained_cfg`` (see :func:`hub_config`).
        model_args: Extra reconstruction arguments for ``config.json``.

    Returns:
        The model folder.
    """
    model = _unwrap(model)
    folder = Path(folder).resolve()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder")
    config = hub_config(model, label_names=label_names, results=results, tag=tag, license=license,
                        data_config=data_config, model_args=model_args)
    reports = as_eval_reports(eval_reports)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        _save_weights(model, staging / WEIGHTS_NAME)
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if card:
            write_card(staging, config, results=results, eval_reports=reports, repo_id=repo_id, license=license)
        apply_umask(staging)  # the user's umask, not mkdtemp's 0700 and safetensors' 0600
        fsync_tree(staging)
        if not folder.exists():
            os.rename(staging, folder)
        else:
            os.replace(staging / WEIGHTS_NAME, folder / WEIGHTS_NAME)
            if card:
                replace_dir(staging / PLOTS_DIR, folder / PLOTS_DIR)
            os.replace(staging / CONFIG_NAME, folder / CONFIG_NAME)
            if card:
                os.replace(staging / CARD_NAME, folder / CARD_NAME)
            fsync_dir(folder)
        fsync_dir(folder.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
