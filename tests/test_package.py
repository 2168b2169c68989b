"""The package's shape: no import cycles, no imports of the package root, a light ``import timm_dynmix`` and
``timm-dynmix --help``, our timm architectures registered in either import order, the old module paths kept."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import package_modules

import timm_dynmix
from timm_dynmix._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "timm_dynmix"
HEAVY = ("torch", "timm", "huggingface_hub", "datasets", "transformers", "accelerate", "numpy", "PIL")


MODULES = package_modules(include_main=False)


def _run(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _resolve(name: str) -> str:
    return MOVED.get(name, name)


def _top_level_imports(module: str, path: Path) -> set[str]:
    """The timm_dynmix modules ``module`` imports when it is imported (module-level statements, not functions and
    not ``if TYPE_CHECKING:`` blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                test = node.test
                if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                    visit(node.orelse)
                    continue
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                    visit(block)
            elif isinstance(node, ast.Import):
                found.update(_resolve(a.name) for a in node.names if a.name.startswith("timm_dynmix"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = module if is_package else module.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                if not base.startswith("timm_dynmix"):
                    continue
                base = _resolve(base)
                for alias in node.names:
                    sub = _resolve(f"{base}.{alias.name}")
                    found.add(sub if sub in MODULES else base)

    visit(tree.body)
    found.discard(module)
    return found


def test_no_import_cycles_among_top_level_imports():
    graph = {m: _top_level_imports(m, p) for m, p in MODULES.items()}
    unknown = {m: sorted(d - set(MODULES)) for m, d in graph.items() if d - set(MODULES)}
    assert not unknown, f"imports of modules that do not exist: {unknown}"
    cycles, state = [], {}

    def dfs(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join([*stack[stack.index(dep):], dep]))
            elif dep not in state:
                dfs(dep, [*stack, dep])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            dfs(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_cycle_check_finds_a_cycle(tmp_path):
    # the checker itself: two modules importing each other at the top are reported
    a = tmp_path / "a.py"
    a.write_text("from timm_dynmix.hub.card import x\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                 "    from timm_dynmix import loss\n", encoding="utf-8")
    assert _top_level_imports("timm_dynmix.hub.save", a) == {"timm_dynmix.hub.card"}
    b = tmp_path / "b.py"
    b.write_text("def f():\n    import timm_dynmix.train\nimport timm_dynmix.config\n", encoding="utf-8")
    assert _top_level_imports("timm_dynmix.x", b) == {"timm_dynmix.augment.config"}


def test_every_module_imports_first():
    # each module as the first timm_dynmix import of an interpreter (third-party modules stay loaded between them,
    # which keeps this fast and does not hide a cycle among ours)
    names = [m for m in MODULES if m != "timm_dynmix.timm_train"] + sorted(MOVED)
    code = f"""
import importlib, sys, traceback
failed = []
for name in {names!r}:
    for key in [k for k in sys.modules if k == "timm_dynmix" or k.startswith("timm_dynmix.")]:
        del sys.modules[key]
    sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("timm_dynmix")]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=3))
print("\\n".join(failed))
"""
    out = _run(code)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr[-3000:]


def _imports_of_root(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name == "timm_dynmix" for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "timm_dynmix" and not node.level:
            if any(f"timm_dynmix.{a.name}" not in MODULES for a in node.names):  # a name of the root, not a module
                lines.append(node.lineno)
    return lines


def test_no_module_imports_the_package_root(tmp_path):
    offenders = {}
    for name, path in MODULES.items():
        rel = path.relative_to(ROOT).as_posix()
        if name != "timm_dynmix" and _imports_of_root(path):
            offenders[rel] = _imports_of_root(path)
    assert not offenders, f"modules importing the package root (use timm_dynmix.version or the defining module): " \
                          f"{offenders}"
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from timm_dynmix import __version__\nfrom timm_dynmix import loss\n",
                     encoding="utf-8")
    assert _imports_of_root(probe) == [2]  # the checker sees a root import inside a function, not a submodule


def test_import_and_help_load_nothing_heavy():
    code = f"""
import sys, io, contextlib
import timm_dynmix
after_import = sorted(m for m in {HEAVY!r} if m in sys.modules)
from timm_dynmix.cli import main
for argv in (["--help"], ["--version"], []):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main(argv)
        except SystemExit:
            pass
print(after_import, sorted(m for m in {HEAVY!r} if m in sys.modules), "usage: timm-dynmix" in out.getvalue())
"""
    out = _run(code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["[]", "[]", "True"], out.stdout


@pytest.mark.parametrize("order", ["import timm, timm_dynmix", "import timm_dynmix, timm",
                                   "import timm_dynmix.data, timm",
                                   # transformers looks timm up (find_spec) before importing it
                                   "import importlib.util, timm_dynmix; importlib.util.find_spec('timm'); import timm"])
def test_timm_architectures_registered_in_either_import_order(order):
    out = _run(f"{order}\nimport sys, timm\nprint(timm.is_model('wrn40_2'), 'timm_dynmix.models' in sys.modules)")
    assert out.returncode == 0 and out.stdout.split() == ["True", "True"], out.stdout + out.stderr[-2000:]


def test_timm_keeps_its_own_loader_after_the_hook():
    out = _run("import timm_dynmix, timm, sys\nprint(type(timm.__loader__).__module__, "
               "any(type(f).__module__ == 'timm_dynmix._register' for f in sys.meta_path))")
    assert out.returncode == 0 and out.stdout.split()[1] == "False", out.stdout + out.stderr
    assert "timm_dynmix" not in out.stdout.split()[0]


def test_public_names_resolve():
    for name in timm_dynmix.__all__:
        assert getattr(timm_dynmix, name) is not None, name
    assert set(timm_dynmix.__all__) <= set(dir(timm_dynmix))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        timm_dynmix.nope  # noqa: B018
    import importlib

    for package in map(importlib.import_module, ("timm_dynmix.data", "timm_dynmix.train")):  # lazy too
        assert set(package.__all__) <= set(dir(package)), package.__name__
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
        with pytest.raises(AttributeError, match=f"module '{package.__name__}' has no attribute 'nope'"):
            package.nope  # noqa: B018


def test_lazy_exports_import_on_first_use_and_cache(monkeypatch):
    import sys
    import types

    from timm_dynmix import _lazy

    with pytest.raises(ValueError, match="'b' is exported from both 'm1' and 'm2'"):
        _lazy.exports({"m1": ("a", "b"), "m2": ("b",)})
    package = types.ModuleType("lazy_probe")
    package.__all__ = ["loads", "renamed"]
    monkeypatch.setitem(sys.modules, "lazy_probe", package)
    monkeypatch.delitem(sys.modules, "json", raising=False)  # imported by the first access, not before
    package.__getattr__, package.__dir__ = _lazy.attach("lazy_probe", {"loads": "json", "renamed": "json:dumps"})
    assert "json" not in sys.modules and "renamed" in dir(package)
    assert package.renamed({"a": 1}) == '{"a": 1}' and "json" in sys.modules
    assert package.loads("[1]") == [1] and vars(package)["loads"] is sys.modules["json"].loads  # cached
    with pytest.raises(AttributeError, match="module 'lazy_probe' has no attribute 'dumps'"):
        package.dumps  # noqa: B018


def test_old_module_paths_are_the_new_modules(monkeypatch):
    import importlib
    import re
    import warnings

    for old, new in MOVED.items():
        monkeypatch.delitem(sys.modules, old, raising=False)  # imported by an earlier test: import it afresh
        with pytest.warns(DeprecationWarning) as record:
            module = importlib.import_module(old)
        assert module is importlib.import_module(new), old
        assert importlib.import_module(new).__spec__.name == new  # the alias does not rename the module
        ours = [w for w in record if str(w.message).startswith(f"{old} is deprecated")]
        assert len(ours) == 1, [str(w.message) for w in record]
        assert re.search(rf"; import {re.escape(new)} instead", str(ours[0].message)), ours[0].message
        assert ours[0].filename == __file__  # the warning points at the importing line, not at the import system
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert importlib.import_module(old) is module  # once: later imports find it in sys.modules, silently
    from timm_dynmix import timm_train
    from timm_dynmix.integrations import timm_train as launcher

    assert timm_train.launch is launcher.launch and timm_dynmix.launch_timm_train is launcher.launch


def test_pyproject_lists_every_package():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    packages = {".".join(p.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py") for p in [p.parent]}
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert set(config["tool"]["setuptools"]["packages"]) == packages
    assert config["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "timm_dynmix.version.__version__"


def test_versions_without_importing():
    out = _run("import sys, json\nfrom timm_dynmix.version import versions\n"
               "v = versions(('torch', 'no-such-dist-xyz'))\nprint(json.dumps([v, 'torch' in sys.modules]))")
    assert out.returncode == 0, out.stderr
    v, loaded = json.loads(out.stdout)
    assert list(v)[:2] == ["timm_dynmix", "python"] and v["no-such-dist-xyz"] == "not installed"
    assert v["torch"].split("+")[0][0].isdigit() and loaded is False
    from timm_dynmix.version import versions

    with pytest.raises(TypeError, match="distribution names"):
        versions("torch")
