"""Reading definitions from a feature repository: a Python file, or a folder of them.

Every `Entity`, `FeatureView`, on-demand view and `FeatureService` bound to a module-level name
is collected. Relative source paths are resolved against the file's folder.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.features.definitions import Entity, FeatureService, FeatureView, OnDemandView

_TYPES = (Entity, FeatureView, OnDemandView, FeatureService)


def load_definitions(path: str | Path) -> list[tuple[Path, list[Any]]]:
    """[(folder the file is in, definitions in it)] for a file or every *.py in a folder."""
    root = Path(path)
    if not root.exists():
        raise NotFoundError(f"no such file or folder: {root}", field="path")
    files = sorted(p for p in root.rglob("*.py") if "/." not in str(p)) if root.is_dir() else [root]
    if not files:
        raise InvalidArgumentError(f"{root} holds no .py definition files", field="path")
    out: list[tuple[Path, list[Any]]] = []
    for file in files:
        try:
            namespace = runpy.run_path(str(file.resolve()), run_name="__shipyard_features__")
        except Exception as exc:
            raise InvalidArgumentError(
                f"{file}: cannot load definitions: {type(exc).__name__}: {exc}"
            ) from exc
        found: list[Any] = []
        for value in namespace.values():
            if isinstance(value, _TYPES) and not any(value is f for f in found):
                found.append(value)
        if found:
            out.append((file.resolve().parent, found))
    if not out:
        raise InvalidArgumentError(
            f"{root} defines no Entity, FeatureView, on-demand view or FeatureService",
            field="path",
        )
    return out
