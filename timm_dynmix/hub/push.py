"""Publishing: :func:`push_to_hub` uploads a saved model folder in one commit; every failure is one
:class:`~timm_dynmix.errors.HubError` and no local file is touched. The token comes from ``HF_TOKEN`` or the
``hf auth login`` store only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from timm_dynmix.errors import HubError, endpoint_url, failure_reason, scrub_token
from timm_dynmix.hub.card import CARD_NAME, PLOTS_DIR, REPO_ID_PLACEHOLDER, validate_card
from timm_dynmix.hub.save import CONFIG_NAME, WEIGHTS_NAME
from timm_dynmix.version import __version__

__all__ = ["push_to_hub", "check_repo_id", "HubError"]


def check_repo_id(repo_id: str) -> str:
    """Validate a Hub repo id (``name`` or ``org/name``) and return it; check ``--push-to-hub`` before training."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils._validators import validate_repo_id

    if not isinstance(repo_id, str):
        raise TypeError(f"repo_id must be a string such as 'my-org/my-model', got {type(repo_id).__name__}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ValueError(f"invalid Hub repo id {repo_id!r}: {str(e).splitlines()[0]}") from None
    return repo_id


def incomplete_run(folder: str | os.PathLike[str]) -> str | None:
    """How far the run saved in ``folder`` got when it stopped before its planned end (from ``results.json``, or the
    card's ``stopped-early`` tag), else None."""
    from timm_dynmix.hub.summary import stopped_early

    folder = Path(folder)
    try:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        results = None
    if isinstance(results, dict) and stopped_early(results):
        return stopped_early(results)
    card = folder / CARD_NAME
    if card.is_file() and "\n- stopped-early\n" in card.read_text(encoding="utf-8").partition("\n---")[2][:4000]:
        return "stopped early (its model card says so)"
    return None


def _push_files(folder: Path) -> list[tuple[str, Path]]:
    files = [(CONFIG_NAME, folder / CONFIG_NAME), (WEIGHTS_NAME, folder / WEIGHTS_NAME)]
    if (folder / CARD_NAME).is_file():
        files.append((CARD_NAME, folder / CARD_NAME))
    plots = folder / PLOTS_DIR
    if plots.is_dir():
        files += [(f"{PLOTS_DIR}/{p.name}", p) for p in sorted(plots.glob("*.png")) if p.is_file()]
    return files


def push_to_hub(folder: str | os.PathLike[str], repo_id: str, *, private: bool = False, revision: str | None = None,
                create_pr: bool = False, commit_message: str | None = None, endpoint: str | None = None,
                allow_incomplete: bool = False) -> Any:
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
        allow_incomplete: Push a run that stopped before its planned end (``--max-steps``; its ``results.json``
            says ``completed: false``); refused otherwise.

    Returns:
        huggingface_hub's ``CommitInfo`` (a ``str``: the commit URL; ``.pr_url`` for a pull request).

    Raises:
        ValueError, TypeError: an invalid ``repo_id`` or argument (checked before anything else).
        HubError: anything else (folder incomplete, run stopped early, card invalid, offline, no token, unreachable,
            not found, refused, HTTP error), as one message; no local file is changed.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token

    check_repo_id(repo_id)
    if revision is not None and (not isinstance(revision, str) or not revision):
        raise ValueError(f"revision must be a branch name, got {revision!r}")
    folder = Path(folder)
    target = f"{endpoint_url(endpoint)}/{repo_id}"
    fail = f"cannot push {folder} to {target}"
    kept = f"Nothing was changed in {folder}."
    if not folder.is_dir():
        raise HubError(f"{fail}: {folder} is not a folder. {kept}")
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise HubError(f"{fail}: {', '.join(missing)} missing; save the model first (timm_dynmix.hub.save_pretrained "
                       f"or the training script). {kept}")
    partial = None if allow_incomplete else incomplete_run(folder)
    if partial:
        raise HubError(f"{fail}: the training run {partial}, so it is not a trained model; train to the end, or "
                       f"pass --allow-incomplete (allow_incomplete=True) to push it anyway. {kept}")
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
        reason = failure_reason(e)
        if reason is None:
            raise
        raise HubError(scrub_token(f"{fail}: {reason}. {kept}")) from e
