"""On-demand features: one code path for training frames and online lookups.

`compute(view, frame)` calls the view's function on a DataFrame holding its request fields and
the features of its source views and returns its declared features, checked and typed. The
training frame and the online lookup both call exactly this.

A registered on-demand view stores its function's source file and a digest of its code; another
process (a server, a model endpoint) loads the function from that file and refuses it if the
code changed since `apply` (re-apply to register the new version).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.features.definitions import OnDemandView

_PANDAS_TYPES = {
    "double": "float64",
    "float": "float32",
    "long": "Int64",
    "integer": "Int32",
    "boolean": "boolean",
    "string": "object",
}


def compute(view: OnDemandView, frame: pd.DataFrame) -> dict[str, Any]:
    """The view's features for each row of `frame`, as column name → pandas array."""
    import pandas as pd

    missing = [c for c in view.request if c not in frame.columns]
    if missing:
        raise InvalidArgumentError(
            f"on-demand view '{view.name}' needs field(s) {', '.join(map(repr, missing))}",
            field=missing[0],
        )
    try:
        out = view.function(frame)
    except Exception as exc:
        raise InvalidArgumentError(
            f"on-demand view '{view.name}' failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, pd.DataFrame) or len(out) != len(frame):
        raise InvalidArgumentError(
            f"on-demand view '{view.name}' must return a DataFrame with one row per input row"
        )
    result: dict[str, Any] = {}
    for name, dtype in view.features.items():
        if name not in out.columns:
            raise InvalidArgumentError(
                f"on-demand view '{view.name}' did not return its feature '{name}'", field=name
            )
        try:
            column: Any = out[name]
            result[name] = column.astype(_PANDAS_TYPES[dtype]).array
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"on-demand view '{view.name}': feature '{name}' is not {dtype}: {exc}",
                field=name,
            ) from exc
    return result


def load_function(name: str, spec: dict[str, Any]) -> OnDemandView:
    """The registered on-demand view `name`, re-imported from its source file."""
    from shipyard.features.definitions import OnDemandView

    path = spec.get("module_path")
    if not path or not Path(path).is_file():
        raise NotFoundError(
            f"on-demand view '{name}': its source file {path!r} is not on this machine; "
            "apply the definitions in this process or ship the file"
        )
    module_name = f"_shipyard_features_{hashlib.sha256(path.encode()).hexdigest()[:12]}"
    module = sys.modules.get(module_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise NotFoundError(f"on-demand view '{name}': cannot import {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception:
            sys.modules.pop(module_name, None)
            raise
    found = [v for v in vars(module).values() if isinstance(v, OnDemandView) and v.name == name]
    if not found:
        raise NotFoundError(f"on-demand view '{name}' is no longer defined in {path}")
    view = found[0]
    if view.code_digest != spec.get("code"):
        raise InvalidArgumentError(
            f"on-demand view '{name}' changed in {path} since it was applied; "
            "run `shipyard features apply` to register the new version"
        )
    return view
