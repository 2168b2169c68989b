"""Loading checkpoints: :func:`create_model`, and which architectures need ``import timm_dynmix`` to load."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from timm_dynmix.hub.errors import HubError, endpoint_url, failure_reason, scrub_token

__all__ = ["create_model", "register_architectures", "requires_timm_dynmix"]


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
        reason = failure_reason(e)
        if reason is None:
            raise
        message = (f"cannot load {model_name!r} from the Hugging Face Hub ({endpoint_url()}): {reason}. "
                   "Load a saved folder with 'local-dir:PATH' to work without the Hub.")
        raise HubError(scrub_token(message)) from e
