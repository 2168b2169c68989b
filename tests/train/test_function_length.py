"""No function in ``timm_dynmix/train/`` longer than 60 lines, so that the training code reads as named steps.

A function's length is the number of source lines of its body, from its first statement after the docstring to
its last statement's last line (the ``def`` line, decorators, the signature and the docstring are not counted;
comments and blank lines inside the body are). Nested functions count towards the enclosing function and are
measured on their own too.
"""

from __future__ import annotations

import ast

import pytest
from conftest import ROOT

MAX_LINES = 60
TRAIN = ROOT / "timm_dynmix" / "train"


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Source lines of ``node``'s body without its docstring."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """``(name, line, body lines)`` of every function in ``source`` whose body is over ``limit`` lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and body_lines(node) > limit:
            found.append((node.name, node.lineno, body_lines(node)))
    return found


def test_the_count_skips_the_docstring_and_catches_a_long_function():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    ok = f'def f():\n    """Doc\n\n    string.\n    """\n{body}'
    assert long_functions(ok) == []
    assert long_functions(ok + "    return x0\n") == [("f", 1, MAX_LINES + 1)]
    nested = f"class C:\n    def m(self):\n{''.join('    ' + line + chr(10) for line in body.splitlines())}" \
             "        return 0\n"
    assert long_functions(nested) == [("m", 2, MAX_LINES + 1)]


@pytest.mark.parametrize("path", sorted(TRAIN.glob("*.py")), ids=lambda p: p.name)
def test_no_function_in_train_is_over_60_lines(path):
    too_long = long_functions(path.read_text(encoding="utf-8"))
    assert not too_long, f"{path.name}: split into named steps: " + ", ".join(
        f"{name} (line {line}: {n} body lines)" for name, line, n in too_long)
