"""Lazy re-exports for package ``__init__`` modules (PEP 562 module ``__getattr__`` / ``__dir__``).

A package lists which module defines each public name; the name's module is imported on first access and the value
cached in the package, so ``import timm_dynmix`` loads neither torch nor timm until a name that needs them is used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def exports(groups: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Invert ``{module: (name, ...)}`` into ``{name: module}``, refusing a name listed under two modules."""
    out: dict[str, str] = {}
    for module, names in groups.items():
        for name in names:
            if name in out:
                raise ValueError(f"{name!r} is exported from both {out[name]!r} and {module!r}")
            out[name] = module
    return out


def attach(package: str, names: Mapping[str, str],
           submodules: Iterable[str] = ()) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build the ``__getattr__`` and ``__dir__`` of ``package`` for lazily imported names.

    Args:
        package: the package's ``__name__``.
        names: public name -> ``"module"`` (the name is looked up there) or ``"module:attr"`` (exported under
            another name than it has in its module).
        submodules: subpackages/modules of ``package`` that are imported when accessed as attributes.

    Returns:
        ``(__getattr__, __dir__)``, to assign at module level in the package's ``__init__``.
    """
    names = dict(names)
    submodules = tuple(submodules)

    def __getattr__(name: str) -> Any:
        if name in names:
            module, _, attr = names[name].partition(":")
            value = getattr(importlib.import_module(module), attr or name)
        elif name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)  # later accesses skip __getattr__
        return value

    def __dir__() -> list[str]:
        namespace = vars(sys.modules[package])
        return sorted(set(namespace) | set(namespace.get("__all__", ())) | set(names) | set(submodules))

    return __getattr__, __dir__
