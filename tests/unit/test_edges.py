"""The edges (CLI, control-plane API) reach the stores only through the capabilities.

import-linter forbids them to import `shipyard.stores.*` (pyproject.toml); this catches what
an import contract cannot see: a store reached through the opener, `open_stores().metadata…`
or `plane.stores.artifacts…` (the two stores a `Stores` holds).
"""

from __future__ import annotations

import ast
from pathlib import Path

import shipyard

SRC = Path(shipyard.__file__).parent
EDGES = ("cli", "server")
PENDING: set[str] = set()


def metadata_uses(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and (node.attr == "metadata" or (node.attr == "artifacts" and _is_stores(node.value)))
    ]


def _is_stores(node: ast.expr) -> bool:
    """`stores`, `x.stores` or `open_stores(…)`: a `Stores` (a run's `.artifacts` is not)."""
    if isinstance(node, ast.Call):
        node = node.func
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name in ("stores", "open_stores")


def test_no_edge_module_reaches_into_the_metadata_store() -> None:
    found = {
        str(path.relative_to(SRC)): lines
        for edge in EDGES
        for path in sorted((SRC / edge).rglob("*.py"))
        if str(path.relative_to(SRC)) not in PENDING and (lines := metadata_uses(path))
    }
    assert found == {}, f"call a capability instead of the store: {found}"
