"""The run search as SQL text, built and compiled once per shape, and its rows as RunRecords.

A search's statement depends on its shape (`run_search.search_shape`, the keys asked for, a
limit, an offset) and never on its values: every value is a bound parameter. So each shape is
built and compiled once per store, and a search binds its values and hands the text to the
driver: no statement to build, no cache key to walk, nothing to compile. Building a
statement of this size cost more than running it on a thousand runs.

The statement picks the page first (ids and sort values, filtered, ordered, limited) and only
then reads the page's runs with their params, tags and latest metrics, each kind as one JSON
object per run aggregated by the database: the work per run matched is the filter and the
sort, not reading its children.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from shipyard.stores import run_search
from shipyard.stores import schema as t
from shipyard.stores.records import ArtifactRecord, Clause, DatasetRecord, OrderKey, RunRecord

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_KIDS = (
    (t.params, "params", "_params"),
    (t.run_tags, "tags", "_tags"),
    (t.latest_metrics, "metrics", "_metrics"),
)
# Compiled shapes kept per store; past this many the cache starts over (a caller that makes
# shapes without end, e.g. IN lists of every length, costs compilations, never memory).
MAX_SHAPES = 512
# Asking first for the runs where the first order key is set pays when the runs searched
# outnumber the page this many times; else it would often be a second query.
_PRESENT_FIRST_RATIO = 4


@dataclass(frozen=True)
class SearchRequest:
    """One search's arguments (`RunStore.search_runs`)."""

    experiments: Sequence[str] | None = None
    clauses: Sequence[Clause] = ()
    order_by: Sequence[OrderKey] = ()
    limit: int | None = 1000
    offset: int = 0
    after: Sequence[Any] | None = None
    keys: Mapping[str, Sequence[str]] | None = None
    max_keys: int | None = None
    lifecycle: str | None = "active"
    present_first: bool = False  # `run_search.ordered_by`'s

    def shape(self) -> tuple[Any, ...]:
        keys = None
        if self.keys is not None:
            keys = tuple(sorted((kind, len(names)) for kind, names in self.keys.items()))
        core = run_search.search_shape(
            self.experiments, self.clauses, self.order_by, self.after, self.lifecycle
        )
        paged = (self.limit is not None, self.limit is None and self.offset > 0)
        return (core, keys, self.max_keys is not None, paged, self.present_first)

    def values(self) -> dict[str, Any]:
        out = run_search.bound_values(
            self.experiments, self.clauses, self.order_by, self.after, self.lifecycle
        )
        for kind, names in (self.keys or {}).items():
            for j, name in enumerate(names):
                out[f"k{kind}{j}"] = name
        if self.max_keys is not None:
            out["maxk"] = self.max_keys
        if self.limit is not None:
            out["lim"] = self.limit
        if self.limit is not None or self.offset:
            out["off"] = self.offset
        return out


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...] | None  # positional paramstyles: the parameters in order


class SearchStatements:
    """Compiled search statements of one store, by shape."""

    def __init__(self, dialect: str) -> None:
        self._dialect = dialect
        self._compiled: dict[tuple[Any, ...], _Compiled] = {}
        self._lock = threading.Lock()

    def rows(self, conn: Connection, request: SearchRequest) -> list[Any]:
        """The rows `records` reads, in the search's order.

        Ordered by a param, metric or tag over many more runs than a page, the runs where that
        key is set come first (NULLs last); asked for alone, the planner can walk the key's
        index in order and stop at the page's end instead of sorting every run matched. When
        they fill the page, they are the page; else the whole search runs."""
        if self._worth_present_first(conn, request):
            rows = self._run(conn, replace(request, present_first=True))
            if len(rows) == request.limit:
                return rows
        return self._run(conn, request)

    def _worth_present_first(self, conn: Connection, request: SearchRequest) -> bool:
        limit, after = request.limit, request.after
        if (
            limit is None
            or request.offset
            or not request.order_by
            or request.order_by[0].kind == "attributes"
            or (after is not None and (not after or after[0] is None))
        ):
            return False
        scope = SearchRequest(request.experiments, limit=None, lifecycle=None)
        counted = self._compiled_for(("count", scope.shape()), conn, scope, _count_statement)
        (total,) = self._execute(conn, counted, scope.values())[0]
        return int(total) > _PRESENT_FIRST_RATIO * limit

    def _run(self, conn: Connection, request: SearchRequest) -> list[Any]:
        compiled = self._compiled_for(request.shape(), conn, request, search_statement)
        return self._execute(conn, compiled, request.values())

    def _execute(self, conn: Connection, compiled: _Compiled, values: dict[str, Any]) -> list[Any]:
        if compiled.names is None:
            return list(conn.exec_driver_sql(compiled.sql, values).all())
        params = tuple(values[n] for n in compiled.names)
        return list(conn.exec_driver_sql(compiled.sql, params).all())

    def _compiled_for(
        self,
        key: tuple[Any, ...],
        conn: Connection,
        request: SearchRequest,
        build: Callable[[SearchRequest, str], sa.Select[Any]],
    ) -> _Compiled:
        found = self._compiled.get(key)
        if found is not None:
            return found
        compiled = build(request, self._dialect).compile(dialect=conn.dialect)
        if compiled.params != request.values():
            # the statement binds what `SearchRequest.values` names, or the text is not reusable
            raise AssertionError(f"search parameters differ: {compiled.params}")
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise AssertionError("a search parameter is rendered into the text")
        names = tuple(compiled.positiontup or ()) if compiled.positional else None
        found = _Compiled(compiled.string, names)
        with self._lock:
            if len(self._compiled) >= MAX_SHAPES:
                self._compiled.clear()
            self._compiled[key] = found
        return found


def _count_statement(request: SearchRequest, dialect: str) -> sa.Select[Any]:
    """How many runs the search's experiments hold, active or not (one index range)."""
    stmt = sa.select(sa.func.count()).select_from(t.runs)
    if request.experiments:
        e = t.experiments.c
        names = [
            sa.bindparam(f"exp{i}", n, type_=e.name.type) for i, n in enumerate(request.experiments)
        ]
        stmt = stmt.where(t.runs.c.experiment_id.in_(sa.select(e.id).where(e.name.in_(names))))
    return stmt


def search_statement(request: SearchRequest, dialect: str) -> sa.Select[Any]:
    """The page (ids and sort values of the runs matching, in order, limited), then those runs
    with their children, in the same order."""
    page: sa.Select[Any] = sa.select(t.runs.c.id.label("rid"), t.runs.c.start_time.label("st"))
    page = page.select_from(run_search.run_join())
    page = run_search.where(page, request.experiments, request.clauses, request.lifecycle)
    page, keys = run_search.ordered_by(page, request.order_by, request.after, request.present_first)
    page = page.add_columns(*(col.label(f"k{i}") for i, (col, _) in enumerate(keys)))
    if request.limit is not None:
        page = page.limit(sa.bindparam("lim", request.limit, type_=sa.Integer))
    elif request.offset and dialect == "sqlite":
        page = page.limit(sa.literal_column("-1"))  # SQLite takes no OFFSET without a LIMIT
    if request.limit is not None or request.offset:
        page = page.offset(sa.bindparam("off", request.offset, type_=sa.Integer))
    sub = page.subquery("page")
    stmt = sa.select(*run_columns(), *children(dialect, request.keys, request.max_keys))
    stmt = stmt.select_from(
        sub.join(t.runs, t.runs.c.id == sub.c.rid).join(
            t.experiments, t.runs.c.experiment_id == t.experiments.c.id
        )
    )
    for i, (_, descending) in enumerate(keys):
        col = sub.c[f"k{i}"]
        stmt = stmt.order_by((col.desc() if descending else col.asc()).nulls_last())
    return stmt.order_by(sub.c.st.desc(), sub.c.rid)


def children(
    dialect: str,
    keys: Mapping[str, Sequence[str]] | None = None,
    max_keys: int | None = None,
) -> list[sa.Label[Any]]:
    """Params, tags and latest metrics of each run as one JSON object per run, computed by
    the database in the same query (one round trip, one row per run, no IN lists).
    `keys` keeps only the named keys of a kind ("params", "metrics", "tags") it names;
    `max_keys` keeps the first keys (by name) of each kind. Both are bound parameters."""
    agg = sa.func.json_object_agg if dialect == "postgresql" else sa.func.json_group_object
    out = []
    for table, kind, label in _KIDS:
        rows = sa.select(table.c.key, table.c.value).where(table.c.run_id == t.runs.c.id)
        if keys is not None and kind in keys:
            names = [
                sa.bindparam(f"k{kind}{j}", name, type_=table.c.key.type)
                for j, name in enumerate(keys[kind])
            ]
            rows = rows.where(table.c.key.in_(names) if names else sa.false())
        if max_keys is not None:
            # an OFFSET in the text: SQLite's dialect would bind one for every LIMIT
            rows = (
                rows.order_by(table.c.key)
                .limit(sa.bindparam("maxk", max_keys, type_=sa.Integer))
                .offset(sa.literal_column("0"))
            )
        agg_from: sa.FromClause
        if max_keys is None and (keys is None or kind not in keys):
            agg_from, where = table, rows.whereclause
            agg_call = agg(table.c.key, exact(kind, table.c.value, dialect))
        else:
            kept = rows.correlate(t.runs).subquery()
            agg_from, where = kept, None
            agg_call = agg(kept.c.key, exact(kind, kept.c.value, dialect))
        stmt = sa.select(agg_call).select_from(agg_from)
        if where is not None:
            stmt = stmt.where(where)
        out.append(stmt.correlate(t.runs).scalar_subquery().label(label))
    if dialect == "postgresql":
        return out
    # SQLite hands JSON over as text: the three objects as one array, one parse per run
    text = [sa.func.coalesce(col.element, _text("{}")) for col in out]
    whole = _text("[") + text[0] + _text(",") + text[1] + _text(",") + text[2] + _text("]")
    return [whole.label("_kids")]


def _text(value: str) -> sa.ColumnElement[str]:
    """A string written into the SQL text (not a bound parameter), typed so `+` is `||`."""
    return sa.literal_column(f"'{value}'", sa.Text)


def exact(kind: str, value: Any, dialect: str) -> Any:
    """What to aggregate of a `kind` column in a run's JSON object. SQLite's JSON functions
    write a REAL with 15 significant digits (0.30000000000000004 would come back 0.3): its
    finite metrics go in as JSON numbers of 17 digits, which parse back exactly, and ±Inf
    (no JSON number) as the text "Inf" / "-Inf"; NaN is stored as NULL."""
    if kind != "metrics" or dialect == "postgresql":
        return value
    # written into the text, not bound: a search's parameters are only its values
    text = sa.func.printf(sa.literal_column("'%!.17g'"), value)
    finite = value.between(
        sa.literal_column("-1.7976931348623157e308"), sa.literal_column("1.7976931348623157e308")
    )
    return sa.case((value.is_(None), None), (finite, sa.func.json(text)), else_=text)


def run_columns() -> list[sa.ColumnElement[Any]]:
    """The run columns in the order `records` unpacks them (explicit, so a new column in a
    later migration cannot shift them)."""
    c = t.runs.c
    return [
        c.id,
        c.name,
        c.status,
        c.start_time,
        c.end_time,
        c.error,
        c.user,
        c.source,
        c.git_commit,
        c.git_dirty,
        c.environment_digest,
        c.parent_run_id,
        c.lifecycle_stage,
        t.experiments.c.name.label("experiment"),
    ]


def records(
    rows: Iterable[Any],
    datasets: Mapping[str, list[DatasetRecord]],
    artifacts: Mapping[str, list[ArtifactRecord]],
) -> list[RunRecord]:
    """RunRecords of rows of `run_columns()` + `children()`."""
    out = []
    # positional unpacking: Row attribute lookups by name cost more than the query
    for (
        run_id,
        name,
        status,
        start_time,
        end_time,
        error,
        user,
        source,
        git_commit,
        git_dirty,
        env_digest,
        parent,
        stage,
        experiment,
        *kids,
    ) in rows:
        if len(kids) == 1:  # SQLite: [params, tags, metrics] as JSON text
            params, tags, metrics = orjson.loads(kids[0])
            # `exact` writes finite metrics as JSON numbers with a point or an exponent,
            # which load as floats: only a NULL (NaN) or an "Inf" text needs a second look
            if "null" in kids[0] or "Inf" in kids[0]:
                metrics = _floats(metrics)
        else:  # PostgreSQL: decoded by psycopg, integral values as int
            params, tags, metrics = kids[0] or {}, kids[1] or {}, _floats(kids[2] or {})
        out.append(
            RunRecord(
                run_id,
                experiment,
                name,
                status,
                start_time,
                end_time,
                user,
                error,
                source,
                git_commit,
                None if git_dirty is None else bool(git_dirty),  # SQLite's driver gives 0/1
                env_digest,
                parent,
                params,
                metrics,
                tags,
                tuple(datasets.get(run_id, ())),
                tuple(artifacts.get(run_id, ())),
                stage,
            )
        )
    return out


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: math.nan if v is None else float(v) for k, v in metrics.items()}
