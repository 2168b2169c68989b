"""The package version, and the versions of the libraries a run depends on (recorded in reports and summaries).

Importing this module imports nothing but the standard library, so that ``timm-dynmix --version`` and the model
card code can read the version without loading torch.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Sequence

__all__ = ["__version__", "RUN_LIBRARIES", "versions"]

__version__ = "0.2.0"

# the libraries whose versions a training run or an evaluation report records
RUN_LIBRARIES = ("torch", "torchvision", "timm", "accelerate", "datasets", "numpy")


def versions(libraries: Sequence[str] = RUN_LIBRARIES) -> dict[str, str]:
    """The versions of timm-dynmix, Python and ``libraries`` (distribution names), without importing them.

    Args:
        libraries: Distribution names, e.g. ``("torch", "timm")``.

    Returns:
        ``{"timm_dynmix": ..., "python": ..., <library>: <version> or "not installed", ...}`` in that order.

    Raises:
        TypeError: if ``libraries`` is a string or holds a non-string.
    """
    if isinstance(libraries, str) or not all(isinstance(name, str) for name in libraries):
        raise TypeError(f"libraries must be a sequence of distribution names, got {libraries!r}")
    found = {"timm_dynmix": __version__, "python": platform.python_version()}
    for name in libraries:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
