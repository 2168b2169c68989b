"""The type checker, as CI runs it: ``mypy`` over the package with the strict settings in pyproject.toml.

README's test command (``pytest``) runs this, so a type error fails CI like any other test. Run it alone with
``mypy`` from the repository root (same settings, same result).
"""

from __future__ import annotations

import os

import pytest
from conftest import ROOT

mypy_api = pytest.importorskip("mypy.api", reason="mypy is a dev dependency: pip install -e '.[dev]'")


def test_package_type_checks_strictly():
    cwd = os.getcwd()
    os.chdir(ROOT)  # pyproject.toml's [tool.mypy] is read from the working directory
    try:
        out, err, status = mypy_api.run(["--cache-dir", str(ROOT / ".mypy_cache"), "--no-error-summary"])
    finally:
        os.chdir(cwd)
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 0, f"mypy found {len(errors)} type error(s):\n" + "\n".join(errors[:50]) + err
