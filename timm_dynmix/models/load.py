"""Making models and reading weights: :func:`create_model`, :func:`check_weights_file`, and which architectures need
``import timm_dynmix`` to load.

Training, evaluation and the Hub all make models from a name (``"wrn40_2"``, ``"hf-hub:org/name"``,
``"local-dir:PATH"``), so this lives in the models layer, below them; ``timm_dynmix.hub`` re-exports the names
(formerly ``timm_dynmix.hub.load``, an alias of this module now).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from timm_dynmix.errors import HubError, WeightsError, endpoint_url, failure_reason, scrub_token

__all__ = ["create_model", "register_architectures", "requires_timm_dynmix", "check_weights_file"]

WEIGHTS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


# ---- architectures ---------------------------------------------------------------------------------------------
def register_architectures() -> None:
    """Register the timm-dynmix architectures (e.g. ``wrn40_2``) in timm's model registry; idempotent."""
    # timm_dynmix.models.cifar (the paper's CIFAR architectures, the fast net) registers them with timm's
    # @register_model when it is imported. Installs without it still work with every timm-native architecture.
    if importlib.util.find_spec("timm_dynmix.models.cifar") is not None:
        importlib.import_module("timm_dynmix.models.cifar")


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


# ---- weights files ----------------------------------------------------------------------------------------------
def check_weights_file(path: str | os.PathLike[str]) -> None:
    """Check that ``path`` is a complete weights file, without loading it.

    A ``.safetensors`` file must hold its 8-byte header length, a JSON header and exactly the bytes its header
    describes; a file ``torch.save`` wrote (a zip archive) must have its central directory (the end of the file).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        WeightsError: the file is empty, truncated or corrupt; the message names the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    size = path.stat().st_size
    again = "copy or download it again"
    if size == 0:
        raise WeightsError(f"weights file {path} is empty (0 bytes); {again}")
    with open(path, "rb") as f:
        head = f.read(8)
        if path.suffix == ".safetensors":
            if len(head) < 8:
                raise WeightsError(f"weights file {path} is truncated: {size} bytes, shorter than a safetensors "
                                   f"header; {again}")
            n = int.from_bytes(head, "little")
            if n > size - 8:
                raise WeightsError(f"weights file {path} is truncated or not a safetensors file: its header says "
                                   f"{n} bytes of metadata, the file has {size} bytes in all; {again}")
            try:
                header = json.loads(f.read(n))
                end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError):
                raise WeightsError(f"weights file {path} is corrupt: its safetensors header is not valid; "
                                   f"{again}") from None
            expected = 8 + n + end
            if size != expected:
                what = "truncated" if size < expected else "corrupt"
                raise WeightsError(f"weights file {path} is {what}: {size} bytes, its header describes {expected}; "
                                   f"{again}")
        elif head.startswith(b"PK"):  # torch.save's zip format
            try:
                with zipfile.ZipFile(path) as z:
                    z.infolist()
            except (zipfile.BadZipFile, OSError) as e:
                raise WeightsError(f"weights file {path} is truncated or corrupt: not a complete torch.save archive "
                                   f"({e}); {again}") from None


def _broken_weights(model_name: str) -> WeightsError | None:
    """The error of the first broken weights file ``timm.create_model(model_name, pretrained=True)`` reads, if any."""
    files: list[Path] = []
    if model_name.startswith("local-dir:"):
        folder = Path(model_name.removeprefix("local-dir:"))
        if folder.is_dir():
            files = sorted((p for p in folder.iterdir() if p.suffix in WEIGHTS_SUFFIXES),
                           key=lambda p: (WEIGHTS_SUFFIXES.index(p.suffix), p.name))
    elif model_name.startswith("hf-hub:"):
        from huggingface_hub import try_to_load_from_cache

        repo_id, _, revision = model_name.removeprefix("hf-hub:").partition("@")
        for name in ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors"):
            found = try_to_load_from_cache(repo_id, name, revision=revision or None)
            if isinstance(found, str):
                files.append(Path(found))
    for file in files:
        try:
            check_weights_file(file)
        except WeightsError as e:
            return e
    return None


def create_model(model_name: str, pretrained: bool = False, **kwargs: Any) -> Any:  # a timm model (nn.Module)
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
        WeightsError: the weights file (``pretrained=True``) is truncated or corrupt; the message names it.
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
        broken = _broken_weights(model_name) if pretrained else None
        if broken is not None:
            raise broken from None
        reason = failure_reason(e)
        if reason is None:
            raise
        message = (f"cannot load {model_name!r} from the Hugging Face Hub ({endpoint_url()}): {reason}. "
                   "Load a saved folder with 'local-dir:PATH' to work without the Hub.")
        raise HubError(scrub_token(message)) from e
