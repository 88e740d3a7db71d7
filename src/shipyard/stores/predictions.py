"""The prediction log on disk: Parquet files partitioned by endpoint and hour,

    <root>/endpoint=<name>/date=2026-11-22/hour=14/part-<ms>-<uuid>.parquet

written to a temporary name and renamed (a reader never sees half a file). One row per
predicted row: request metadata (`_request_id`, `_ts`, `_model_version`, `_latency_ms`,
`_status`), the input features under their own names, and `_prediction` (+ `_proba_<class>`).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pyarrow as pa


def _safe(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise InvalidArgumentError(f"bad endpoint name for the prediction log: {name!r}")
    return name


class PredictionLogStore:
    """Writes and reads prediction-log partitions under `root`. No I/O in the constructor."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def write(self, endpoint: str, table: pa.Table, *, ts_ms: int) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        when = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
        folder = (
            self.root / f"endpoint={_safe(endpoint)}" / f"date={when:%Y-%m-%d}" / f"hour={when:%H}"
        )
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{ts_ms}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{name}.tmp"
        # dictionary pages for text (request ids, versions, categories) only: on float
        # features they are built and then dropped for high-cardinality data, work for
        # nothing in the serving process, next to requests
        text = [f.name for f in table.schema if pa.types.is_string(f.type)]
        pq.write_table(table, tmp, compression="zstd", use_dictionary=text)
        os.replace(tmp, folder / name)
        return folder / name

    def stale_temp_files(self, grace_seconds: float) -> list[Path]:
        """Partitions a killed writer left half-written (never read: not `.parquet`)."""
        from shipyard.stores.artifacts import stale_temp_files

        return stale_temp_files(self.root, "endpoint=*/date=*/hour=*/.part-*.tmp", grace_seconds)

    def read(
        self,
        endpoint: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Rows logged for `endpoint` with start_ms <= _ts < end_ms (files of other hours are
        skipped by their partition, not read)."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        files = [str(p) for p in self.files(endpoint, start_ms=start_ms, end_ms=end_ms)]
        if not files:
            return pa.table({})
        import pyarrow.parquet as pq

        # files differ in columns (error records carry no features; versions may differ) and
        # in types: one model answers float32, the next float64 (widened), or text (a canary
        # of a regressor and a classifier: the column is read as text)
        expr = None
        if start_ms is not None:
            expr = ds.field("_ts") >= start_ms
        if end_ms is not None:
            cond = ds.field("_ts") < end_ms
            expr = cond if expr is None else expr & cond
        schemas = [pq.read_schema(f) for f in files]
        try:
            schema = pa.unify_schemas(schemas, promote_options="permissive")
            dataset = ds.dataset(files, format="parquet", schema=schema)
            return dataset.to_table(filter=expr, columns=columns)
        except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _read_as_text_where_types_differ(files, schemas, expr, columns)

    def files(
        self, endpoint: str, *, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[Path]:
        """The part files whose hour overlaps [start_ms, end_ms). Files never change once
        written, so a reader can remember which it has counted."""
        folder = self.root / f"endpoint={_safe(endpoint)}"
        return sorted(
            p
            for p in folder.glob("date=*/hour=*/part-*.parquet")
            if _hour_overlaps(p, start_ms, end_ms)
        )

    def endpoints(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name.split("=", 1)[1] for p in self.root.glob("endpoint=*"))


def _hour_overlaps(path: Path, start_ms: int | None, end_ms: int | None) -> bool:
    try:
        date = path.parent.parent.name.split("=", 1)[1]
        hour = int(path.parent.name.split("=", 1)[1])
        begin = dt.datetime.fromisoformat(date).replace(hour=hour, tzinfo=dt.UTC)
    except (IndexError, ValueError):
        return False
    lo = int(begin.timestamp() * 1000)
    hi = lo + 3_600_000
    return (start_ms is None or hi > start_ms) and (end_ms is None or lo < end_ms)


def labels_table(rows: list[tuple[str, int, Any, int]]) -> pa.Table:
    """Feedback rows `(request_id, row, label, ts_ms)` as a table. Labels are stored as text so
    files of one endpoint always share a schema; scoring turns them back into numbers."""
    import pyarrow as pa

    return pa.table(
        {
            "_request_id": pa.array([r[0] for r in rows], type=pa.string()),
            "_row": pa.array([r[1] for r in rows], type=pa.int32()),
            "_label": pa.array([_label_text(r[2]) for r in rows], type=pa.string()),
            "_ts": pa.array([r[3] for r in rows], type=pa.int64()),
        }
    )


def outcomes_table(rows: list[tuple[str, int, float, int]]) -> pa.Table:
    """Outcome rows `(request_id, row, outcome, ts_ms)` as a table: outcomes are numbers (an
    A/B test averages them), kept apart from labels so one endpoint can have both."""
    import pyarrow as pa

    return pa.table(
        {
            "_request_id": pa.array([r[0] for r in rows], type=pa.string()),
            "_row": pa.array([r[1] for r in rows], type=pa.int32()),
            "_outcome": pa.array([float(r[2]) for r in rows], type=pa.float64()),
            "_ts": pa.array([r[3] for r in rows], type=pa.int64()),
        }
    )


def _label_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _read_as_text_where_types_differ(
    files: list[str], schemas: list[pa.Schema], expr: Any, columns: list[str] | None
) -> pa.Table:
    """The files as one table, each column whose type differs between files cast to text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types: dict[str, set[Any]] = {}
    for schema in schemas:
        for f in schema:
            types.setdefault(f.name, set()).add(f.type)
    mixed = {name for name, seen in types.items() if len(seen) > 1}
    tables = []
    for path in files:
        table = pq.read_table(path)
        for name in mixed & set(table.column_names):
            i = table.column_names.index(name)
            table = table.set_column(i, name, table.column(name).cast(pa.string()))
        tables.append(table)
    table = pa.concat_tables(tables, promote_options="permissive")
    if expr is not None:
        table = table.filter(expr)
    return table.select(columns) if columns is not None else table
