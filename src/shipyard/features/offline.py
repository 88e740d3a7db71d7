"""The offline store: point-in-time-correct joins and materialization reads, in DuckDB.

A training frame is one `ASOF LEFT JOIN` per feature view: for each entity row, the source row
with the same key and the latest event time at or before the row's timestamp. DuckDB sorts both
sides per key and streams the join (spilling to a temporary folder past `memory_limit`), so no
entity-by-history product is ever built. Exactly one output row per input row, in input order.

Ties (several source rows with the same key and event time) resolve to the row that comes last
in the source (by file name and row number for files; by position for DataFrames).

Timestamps: naive ones are read as UTC; aware ones are converted to UTC.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, MissingDependencyError, NotFoundError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from shipyard.features.definitions import FeatureView, OnDemandView, Source

SQL_TYPES = {
    "double": "DOUBLE",
    "float": "FLOAT",
    "long": "BIGINT",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "string": "VARCHAR",
}
ROW = "__sy_row"
ETS = "__sy_ets"
VTS = "__sy_vts"
SEQ = "__sy_seq"
ORD = "__sy_ord"  # event time in µs << 64 | source position: ASOF on it breaks ties by position


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_db: Any = None  # the process's DuckDB database (a new one after a fork)
_db_pid = 0
_db_memory_limit = ""
_db_lock = threading.Lock()


def _database(memory_limit: str) -> Any:
    """The process's one DuckDB database: opening one is slow next to a small query, and a
    database keeps the Parquet metadata and file blocks it has read (checked against the
    files' modification times), so repeated joins and materializations of the same sources
    do not read them cold. Spills go to a temporary folder removed at exit."""
    global _db, _db_pid, _db_memory_limit
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - duckdb is a dependency
        raise MissingDependencyError("the offline store needs duckdb: pip install duckdb") from exc
    with _db_lock:
        if _db is None or _db_pid != os.getpid():
            spill = tempfile.mkdtemp(prefix="shipyard-duckdb-")
            db = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": spill})
            atexit.register(_close, db, spill)
            _db, _db_pid, _db_memory_limit = db, os.getpid(), memory_limit
        elif memory_limit != _db_memory_limit:
            _db.execute(f"SET memory_limit = {lit(memory_limit)}")
            _db_memory_limit = memory_limit
        return _db


def _close(db: Any, spill: str) -> None:
    with contextlib.suppress(Exception):
        db.close()
    shutil.rmtree(spill, ignore_errors=True)


@contextlib.contextmanager
def connect(memory_limit: str = "400MB") -> Iterator[Any]:
    """A connection of its own (DataFrames registered on it are its alone; one per thread) to
    the process's DuckDB database, in UTC, under a memory cap (it spills past it)."""
    con = _database(memory_limit).cursor()
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def source_sql(con: duckdb.DuckDBPyConnection, view: FeatureView, alias: str) -> str:
    """A SQL relation over `view`'s source with its keys (cast to the entity key type), a UTC
    event time `__sy_vts`, its features (cast to their declared types) and `__sy_ord`, its
    event time and source position in one orderable number. DataFrames are registered on `con`
    under `alias`."""
    src = view.source
    relation, seq = _relation(con, src, alias)
    key_type = SQL_TYPES.get(view.entity.key_type, "VARCHAR")
    if len(view.join_keys) > 1:
        key_type = "VARCHAR"
    cols = [f"CAST({q(k)} AS {key_type}) AS {q(k)}" for k in view.join_keys]
    # via TIMESTAMPTZ: DuckDB casts every timestamp flavour (ns, aware, text) to it, in UTC
    event_time = f"CAST(CAST({q(view.timestamp)} AS TIMESTAMPTZ) AS TIMESTAMP)"
    cols.append(f"{event_time} AS {VTS}")
    cols += [f"CAST({q(f)} AS {SQL_TYPES[t]}) AS {q(f)}" for f, t in view.features.items()]
    cols.append(f"(epoch_us({event_time})::HUGEINT << 64) + CAST({seq} AS HUGEINT) AS {ORD}")
    return f"(SELECT {', '.join(cols)} FROM {relation})"


def _relation(con: duckdb.DuckDBPyConnection, src: Source, alias: str) -> tuple[str, str]:
    if src.kind in ("parquet", "csv"):
        assert src.path is not None
        path = Path(src.path)
        if path.is_dir():
            pattern = str(path / "**" / f"*.{src.kind}")
        else:
            pattern = str(path)
            if not any(ch in pattern for ch in "*?[") and not path.exists():
                raise NotFoundError(f"source file {path} does not exist", field="source")
        if src.kind == "parquet":
            return (
                f"read_parquet({lit(pattern)}, file_row_number = true, union_by_name = true)",
                "(file_index::HUGEINT << 40) + file_row_number",
            )
        return (
            f"(SELECT *, file_index AS __sy_file, row_number() OVER () AS __sy_pos "
            f"FROM read_csv({lit(pattern)}, union_by_name = true))",
            "(__sy_file::HUGEINT << 40) + __sy_pos",
        )
    if src.kind == "dataframe":
        if src.frame is None:
            raise InvalidArgumentError(
                "this view reads a DataFrame that exists only in the process that applied it; "
                "apply the definitions in this process (FeatureStore.apply) or use a file source",
                field="source",
            )
        import numpy as np

        frame = src.frame.assign(**{SEQ: np.arange(len(src.frame))})
        con.register(alias, frame)
        return q(alias), SEQ
    if src.kind == "sql":
        assert src.query is not None
        if src.url is None:
            return (f"(SELECT *, row_number() OVER () AS __sy_pos FROM ({src.query}))", "__sy_pos")
        import numpy as np
        import pandas as pd
        import sqlalchemy as sa

        engine = sa.create_engine(src.url)
        try:
            with engine.connect() as conn:
                frame = pd.read_sql_query(sa.text(src.query), conn)
        finally:
            engine.dispose()
        con.register(alias, frame.assign(**{SEQ: np.arange(len(frame))}))
        return q(alias), SEQ
    raise InvalidArgumentError(f"unknown source kind {src.kind!r}", field="source")


def normalize_timestamps(values: Any, column: str) -> Any:
    """A pandas Series of naive UTC datetime64[us]: naive input is UTC, aware is converted."""
    import pandas as pd

    try:
        ts = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(
            f"column '{column}' does not hold timestamps: {exc}", field=column
        ) from exc
    return ts.dt.tz_localize(None).astype("datetime64[us]")


def point_in_time_join(
    entity_df: pd.DataFrame,
    views: Sequence[tuple[FeatureView, list[str]]],
    *,
    timestamp: str,
    names: dict[tuple[str, str], str],
    memory_limit: str = "400MB",
) -> dict[str, Any]:
    """The features of `views` (each with the feature names wanted) as of each row of
    `entity_df`: a dict of output column name → numpy array, one value per input row."""
    import numpy as np

    left = _entity_frame(entity_df, views, timestamp)
    if len(left) == 0:
        return {names[(v.name, f)]: np.array([], dtype=object) for v, fs in views for f in fs}

    with connect(memory_limit) as con:
        con.register("__sy_entities_df", left)
        # the last possible position at the row's time: ties go to the last source row
        con.execute(
            f"CREATE TEMP VIEW __sy_entities AS SELECT *, "
            f"(epoch_us({ETS})::HUGEINT << 64) + ((1::HUGEINT << 64) - 1) AS {ORD} "
            "FROM __sy_entities_df"
        )
        lo, hi = con.execute(f"SELECT min({ETS}), max({ETS}) FROM __sy_entities").fetchall()[0]
        ctes: list[str] = []
        joins: list[str] = []
        selects: list[str] = [f"e.{ROW}"]
        for i, (view, wanted) in enumerate(views):
            cte, join, columns = _view_sql(con, i, view, wanted, lo, hi, names)
            ctes.append(cte)
            joins.append(join)
            selects.extend(columns)
        sql = (
            f"WITH {', '.join(ctes)} SELECT {', '.join(selects)} FROM __sy_entities e "
            f"{' '.join(joins)} ORDER BY e.{ROW}"
        )
        try:
            result = con.execute(sql).fetchnumpy()
        except Exception as exc:
            raise _wrap(exc, [v.name for v, _ in views]) from exc
    result.pop(ROW)
    return {name: unmask(arr) for name, arr in result.items()}


def _entity_frame(
    entity_df: pd.DataFrame, views: Sequence[tuple[FeatureView, list[str]]], timestamp: str
) -> pd.DataFrame:
    """The join keys of every view, the event time and the row number of `entity_df`."""
    import numpy as np
    import pandas as pd

    if timestamp not in entity_df.columns:
        raise InvalidArgumentError(
            f"the entity frame has no timestamp column '{timestamp}' "
            f"(columns: {', '.join(map(str, entity_df.columns))})",
            field=timestamp,
        )
    keys: list[str] = []
    for view, _ in views:
        for key in view.join_keys:
            if key not in entity_df.columns:
                raise InvalidArgumentError(
                    f"the entity frame has no join key column '{key}' needed by view '{view.name}'",
                    field=key,
                )
            if key not in keys:
                keys.append(key)
    left = pd.DataFrame({k: _key_column(entity_df[k], k) for k in keys})
    left[ETS] = normalize_timestamps(entity_df[timestamp].reset_index(drop=True), timestamp)
    left[ROW] = np.arange(len(left), dtype=np.int64)
    return left


def _view_sql(
    con: Any,
    i: int,
    view: FeatureView,
    wanted: list[str],
    lo: Any,
    hi: Any,
    names: dict[tuple[str, str], str],
) -> tuple[str, str, list[str]]:
    """One view's part of the join: its CTE (source rows within the entities' time range,
    less the TTL), its ASOF join, and its selected columns (null when older than the TTL)."""
    import pandas as pd

    alias = f"v{i}"
    src = source_sql(con, view, f"__sy_src{i}")
    where = []
    if hi is not None:
        where.append(f"{VTS} <= TIMESTAMP {lit(str(hi))}")
    if lo is not None and view.ttl is not None:
        start = pd.Timestamp(lo) - view.ttl
        where.append(f"{VTS} >= TIMESTAMP {lit(str(start))}")
    cte = f"{alias} AS (SELECT * FROM {src} {'WHERE ' + ' AND '.join(where) if where else ''})"
    key_type = "VARCHAR" if len(view.join_keys) > 1 else SQL_TYPES[view.entity.key_type]
    on = [f"CAST(e.{q(k)} AS {key_type}) = {alias}.{q(k)}" for k in view.join_keys]
    on.append(f"e.{ORD} >= {alias}.{ORD}")
    join = f"ASOF LEFT JOIN {alias} ON {' AND '.join(on)}"
    fresh = None
    if view.ttl is not None:
        micros = int(view.ttl.total_seconds() * 1_000_000)
        fresh = f"{alias}.{VTS} >= e.{ETS} - to_microseconds({micros})"
    selects = []
    for f in wanted:
        col = f"{alias}.{q(f)}"
        expr = f"CASE WHEN {fresh} THEN {col} END" if fresh else col
        selects.append(f"{expr} AS {q(names[(view.name, f)])}")
    return cte, join, selects


def fill_defaults(
    views: list[tuple[FeatureView, list[str]]],
    all_names: dict[tuple[str, str], str],
    columns: dict[str, Any],
) -> None:
    """A view's declared default fills the gaps of the point-in-time join, as it does online."""
    import pandas as pd

    for view_obj, feats in views:
        if isinstance(view_obj.default, Mapping):
            for f in feats:
                value = view_obj.default.get(f)
                col = all_names[(view_obj.name, f)]
                if value is not None and col in columns:
                    columns[col] = pd.Series(columns[col]).fillna(value).array


def add_on_demand(
    out: pd.DataFrame,
    entity_df: pd.DataFrame,
    od_views: dict[str, OnDemandView],
    sources: dict[str, FeatureView],
    names: dict[tuple[str, str], str],
    columns: dict[str, Any],
    all_names: dict[tuple[str, str], str],
) -> None:
    """Compute each on-demand view into `out` from its request fields (columns of
    `entity_df`) and its source views' joined features."""
    import pandas as pd

    from shipyard.features import ondemand

    for od_name, od in od_views.items():
        frame = pd.DataFrame(index=range(len(entity_df)))
        for f in od.request:
            if f not in entity_df.columns:
                raise InvalidArgumentError(
                    f"on-demand view '{od_name}' needs request field '{f}' "
                    "as a column of the entity frame",
                    field=f,
                )
            frame[f] = entity_df[f].to_numpy()
        for src in od.sources:
            for f in sources[src].features:
                frame[f] = columns[all_names[(src, f)]]
        computed = ondemand.compute(od, frame)
        for (view, feat), name in names.items():
            if view == od_name:
                out[name] = pd.Series(computed[feat], index=out.index)


def unmask(arr: Any) -> Any:
    """A DuckDB masked column as what pandas uses for missing values of that type: NaN for
    floats, None for strings, nullable Int64/boolean arrays for integers and booleans."""
    import numpy as np
    import pandas as pd

    if not isinstance(arr, np.ma.MaskedArray):
        return arr
    mask = np.ma.getmaskarray(arr)
    data = np.ma.getdata(arr)
    if data.dtype.kind == "f":
        return np.where(mask, np.nan, data)
    if data.dtype.kind in "iu":
        return pd.arrays.IntegerArray(data.astype(np.int64), mask.copy())
    if data.dtype.kind == "b":
        return pd.arrays.BooleanArray(data.astype(bool), mask.copy())
    out = data.astype(object)
    out[mask] = None
    return out


def _key_column(values: Any, name: str) -> Any:
    """An entity key column as DuckDB should see it: float keys with gaps (pandas turns an
    int column with a None into floats) become nullable integers, so a missing key gives
    null features instead of a failed cast."""
    import pandas as pd

    if values.dtype.kind == "f" and values.isna().any():
        try:
            return pd.array(values.to_numpy(), dtype="Int64")
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"join key column '{name}' holds non-integer numbers", field=name
            ) from exc
    return values.to_numpy()


def latest_per_entity(
    view: FeatureView, start: Any, end: Any, *, memory_limit: str = "400MB"
) -> Any:
    """The latest row per entity with event time in [start, end) as a pyarrow Table of keys,
    `__sy_vts` and features, ordered by key."""
    keys = ", ".join(map(q, view.join_keys))
    fields = ", ".join([f"{VTS} := {VTS}", *(f"{q(f)} := {q(f)}" for f in view.features)])
    picked = ", ".join([f"s.{VTS} AS {VTS}", *(f"s.{q(f)} AS {q(f)}" for f in view.features)])
    with connect(memory_limit) as con:
        src = source_sql(con, view, "__sy_src")
        where = [f"{VTS} < TIMESTAMP {lit(str(end))}"]
        where += [f"{q(k)} IS NOT NULL" for k in view.join_keys]
        if start is not None:
            where.append(f"{VTS} >= TIMESTAMP {lit(str(start))}")
        # an aggregate, not a window: hash aggregates spill to disk past the memory limit
        sql = (
            f"SELECT {keys}, {picked} FROM (SELECT {keys}, "
            f"arg_max(struct_pack({fields}), {ORD}) AS s FROM {src} "
            f"WHERE {' AND '.join(where)} GROUP BY {keys})"
        )
        try:
            return con.sql(sql).to_arrow_table()
        except Exception as exc:
            raise _wrap(exc, [view.name]) from exc


def _wrap(exc: Exception, views: list[str]) -> Exception:
    """DuckDB conversion and binder errors are bad definitions or bad input: a 400."""
    import duckdb

    first = str(exc).strip().splitlines()[0]
    if isinstance(exc, duckdb.IOException):
        return NotFoundError(f"cannot read the source of {', '.join(views)}: {first}")
    if isinstance(exc, (duckdb.ConversionException, duckdb.BinderException)):
        return InvalidArgumentError(f"feature view(s) {', '.join(views)}: {first}")
    return exc
