"""Run search in SQL: filter clauses, ordering, keyset pages, and the summary of the columns
(params, metrics, tags) over every run a filter matches.

A page ends with the sort values of its last run; the next page asks for the runs that sort
after them (`after`), so page N costs what page 1 costs (no OFFSET scan) and a run logged
meanwhile neither repeats nor hides one. The order is always total: the caller's keys (NULLs
last), then newest start_time, then id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from shipyard.errors import InvalidArgumentError
from shipyard.stores import schema as t
from shipyard.stores.records import Clause, OrderKey

ATTRIBUTES: dict[str, sa.ColumnElement[Any]] = {
    "id": t.runs.c.id,
    "run_id": t.runs.c.id,
    "name": t.runs.c.name,
    "run_name": t.runs.c.name,
    "status": t.runs.c.status,
    "start_time": t.runs.c.start_time,
    "end_time": t.runs.c.end_time,
    "user": t.runs.c.user,
    "git_commit": t.runs.c.git_commit,
    "experiment": t.experiments.c.name,
}
_KEYED = {"metrics": t.latest_metrics, "params": t.params, "tags": t.run_tags}


def _bind(name: str, value: Any, col: Any) -> sa.BindParameter[Any]:
    """A parameter bound to `value`, typed like the column it meets (as a literal would be)."""
    return sa.bindparam(name, value, type_=col.type)


def search_shape(
    experiments: Sequence[str] | None,
    clauses: Sequence[Clause],
    order_by: Sequence[OrderKey],
    after: Sequence[Any] | None,
    lifecycle: str | None,
) -> tuple[Any, ...]:
    """What the text of `where` + `ordered`'s statement depends on: how many experiments,
    each clause's kind, operator, number of values and (attributes) column, each order key's
    kind, direction and (attributes) column, which page-token values are NULL. Never the
    values themselves, nor the keys of params, metrics and tags: those are bound."""
    return (
        len(experiments or ()),
        tuple(
            (c.kind, c.key if c.kind == "attributes" else None, c.op, len(_clause_values(c)))
            for c in clauses
        ),
        tuple((k.kind, k.key if k.kind == "attributes" else None, k.descending) for k in order_by),
        None if after is None else tuple(v is None for v in after),
        lifecycle is not None,
    )


def bound_values(
    experiments: Sequence[str] | None,
    clauses: Sequence[Clause],
    order_by: Sequence[OrderKey],
    after: Sequence[Any] | None,
    lifecycle: str | None,
) -> dict[str, Any]:
    """The values of the parameters `where` and `ordered` bind, by name."""
    out: dict[str, Any] = {}
    if lifecycle is not None:
        out["stage"] = lifecycle
    for i, name in enumerate(experiments or ()):
        out[f"exp{i}"] = name
    for i, clause in enumerate(clauses):
        if clause.kind != "attributes":
            out[f"c{i}k"] = clause.key
        for j, value in enumerate(_clause_values(clause)):
            out[f"c{i}v{j}"] = value
    for i, key in enumerate(order_by):
        if key.kind != "attributes":
            out[f"o{i}k"] = key.key
    for i, value in enumerate(after or ()):
        if value is not None:
            out[f"a{i}"] = value
    return out


def run_join() -> sa.FromClause:
    return t.runs.join(t.experiments, t.runs.c.experiment_id == t.experiments.c.id)


def where(
    stmt: sa.Select[Any],
    experiments: Sequence[str] | None,
    clauses: Sequence[Clause],
    lifecycle: str | None = "active",
) -> sa.Select[Any]:
    """`stmt` (over `run_join()`) narrowed to the experiments, the filter's clauses and the
    lifecycle stage (None: any; runs an MLflow client deleted are "deleted"). Every value is
    a bound parameter named as `bound_values` names it, so the statement's text depends only
    on the search's shape (`search_shape`) and can be compiled once per shape."""
    if lifecycle is not None:
        stmt = stmt.where(
            t.runs.c.lifecycle_stage == _bind("stage", lifecycle, t.runs.c.lifecycle_stage)
        )
    if experiments:
        names = t.experiments.c.name
        stmt = stmt.where(
            names.in_([_bind(f"exp{i}", e, names) for i, e in enumerate(experiments)])
        )
    for i, clause in enumerate(clauses):
        stmt = stmt.where(_clause_to_sql(clause, i))
    return stmt


def ordered(
    stmt: sa.Select[Any], order_by: Sequence[OrderKey], after: Sequence[Any] | None = None
) -> sa.Select[Any]:
    """`stmt` in the total order (the keys NULLs last, newest start_time, id), starting after
    the run whose sort values are `after` (one per key, then its start_time and id)."""
    return ordered_by(stmt, order_by, after)[0]


def ordered_by(
    stmt: sa.Select[Any],
    order_by: Sequence[OrderKey],
    after: Sequence[Any] | None = None,
    present_first: bool = False,
) -> tuple[sa.Select[Any], list[tuple[sa.ColumnElement[Any], bool]]]:
    """`ordered`, and the column and direction of each of the caller's keys. `present_first`:
    only the runs whose first key (a param, metric or tag) is set and not NULL, which sort
    before all others (NULLs last): joined, not outer-joined, so the planner may walk that
    key's index in order and stop at the page's end."""
    keys: list[tuple[sa.ColumnElement[Any], bool]] = []
    for i, key in enumerate(order_by):
        stmt, col = _order_column(stmt, key, i, present_first and i == 0)
        keys.append((col, key.descending))
        stmt = stmt.order_by((col.desc() if key.descending else col.asc()).nulls_last())
    stmt = stmt.order_by(t.runs.c.start_time.desc(), t.runs.c.id)
    if after is not None:
        total = [*keys, (t.runs.c.start_time, True), (t.runs.c.id, False)]
        if len(after) != len(total):
            raise InvalidArgumentError(
                "page_token does not belong to this order_by; ask for the first page again",
                field="page_token",
            )
        stmt = stmt.where(_after(total, after))
    return stmt, keys


def _after(keys: Sequence[tuple[sa.ColumnElement[Any], bool]], values: Sequence[Any]) -> Any:
    """Rows sorting strictly after `values` in the order of `keys` (NULLs last)."""
    ors = []
    bound = [
        None if v is None else _bind(f"a{i}", v, c)
        for i, ((c, _), v) in enumerate(zip(keys, values, strict=True))
    ]
    for i, (col, descending) in enumerate(keys):
        value = bound[i]
        if value is None:
            continue  # nothing sorts after NULL in this key: only ties on it go on
        beyond = col < value if descending else col > value
        same = [
            c.is_(None) if v is None else c == v
            for (c, _), v in zip(keys[:i], bound[:i], strict=True)
        ]
        ors.append(sa.and_(*same, sa.or_(beyond, col.is_(None))))
    return sa.or_(*ors) if ors else sa.false()


def sort_values(run: Any, order_by: Sequence[OrderKey]) -> list[Any]:
    """The sort values of a loaded run (a RunRecord), as `ordered(after=…)` takes them."""
    out: list[Any] = []
    for key in order_by:
        if key.kind == "attributes":
            value = getattr(run, "id" if key.key == "run_id" else key.key.removeprefix("run_"))
        else:
            value = getattr(run, key.kind).get(key.key)
        if isinstance(value, float) and value != value:  # NaN is stored as NULL
            value = None
        out.append(value)
    return [*out, run.start_time, run.id]


def column_summary(
    conn: Any, experiments: Sequence[str] | None, clauses: Sequence[Clause]
) -> dict[str, Any]:
    """Over every run the filter matches: how many there are, and per param and tag key the
    number of runs having it and of distinct values; per metric key the runs having it and
    the min and max of its latest values."""
    runs = where(sa.select(t.runs.c.id).select_from(run_join()), experiments, clauses)
    total = conn.execute(sa.select(sa.func.count()).select_from(runs.subquery())).scalar_one()
    ids = runs.scalar_subquery()
    out: dict[str, Any] = {"runs": int(total)}
    for kind in ("params", "tags"):
        c = _KEYED[kind].c
        rows = conn.execute(
            sa.select(c.key, sa.func.count(), sa.func.count(sa.distinct(c.value)))
            .where(c.run_id.in_(ids))
            .group_by(c.key)
            .order_by(c.key)
        )
        out[kind] = [{"key": k, "runs": n, "distinct": d} for k, n, d in rows]
    m = t.latest_metrics.c
    rows = conn.execute(
        sa.select(m.key, sa.func.count(), sa.func.min(m.value), sa.func.max(m.value))
        .where(m.run_id.in_(ids))
        .group_by(m.key)
        .order_by(m.key)
    )
    out["metrics"] = [{"key": k, "runs": n, "min": lo, "max": hi} for k, n, lo, hi in rows]
    return out


def _compare(col: Any, clause: Clause, i: int) -> sa.ColumnElement[bool]:
    """`col <op> value(s)` with the values bound as `bound_values` names them."""
    op = clause.op
    values = [_bind(f"c{i}v{j}", v, col) for j, v in enumerate(_clause_values(clause))]
    value = values[0] if values else None
    if op in ("IN", "NOT IN"):
        return col.in_(values) if op == "IN" else col.not_in(values)  # type: ignore[no-any-return]
    if op == "=":
        return col == value  # type: ignore[no-any-return]
    if op == "!=":
        return col != value  # type: ignore[no-any-return]
    if op == ">":
        return col > value  # type: ignore[no-any-return]
    if op == ">=":
        return col >= value  # type: ignore[no-any-return]
    if op == "<":
        return col < value  # type: ignore[no-any-return]
    if op == "<=":
        return col <= value  # type: ignore[no-any-return]
    if op == "LIKE":
        return col.like(value)  # type: ignore[no-any-return]
    if op == "ILIKE":
        return sa.func.lower(col).like(value)
    raise InvalidArgumentError(f"unknown comparison operator {op!r}")


def _clause_values(clause: Clause) -> list[Any]:
    if clause.op in ("IN", "NOT IN"):
        return list(clause.value)
    if clause.op == "ILIKE":
        return [str(clause.value).lower()]
    return [clause.value]


def _clause_to_sql(clause: Clause, i: int) -> sa.ColumnElement[bool]:
    if clause.kind == "attributes":
        col = ATTRIBUTES.get(clause.key)
        if col is None:
            raise InvalidArgumentError(
                f"unknown run attribute '{clause.key}'; known: {', '.join(sorted(ATTRIBUTES))}"
            )
        return _compare(col, clause, i)
    table = _KEYED[clause.kind]
    return sa.exists().where(
        table.c.run_id == t.runs.c.id,
        table.c.key == _bind(f"c{i}k", clause.key, table.c.key),
        _compare(table.c.value, clause, i),
    )


def _order_column(
    stmt: sa.Select[Any], key: OrderKey, i: int, present: bool = False
) -> tuple[sa.Select[Any], sa.ColumnElement[Any]]:
    if key.kind == "attributes":
        col = ATTRIBUTES.get(key.key)
        if col is None:
            raise InvalidArgumentError(f"cannot order by unknown attribute '{key.key}'")
        return stmt, col
    alias = _KEYED[key.kind].alias(f"order_{i}")
    on_key = alias.c.key == _bind(f"o{i}k", key.key, alias.c.key)
    if present:
        stmt = stmt.join(alias, sa.and_(alias.c.run_id == t.runs.c.id, on_key))
        return stmt.where(alias.c.value.is_not(None)), alias.c.value
    stmt = stmt.outerjoin(alias, sa.and_(alias.c.run_id == t.runs.c.id, on_key))
    return stmt, alias.c.value


def group_summary(
    conn: Any,
    experiments: Sequence[str] | None,
    clauses: Sequence[Clause],
    by: OrderKey,
    metric: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The runs matching, grouped by one param, tag or attribute's value (NULL: not set),
    largest groups first: per group the run count and, with `metric`, the min, mean and max
    of its latest values."""
    runs = where(sa.select(t.runs.c.id.label("rid")).select_from(run_join()), experiments, clauses)
    matched = runs.subquery()
    stmt = sa.select().select_from(matched.join(t.runs, t.runs.c.id == matched.c.rid))
    if by.kind == "attributes":
        if by.key not in ATTRIBUTES or by.key == "experiment":
            raise InvalidArgumentError(f"cannot group by attribute '{by.key}'", field="by")
        value: sa.ColumnElement[Any] = ATTRIBUTES[by.key]
    else:
        alias = _KEYED[by.kind].alias("grp")
        stmt = stmt.outerjoin(alias, sa.and_(alias.c.run_id == t.runs.c.id, alias.c.key == by.key))
        value = alias.c.value
    cols: list[Any] = [value.label("value"), sa.func.count().label("runs")]
    if metric is not None:
        m = t.latest_metrics.alias("grp_metric")
        stmt = stmt.outerjoin(m, sa.and_(m.c.run_id == t.runs.c.id, m.c.key == metric))
        cols += [sa.func.min(m.c.value), sa.func.avg(m.c.value), sa.func.max(m.c.value)]
    stmt = stmt.add_columns(*cols).group_by(value).order_by(sa.func.count().desc(), value)
    out = []
    for row in conn.execute(stmt.limit(limit)):
        item = {"value": row[0], "runs": int(row[1])}
        if metric is not None:
            item.update(min=row[2], mean=row[3], max=row[4])
        out.append(item)
    return out
