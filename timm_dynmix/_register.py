"""Keep the promise of ``import timm, timm_dynmix``: our architectures (wrn40_2, ...) are in timm's registry.

``import timm_dynmix`` must stay cheap (the CLI's ``--help`` must not load torch), so the architectures are
registered when timm is there: at once if timm is already imported, else right after timm finishes importing
(a one-shot import hook), in either import order.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = ["install"]

MODELS = "timm_dynmix.models.cifar"  # the module whose @register_model functions timm must see


def _register() -> None:
    try:
        importlib.import_module(MODELS)
    except Exception as e:  # never break `import timm` for a problem of ours
        warnings.warn(f"timm_dynmix could not register its architectures in timm ({type(e).__name__}: {e}); "
                      f"import {MODELS} to see the error", RuntimeWarning, stacklevel=2)


class _ThenRegister(importlib.abc.Loader):
    """timm's own loader, followed by the registration of our architectures."""

    def __init__(self, loader: Any):
        self._loader = loader

    def create_module(self, spec: Any) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        module.__loader__ = self._loader  # timm sees its own loader (resources etc.)
        self._loader.exec_module(module)
        sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _AfterTimm)]  # done
        _register()


class _AfterTimm(importlib.abc.MetaPathFinder):
    """Finds ``timm`` through the other finders and wraps its loader; removed once timm is imported.

    A lookup that imports nothing (``importlib.util.find_spec("timm")``, as transformers does to see whether timm is
    installed) leaves the finder in place for the import that follows.
    """

    def __init__(self) -> None:
        self._looking = False

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "timm" or self._looking or "timm" in sys.modules:
            return None
        self._looking = True  # the lookup below asks the finders again, this one included
        try:
            spec = importlib.util.find_spec("timm")
        finally:
            self._looking = False
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRegister(spec.loader)
        return spec


def install() -> None:
    """Register our architectures in timm now if timm is imported, else when it is (idempotent)."""
    if sys.modules.get("timm") is not None:
        if MODELS not in sys.modules:
            _register()
    elif not any(isinstance(finder, _AfterTimm) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterTimm())
