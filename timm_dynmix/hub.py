"""Publish and download timm-dynmix checkpoints on the Hugging Face Hub.

* :func:`save_pretrained` writes a model folder in timm's Hub format: ``config.json`` (architecture, classes,
  label names, the true input size and normalization, our own tag/license/paper metadata), ``model.safetensors``
  (never a pickle) and the model card ``README.md``. ``timm.create_model("local-dir:FOLDER", pretrained=True)``
  and ``transformers.AutoModelForImageClassification.from_pretrained(FOLDER)`` both load it.
* :func:`push_to_hub` uploads such a folder in one commit; every failure is one :class:`HubError` and no local
  file is touched. The token comes from ``HF_TOKEN`` or the ``hf auth login`` store only.
* :func:`create_model` registers the timm-dynmix architectures, then defers to ``timm.create_model`` (so
  ``"hf-hub:org/name"`` works), turning Hub failures into one clear :class:`HubError`.

CLI: ``timm-dynmix push OUTPUT_DIR REPO_ID [--private] [--revision REV] [--create-pr]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from timm_dynmix.card import (
    CARD_NAME,
    PLOTS_DIR,
    REPO_ID_PLACEHOLDER,
    EvalReport,
    _as_reports,
    _aug_info,
    _dataset_info,
    _slug,
    validate_card,
    write_card,
)
from timm_dynmix.fileio import fsync_dir, fsync_tree, replace_dir

__all__ = [
    "HubError", "save_pretrained", "push_to_hub", "create_model", "hub_config", "check_repo_id",
    "register_architectures", "requires_timm_dynmix", "CONFIG_NAME", "WEIGHTS_NAME",
]

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


class HubError(RuntimeError):
    """A Hugging Face Hub operation failed (offline, unreachable, not found, gated, refused, HTTP error).

    The message says what failed and what to do; the original exception is chained as ``__cause__``.
    """


# ---- architectures ---------------------------------------------------------------------------------------------
def register_architectures() -> None:
    """Register the timm-dynmix architectures (e.g. ``wrn40_2``) in timm's model registry; idempotent."""
    # timm_dynmix.models (the paper's CIFAR architectures) registers them with timm's @register_model when it is
    # imported. Installs without that module still work with every timm-native architecture.
    if importlib.util.find_spec("timm_dynmix.models") is not None:
        importlib.import_module("timm_dynmix.models")


def requires_timm_dynmix(architecture: str) -> bool:
    """Whether ``architecture`` is registered by timm-dynmix (so loading it needs ``import timm_dynmix``)."""
    import timm

    register_architectures()
    if not timm.models.is_model(architecture):
        return False
    return timm.models.model_entrypoint(architecture).__module__.split(".")[0] == "timm_dynmix"


def _our_architectures() -> list[str]:
    import timm

    register_architectures()
    return [n for n in timm.list_models() if timm.models.model_entrypoint(n).__module__.split(".")[0] == "timm_dynmix"]


def create_model(model_name: str, pretrained: bool = False, **kwargs: Any):
    """``timm.create_model`` with the timm-dynmix architectures registered and clear Hub errors.

    Args:
        model_name: Any name ``timm.create_model`` takes: ``"wrn40_2"``, ``"hf-hub:org/name"`` (optionally
            ``@revision``), ``"local-dir:/path/to/folder"``.
        pretrained: Load the weights.
        **kwargs: Passed to ``timm.create_model``.

    Raises:
        HubError: the Hub cannot be reached (or ``HF_HUB_OFFLINE=1``) and the files are not cached, the repo or
            revision does not exist or is gated, or the Hub answered an HTTP error. Raised at once: offline mode and
            a refused connection are not retried.
        RuntimeError: the architecture is unknown to timm and timm-dynmix.
    """
    import timm

    if not isinstance(model_name, str) or not model_name:
        raise TypeError(f"model_name must be a non-empty string, got {model_name!r}")
    register_architectures()
    try:
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except RuntimeError as e:
        if not str(e).startswith("Unknown model"):
            raise
        arch = str(e).partition("(")[2].rstrip(")") or model_name
        ours = _our_architectures()
        raise RuntimeError(
            f"timm {timm.__version__} has no architecture {arch!r} (needed by {model_name!r}); the timm-dynmix "
            f"architectures are registered ({', '.join(ours) if ours else 'none in this install'}). Check the name, "
            "or upgrade timm if it is a newer timm architecture.") from e
    except Exception as e:
        reason = _hub_reason(e)
        if reason is None:
            raise
        raise HubError(_scrub(f"cannot load {model_name!r} from the Hugging Face Hub ({_endpoint()}): {reason}. "
                              "Load a saved folder with 'local-dir:PATH' to work without the Hub.")) from e


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
    if model.num_classes <= 0:
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

    aug = _aug_info(results) if results else None
    ds = _dataset_info(results) if results else None
    if tag is None and (aug or ds):
        family = "dynmix" if aug and aug["is_dynmix"] else (_slug(aug["string"].split("-")[0]) if aug else "")
        tag = "_".join(t for t in (family, _slug(ds["name"]) if ds else "") if t) or None
    tag = tag if tag is not None else own_tag
    if tag is not None:
        if not isinstance(tag, str) or not tag or any(c in tag for c in "./@: "):
            raise ValueError(f"tag must be a non-empty string without '.', '/', '@', ':' or spaces, got {tag!r}")
        cfg["tag"] = tag
    if not isinstance(license, str) or not license:
        raise ValueError(f"license must be a license id such as 'apache-2.0', got {license!r}")
    cfg["license"] = license
    from timm_dynmix import __version__

    cfg["description"] = (f"{arch} trained" + (f" with {aug['canonical']}" if aug else "")
                          + (f" on {ds['name']}" if ds else "") + f", saved by timm-dynmix {__version__}")
    if aug and aug["is_dynmix"]:
        cfg["paper_name"] = DYNMIX_PAPER
    elif aug and aug["string"].startswith("augmix"):
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


def save_pretrained(model: Any, folder: str | os.PathLike, *, label_names: Sequence[str] | None = None,
                    results: Mapping[str, Any] | None = None, card: bool = True,
                    eval_reports: Iterable[EvalReport | str | os.PathLike] | None = None,
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
            :mod:`timm_dynmix.card` for the schema).
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
    reports = _as_reports(eval_reports)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        _save_weights(model, staging / WEIGHTS_NAME)
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if card:
            write_card(staging, config, results=results, eval_reports=reports, repo_id=repo_id, license=license)
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


# ---- push ----------------------------------------------------------------------------------------------------------
def check_repo_id(repo_id: str) -> str:
    """Validate a Hub repo id (``name`` or ``org/name``) and return it; check ``--push-to-hub`` before training."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str):
        raise TypeError(f"repo_id must be a string such as 'my-org/my-model', got {type(repo_id).__name__}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ValueError(f"invalid Hub repo id {repo_id!r}: {str(e).splitlines()[0]}") from None
    return repo_id


def _endpoint(endpoint: str | None = None) -> str:
    from huggingface_hub import constants

    return (endpoint or constants.ENDPOINT).rstrip("/")


def _scrub(message: str) -> str:
    """Remove the current Hub token from a message (defence in depth: messages are built from server replies)."""
    try:
        from huggingface_hub import get_token

        token = get_token()
    except Exception:  # a broken token store must not hide the real error
        token = None
    return message.replace(token, "***") if token and len(token) >= 8 else message


def _transport_errors() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx"):
        try:
            types.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(types)


def _hub_reason(e: BaseException) -> str | None:
    """A one-line reason for a Hub failure, or None when ``e`` is not one."""
    from huggingface_hub import constants
    from huggingface_hub import errors as hf

    if isinstance(e, hf.OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE=1); unset it to reach the Hub"
    if isinstance(e, hf.GatedRepoError):
        return "the repository is gated: request access on its Hub page and log in with an account that has it"
    if isinstance(e, hf.RepositoryNotFoundError):
        return ("repository not found, or not visible with your token (check the repo id, and HF_TOKEN or "
                "`hf auth login` for private repos)")
    if isinstance(e, hf.RevisionNotFoundError):
        return "the requested revision (branch, tag or commit) does not exist in the repository"
    if isinstance(e, hf.RemoteEntryNotFoundError):
        return "a required file is missing from the repository (is it a timm model repo with config.json?)"
    if isinstance(e, hf.LocalEntryNotFoundError):
        if constants.HF_HUB_OFFLINE:
            return (f"offline mode is on (HF_HUB_OFFLINE=1) and the files are not in the local cache "
                    f"({constants.HF_HUB_CACHE}); download them once with network access")
        return "the Hub could not be reached and the files are not in the local cache"
    if isinstance(e, hf.HfHubHTTPError):
        status = e.response.status_code if e.response is not None else None
        detail = (getattr(e, "server_message", None) or "").strip().splitlines()
        detail = f": {detail[0][:200]}" if detail else ""
        if status == 401:
            return f"authentication failed (HTTP 401{detail}); check HF_TOKEN or log in with `hf auth login`"
        if status == 403:
            return f"permission denied (HTTP 403{detail}); the token cannot write to this repo or namespace"
        if status is not None and status >= 500:
            return f"the Hub answered with a server error (HTTP {status}{detail}); try again later"
        return f"the Hub answered HTTP {status}{detail}"
    if isinstance(e, _transport_errors()):
        return f"cannot connect to the Hub ({type(e).__name__}: {e})"
    if isinstance(e, ValueError) and str(e).startswith("Invalid metadata in README.md"):
        return f"the Hub rejected the model card metadata ({' '.join(str(e).split())})"
    return None


def _push_files(folder: Path) -> list[tuple[str, Path]]:
    files = [(CONFIG_NAME, folder / CONFIG_NAME), (WEIGHTS_NAME, folder / WEIGHTS_NAME)]
    if (folder / CARD_NAME).is_file():
        files.append((CARD_NAME, folder / CARD_NAME))
    plots = folder / PLOTS_DIR
    if plots.is_dir():
        files += [(f"{PLOTS_DIR}/{p.name}", p) for p in sorted(plots.glob("*.png")) if p.is_file()]
    return files


def push_to_hub(folder: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
                create_pr: bool = False, commit_message: str | None = None, endpoint: str | None = None):
    """Upload a saved model folder to the Hub in one commit.

    Creates the repo when needed (``exist_ok``), creates the branch ``revision`` when it does not exist yet (unless
    ``create_pr``), then commits ``config.json``, ``model.safetensors``, ``README.md`` and ``plots/*.png`` (other
    files of the folder, such as ``results.json`` or checkpoints, stay local). The card's placeholder repo id is
    replaced by ``repo_id`` in the uploaded copy. The token is read from ``HF_TOKEN`` or the ``hf auth login``
    store; it is never written anywhere.

    Args:
        folder: A folder written by :func:`save_pretrained`.
        repo_id: ``org/name`` (or ``name`` in your own namespace).
        private: Create the repo as private (an existing repo keeps its visibility).
        revision: Branch to commit to (default ``main``); with ``create_pr``, the branch the PR targets.
        create_pr: Open a pull request instead of committing to the branch.
        commit_message: Commit title (default: names the architecture and timm-dynmix).
        endpoint: Hub URL (default ``HF_ENDPOINT`` or https://huggingface.co).

    Returns:
        huggingface_hub's ``CommitInfo`` (a ``str``: the commit URL; ``.pr_url`` for a pull request).

    Raises:
        ValueError, TypeError: an invalid ``repo_id`` or argument (checked before anything else).
        HubError: anything else (folder incomplete, card invalid, offline, no token, unreachable, not found,
            refused, HTTP error), as one message; no local file is changed.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token

    from timm_dynmix import __version__

    check_repo_id(repo_id)
    if revision is not None and (not isinstance(revision, str) or not revision):
        raise ValueError(f"revision must be a branch name, got {revision!r}")
    folder = Path(folder)
    target = f"{_endpoint(endpoint)}/{repo_id}"
    fail = f"cannot push {folder} to {target}"
    kept = f"Nothing was changed in {folder}."
    if not folder.is_dir():
        raise HubError(f"{fail}: {folder} is not a folder. {kept}")
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise HubError(f"{fail}: {', '.join(missing)} missing; save the model first (timm_dynmix.hub.save_pretrained "
                       f"or the training script). {kept}")
    try:
        arch = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))["architecture"]
    except (ValueError, KeyError, TypeError) as e:
        raise HubError(f"{fail}: {folder / CONFIG_NAME} is not a timm config.json ({e}). {kept}") from e
    operations = []
    for path_in_repo, path in _push_files(folder):
        content: Path | bytes = path
        if path_in_repo == CARD_NAME:
            text = path.read_text(encoding="utf-8").replace(REPO_ID_PLACEHOLDER, repo_id)
            try:
                validate_card(text)
            except ValueError as e:
                raise HubError(f"{fail}: the model card {path} is invalid ({e}); rewrite it with `timm-dynmix card "
                               f"{folder}`. {kept}") from e
            content = text.encode("utf-8")
        operations.append(CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=content))
    if constants.HF_HUB_OFFLINE:
        raise HubError(f"{fail}: offline mode is on (HF_HUB_OFFLINE=1); unset it to push. {kept}")
    if get_token() is None:
        raise HubError(f"{fail}: no Hugging Face token; set HF_TOKEN or log in with `hf auth login`. {kept}")

    api = HfApi(endpoint=endpoint, library_name="timm-dynmix", library_version=__version__)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision and not create_pr and not revision.startswith("refs/") and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        return api.create_commit(
            repo_id, operations, repo_type="model", revision=revision, create_pr=create_pr,
            commit_message=commit_message or f"Upload {arch} trained with timm-dynmix {__version__}")
    except Exception as e:
        reason = _hub_reason(e)
        if reason is None:
            raise
        raise HubError(_scrub(f"{fail}: {reason}. {kept}")) from e


# ---- CLI: timm-dynmix push -----------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Upload a saved model folder (config.json, model.safetensors, README.md, plots/) to the "
                          "Hugging Face Hub in one commit. The token comes from HF_TOKEN or `hf auth login`.")
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="folder written by training / save_pretrained")
    parser.add_argument("repo_id", metavar="REPO_ID", help="Hub repo id, e.g. my-org/wrn40_2.dynmix_cifar10")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", default=None, help="branch to commit to (created when missing)")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--commit-message", default=None, help="commit title")


def run(args: argparse.Namespace) -> int:
    info = push_to_hub(args.output_dir, args.repo_id, private=args.private, revision=args.revision,
                       create_pr=args.create_pr, commit_message=args.commit_message)
    print(f"pushed {args.output_dir} to {_endpoint()}/{args.repo_id}: {info}")
    if getattr(info, "pr_url", None):
        print(f"pull request: {info.pr_url}")
    return 0
