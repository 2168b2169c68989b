"""Hugging Face Hub failures as one :class:`HubError` with a reason and a remedy, for loading and pushing; a broken
weights file as :class:`WeightsError`.

Model loading (:mod:`timm_dynmix.models.load`) and the Hub (:mod:`timm_dynmix.hub`) both raise them, so they live in
the core, below both (formerly ``timm_dynmix.hub.errors``, an alias of this module now). Imports nothing heavy.
"""

from __future__ import annotations

import importlib

__all__ = ["HubError", "WeightsError", "failure_reason", "endpoint_url", "scrub_token"]


class HubError(RuntimeError):
    """A Hugging Face Hub operation failed (offline, unreachable, not found, gated, refused, HTTP error).

    The message says what failed and what to do; the original exception is chained as ``__cause__``.
    """


class WeightsError(ValueError):
    """A weights file is truncated, corrupt or not a weights file; the message names the file and what is wrong."""


def endpoint_url(endpoint: str | None = None) -> str:
    """The Hub URL: ``endpoint``, else ``HF_ENDPOINT`` or https://huggingface.co, without a trailing slash."""
    from huggingface_hub import constants

    return (endpoint or constants.ENDPOINT).rstrip("/")


def scrub_token(message: str) -> str:
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


def failure_reason(e: BaseException) -> str | None:
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
