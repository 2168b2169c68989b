"""Old import paths of modules that moved into subpackages, kept working as aliases of the new modules.

``import timm_dynmix.config`` (for instance) gives the very module object ``timm_dynmix.augment.config``, so that
code written against the flat layout of 0.1.0, private names and monkeypatching included, keeps working. New code
imports the new paths. ``python -m timm_dynmix.timm_train`` is a real module (a file), not an alias: runpy needs one.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

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
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of :data:`MOVED` and loads them as the new module (the same object)."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(MOVED[spec.name])
        self._spec = module.__spec__  # the import system sets __spec__ on what we return: put the real one back
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())  # before the path finders: an old name always means the new module
