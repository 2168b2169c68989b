"""Old import paths of modules that moved, kept working as deprecated aliases of the new modules.

``import timm_dynmix.config`` (for instance) gives the very module object ``timm_dynmix.augment.config``, so that
code written against the flat layout of 0.1.0, private names and monkeypatching included, keeps working; the first
import of an old path in a process emits a ``DeprecationWarning`` naming the new path (later imports find the module
in ``sys.modules`` and stay silent). New code, and every module of the package, imports the new paths
(tests/test_layering.py checks it). ``python -m timm_dynmix.timm_train`` is a real module (a file), not an alias:
runpy needs one.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import FrameType, ModuleType

__all__ = ["MOVED", "install"]

# old module -> new module
MOVED = {
    "timm_dynmix.config": "timm_dynmix.augment.config",
    "timm_dynmix.ops": "timm_dynmix.augment.ops",
    "timm_dynmix.transforms": "timm_dynmix.augment.dynmix",
    "timm_dynmix.baselines": "timm_dynmix.augment.baselines",
    "timm_dynmix.preview": "timm_dynmix.augment.preview",
    "timm_dynmix.batched": "timm_dynmix.augment.batched",
    "timm_dynmix.image_data": "timm_dynmix.data.datasets",
    "timm_dynmix.corruptions": "timm_dynmix.robustness.corruptions",
    "timm_dynmix.make_c": "timm_dynmix.robustness.make_c",
    "timm_dynmix.benchmarks": "timm_dynmix.robustness.readers",
    "timm_dynmix.metrics": "timm_dynmix.robustness.metrics",
    "timm_dynmix.evaluate": "timm_dynmix.robustness.evaluate",
    "timm_dynmix.report": "timm_dynmix.robustness.report",
    "timm_dynmix.card": "timm_dynmix.hub.card",
    "timm_dynmix.timm_plugin": "timm_dynmix.integrations.timm",
    "timm_dynmix.hf_trainer": "timm_dynmix.train.hf_trainer",
    "timm_dynmix.hub.load": "timm_dynmix.models.load",  # 0.2.0: model loading moved below robustness and hub
    "timm_dynmix.hub.errors": "timm_dynmix.errors",
}


def _importer_stacklevel() -> int:
    """The ``stacklevel`` that points a warning of :meth:`_Alias.create_module` at the code importing the old path.

    That is the first frame outside importlib. ``warnings.warn`` skips the import system's ``_bootstrap`` frames when
    it counts, but not ``importlib/__init__.py`` (``importlib.import_module``), so those are counted here.
    """
    level = 1
    frame: FrameType | None = sys._getframe(2)  # 0: here, 1: create_module, 2: the import system
    while frame is not None:
        filename = frame.f_code.co_filename
        if not ("importlib" in filename and "_bootstrap" in filename):  # a frame warnings.warn counts
            level += 1
            if "importlib" not in filename:
                return level
        frame = frame.f_back
    return 2


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of :data:`MOVED` and loads them as the new module (the same object), with a warning."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} is deprecated and will be removed in a future release; import {new} instead "
                      f"(the same module)", DeprecationWarning, stacklevel=_importer_stacklevel())
        module = importlib.import_module(new)
        self._spec = module.__spec__  # the import system sets __spec__ on what we return: put the real one back
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())  # before the path finders: an old name always means the new module
