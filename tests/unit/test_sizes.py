"""Functions under 80 lines and modules under 600, outside migrations (ARCHITECTURE.md):
past that a module is asking to be split and a function cannot be read in one go."""

from __future__ import annotations

import ast
from pathlib import Path

import shipyard

SRC = Path(shipyard.__file__).parent
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 600


def _modules() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if "migrations" not in p.parts]


def test_no_module_is_over_the_limit() -> None:
    big = {
        str(p.relative_to(SRC)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert big == {}, f"split these modules by idea: {big}"


def test_no_function_is_over_the_limit() -> None:
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(SRC)}:{node.name}"] = lines
    assert long == {}, f"split these functions: {long}"
