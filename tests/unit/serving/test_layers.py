"""serving/ in layers: the data plane knows no HTTP framework, and uvicorn's private names are
used in one module only (`serving.uvicorn_fence`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import shipyard.serving

SERVING = Path(shipyard.serving.__file__).parent
NO_HTTP = (
    "dataplane.py",
    "decoding.py",
    "answers.py",
    "binary.py",
    "lifecycle.py",
    "routes.py",
)
HTTP_LIBRARIES = ("fastapi", "starlette", "uvicorn", "h11", "httptools")
# the transport and the ASGI app: above the data plane, never imported by it
UPPER = tuple(
    f"shipyard.serving.{name}"
    for name in ("asgi", "app", "runner", "transport", "uvicorn_fence", "http")
)


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_data_plane_imports_no_http_framework_and_nothing_above_it() -> None:
    for name in NO_HTTP:
        modules = imported(SERVING / name)
        bad = [m for m in modules if m.split(".")[0] in HTTP_LIBRARIES or m in UPPER]
        assert not bad, f"serving/{name} imports {bad}"


def test_uvicorns_private_names_are_used_in_the_fence_only() -> None:
    private = re.compile(r"uvicorn\.protocols|_start_asgi_task|httptools_impl|h11_impl")
    users = sorted(
        path.relative_to(SERVING.parent).as_posix()
        for path in SERVING.parent.rglob("*.py")
        if private.search(path.read_text())
    )
    assert users == ["serving/uvicorn_fence.py"]
