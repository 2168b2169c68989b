"""The package's layers: no module imports a module of a higher layer, nor an old (aliased) module path.

Every ``import`` and ``from ... import`` of every module counts: at module level, inside functions, under
``if TYPE_CHECKING:``; relative imports are resolved. A string that names a module of ours counts too (exactly
``"timm_dynmix.train.loop"`` or ``"timm_dynmix.integrations.timm_train:launch"``): that is how the lazy re-export
tables of the package ``__init__`` modules, the CLI's command table and ``importlib.import_module`` calls import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import package_modules

from timm_dynmix._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "timm_dynmix"

# The layers, lowest first: a module may import its own layer and the layers before it, never one after it.
#
# The data flow of a study is augment -> data -> train -> robustness -> hub, but the *imports* go another way at two
# points, and the order below follows the imports:
#
# * ``models`` (architectures, ``create_model``, ``check_weights_file``, ``local-dir:``/``hf-hub:`` loading) sits
#   low: training, evaluation and the Hub all make models and read weights files. ``timm_dynmix.hub`` re-exports
#   ``create_model`` and ``check_weights_file`` for compatibility.
# * ``train`` sits above ``robustness`` and ``hub``: a training run *ends* by publishing what it made (the
#   Hub-format folder with its model card, which reads evaluation reports, and an optional push; the run summary's
#   "stopped early" rule is the card's), so the training driver uses the Hub layer, not the other way round.
#   Nothing below ``train`` imports it: evaluation takes a model folder or a checkpoint, not a training run.
# * ``robustness`` sits below ``hub``: the model card shows evaluation reports (``hub.card`` reads
#   ``robustness.readers``' benchmark names), and evaluation makes its models through ``models``.
# * ``integrations`` (timm's ``train.py``, the ``timm.data`` hook) and ``cli`` are the edges; the package root
#   (``timm_dynmix/__init__.py``: the lazy public API, the old-path aliases of ``_moved``) is above everything.
#   ``timm_dynmix.timm_train`` is the ``python -m`` entry point of the timm launcher, a CLI module.
#
# ``_register`` (in the models layer, though it imports nothing heavy itself) puts our architectures in timm's
# registry: it imports ``models.cifar`` by name from an import hook once timm is imported.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("timm_dynmix.rng", "timm_dynmix.fileio", "timm_dynmix.runtime", "timm_dynmix.version",
              "timm_dynmix.errors", "timm_dynmix._lazy")),
    ("models", ("timm_dynmix.models", "timm_dynmix._register")),
    ("augment", ("timm_dynmix.augment",)),
    ("data", ("timm_dynmix.data",)),
    ("loss", ("timm_dynmix.loss",)),
    ("robustness", ("timm_dynmix.robustness", "timm_dynmix.fairness")),
    ("hub", ("timm_dynmix.hub",)),
    ("train", ("timm_dynmix.train",)),
    ("integrations", ("timm_dynmix.integrations",)),
    ("cli", ("timm_dynmix.cli", "timm_dynmix.timm_train")),
    ("root", ("timm_dynmix", "timm_dynmix._moved")),
)
LEVEL = {prefix: i for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes}


MODULES = package_modules()


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of ``module`` (its longest listed prefix; the package root only for itself);
    ValueError if it has none."""
    if module == "timm_dynmix":
        return LEVEL[module]
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        prefix = ".".join(parts[:n])
        if prefix in LEVEL:
            return LEVEL[prefix]
    raise ValueError(f"module {module!r} is in no layer of tests/test_layering.py's LAYERS; add it to one")


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """``(line, imported timm_dynmix module)`` for every import in ``path`` (the source of ``module``).

    ``from pkg import name`` gives ``pkg.name`` when that is a module (or an old path), else ``pkg``. Old paths of
    :data:`~timm_dynmix._moved.MOVED` are returned as written, not resolved.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "timm_dynmix"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            if base.split(".")[0] != "timm_dynmix":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES or sub in MOVED else base))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and module != "timm_dynmix._moved":
            # an import by name, "module" or "module:attr"; not "timm_dynmix" alone (also the distribution's name),
            # nor the old paths _moved's alias table defines
            target = node.value.partition(":")[0]
            if target != "timm_dynmix" and (target in MODULES or target in MOVED):
                found.append((node.lineno, target))
    return found


def violations(modules: dict[str, Path]) -> list[str]:
    """One line per import of a higher layer or of an old path, naming the file, the line and the layers."""
    out = []
    for module, path in modules.items():
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        own = layer_of(module)
        for line, target in sorted(set(imports_of(module, path))):
            if target in MOVED:
                out.append(f"{rel}:{line}: imports the old path {target} (use {MOVED[target]})")
                continue
            other = layer_of(target)
            if other > own:
                out.append(f"{rel}:{line}: {module} (layer {LAYERS[own][0]}) imports {target} "
                           f"(layer {LAYERS[other][0]}, higher)")
    return out


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)  # raises, naming the module


def test_no_module_imports_a_higher_layer_or_an_old_path():
    found = violations(MODULES)
    assert not found, "imports against the layer order (tests/test_layering.py LAYERS):\n" + "\n".join(found)


def test_layer_check_finds_climbs_and_old_paths(tmp_path):
    # the checker itself, on a fake package of the data layer: function-level, relative, TYPE_CHECKING and by-name
    # imports are all seen; same-layer and lower imports are allowed
    data = tmp_path / "__init__.py"
    data.write_text(
        "from typing import TYPE_CHECKING\n"
        "from timm_dynmix.augment.config import parse_config\n"  # lower: fine
        "from . import views\n"  # same layer: fine
        "def f():\n"
        "    from ..train import loop\n"  # line 5: relative, inside a function, higher
        "    import timm_dynmix.config\n"  # line 6: old path
        "if TYPE_CHECKING:\n"
        "    from timm_dynmix.hub.save import save_pretrained\n"  # line 8: higher
        "_EXPORTS = {'run': 'timm_dynmix.cli.train:run', 'x': 'not a module'}\n",  # line 9: lazy, higher
        encoding="utf-8")
    found = violations({"timm_dynmix.data": data})
    assert [v.split(":")[1] for v in found] == ["5", "6", "8", "9"], found
    assert "timm_dynmix.data (layer data) imports timm_dynmix.train.loop (layer train, higher)" in found[0]
    assert "old path timm_dynmix.config (use timm_dynmix.augment.config)" in found[1]
    assert "timm_dynmix.cli.train (layer cli" in found[3]
    with pytest.raises(ValueError, match=r"'timm_dynmix\.nowhere' is in no layer"):
        layer_of("timm_dynmix.nowhere")


def test_names_moved_down_keep_their_old_homes():
    # what moved down to end a climb is still importable from where it was, as the same object
    import timm_dynmix.cli.train as cli_train
    import timm_dynmix.train as train
    from timm_dynmix import errors, hub
    from timm_dynmix.augment import timm_aug
    from timm_dynmix.data import transforms_factory
    from timm_dynmix.models import load
    from timm_dynmix.train import command

    assert train.add_arguments is cli_train.add_arguments is command.add_arguments
    assert train.run is cli_train.run is command.run
    assert hub.create_model is load.create_model and hub.check_weights_file is load.check_weights_file
    assert hub.HubError is errors.HubError and hub.WeightsError is errors.WeightsError
    assert transforms_factory._timm_augmentation is timm_aug.timm_augmentation
