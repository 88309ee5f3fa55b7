"""No function in the operator is longer than 80 lines (issue 21: an operator a newcomer can
read). Lines, not statements (ruff's PLR0915 counts statements): from the ``def`` line to the
last line of the body, nested functions counted in the function that holds them too."""

from __future__ import annotations

import ast
from pathlib import Path

import jobqueue_operator

MAX_LINES = 80
PACKAGE = Path(jobqueue_operator.__file__).parent


def function_lengths() -> dict[str, int]:
    """``{"module.py:Class.method": lines}`` of every function in the operator package."""
    out: dict[str, int] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        _walk(tree, path.name, (), out)
    return out


def _walk(node: ast.AST, module: str, scope: tuple[str, ...], out: dict[str, int]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = (*scope, child.name)
            if not isinstance(child, ast.ClassDef):
                end = child.end_lineno or child.lineno
                out[f"{module}:{'.'.join(name)}"] = end - child.lineno + 1
            _walk(child, module, name, out)
        else:
            _walk(child, module, scope, out)


def test_the_walk_measures_functions_methods_and_nested_ones() -> None:
    lengths = function_lengths()
    assert lengths["builders.py:api_deployment"] > 20
    assert any(name.startswith("settings.py:OperatorSettings.") for name in lengths)
    assert len(lengths) > 300


def test_no_operator_function_is_over_80_lines() -> None:
    over = {name: n for name, n in function_lengths().items() if n > MAX_LINES}
    assert not over, f"functions over {MAX_LINES} lines (split them): {over}"
