"""Pushing fresh values: checking rows against a view's declared types, and appending them to
the view's Parquet folder (the offline store)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.features.definitions import FeatureView

MISSING = object()


def check_value(view: str, i: int, name: str, dtype: str, value: Any) -> Any:
    import math

    if value is MISSING:
        raise InvalidArgumentError(
            f"rows[{i}]: missing feature '{name}' of view '{view}'", field=name
        )
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    ok: bool
    if dtype in ("double", "float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(value, float) and math.isnan(value):
            return None
    elif dtype in ("long", "integer"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok and isinstance(value, float) and value.is_integer():
            ok, value = True, int(value)
    elif dtype == "boolean":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise InvalidArgumentError(
            f"rows[{i}]: feature '{name}' of view '{view}' is {dtype}, "
            f"got {type(value).__name__} {value!r}",
            field=name,
        )
    return value


def append_offline(
    view: FeatureView, checked: list[tuple[list[Any], list[Any]]], ts_ms: list[int]
) -> None:
    """Pushed rows as a new Parquet file in the view's source folder, written under a
    temporary name and renamed, so readers see all of it or nothing."""
    import os
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    src = view.source
    if src.kind != "parquet" or src.path is None or not Path(src.path).is_dir():
        raise InvalidArgumentError(
            f"view '{view.name}': pushing to the offline store needs a Parquet folder source "
            f"(it reads {src.kind} {src.path or ''})",
            field="to",
        )
    arrow_types = {
        "double": pa.float64(),
        "float": pa.float32(),
        "long": pa.int64(),
        "integer": pa.int32(),
        "boolean": pa.bool_(),
        "string": pa.string(),
    }
    key_type = arrow_types.get(view.entity.key_type, pa.string())
    columns: dict[str, Any] = {}
    for j, k in enumerate(view.join_keys):
        kt = key_type if len(view.join_keys) == 1 else None
        columns[k] = pa.array([keys[j] for keys, _ in checked], type=kt)
    columns[view.timestamp] = pa.array(ts_ms, type=pa.int64()).cast(pa.timestamp("ms", "UTC"))
    for j, (f, t) in enumerate(view.features.items()):
        columns[f] = pa.array([values[j] for _, values in checked], type=arrow_types[t])
    folder = Path(src.path)
    final = folder / f"push-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = folder / f".{final.name}.tmp"
    pq.write_table(pa.table(columns), tmp)
    os.replace(tmp, final)


def as_records(rows: Any) -> list[dict[str, Any]]:
    try:
        import pandas as pd

        if isinstance(rows, pd.DataFrame):
            return [{str(k): v for k, v in r.items()} for r in rows.to_dict(orient="records")]
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(rows, Sequence) or not all(isinstance(r, Mapping) for r in rows):
        raise InvalidArgumentError("rows must be a DataFrame or a list of objects", field="rows")
    return [dict(r) for r in rows]
