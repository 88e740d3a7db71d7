"""One metric of one run as a chart draws it: the points in a step range, or, when there are
more than a chart can show, min/max buckets computed by the database.

    series = metric_series(conn, run_id, "loss", max_points=500, min_step=0, max_step=None)

Downsampling splits the step range into `max_points // 2` buckets of equal width and keeps, per
bucket, its lowest and its highest point: a one-step spike stays in the answer however many
points surround it. Both queries walk `ix_metrics_run_key_step` (run, key, step); the second
ranks each bucket's points with window functions (SQLite ≥ 3.25 and PostgreSQL alike), so only
the kept rows leave the database.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.stores import schema as t
from shipyard.stores.records import MetricPoint, MetricSeries

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def metric_series(
    conn: Connection,
    run_id: str,
    key: str,
    *,
    max_points: int | None = None,
    min_step: int | None = None,
    max_step: int | None = None,
) -> MetricSeries:
    """The points of `key` with `min_step <= step <= max_step` (bounds optional), by step then
    time; at most `max_points` of them (min/max per bucket) when more fall in the range."""
    m = t.metrics.c
    where = _in_range(run_id, key, min_step, max_step)
    total, lo, hi = conn.execute(
        sa.select(sa.func.count(), sa.func.min(m.step), sa.func.max(m.step)).where(*where)
    ).one()
    total = int(total or 0)
    if total == 0:
        return MetricSeries(key, (), total=0, min_step=None, max_step=None, downsampled=False)
    if max_points is None or total <= max_points:
        rows = conn.execute(
            sa.select(m.value, m.step, m.timestamp)
            .where(*where)
            .order_by(m.step, m.timestamp, m.id)
        )
        points = tuple(_point(key, r) for r in rows)
        return MetricSeries(key, points, total=total, min_step=lo, max_step=hi, downsampled=False)
    buckets = max(1, max_points // 2)
    width = max(1, -(-(int(hi) - int(lo) + 1) // buckets))  # ceil: at most `buckets` buckets
    rows = conn.execute(_bucketed(where, int(lo), width))
    points = tuple(_point(key, r) for r in rows)
    return MetricSeries(key, points, total=total, min_step=lo, max_step=hi, downsampled=True)


def _in_range(
    run_id: str, key: str, min_step: int | None, max_step: int | None
) -> list[sa.ColumnElement[bool]]:
    m = t.metrics.c
    where = [m.run_id == run_id, m.key == key]
    if min_step is not None:
        where.append(m.step >= min_step)
    if max_step is not None:
        where.append(m.step <= max_step)
    return where


def _bucketed(where: list[sa.ColumnElement[bool]], lo: int, width: int) -> sa.Select[Any]:
    """Per bucket of `width` steps from `lo`, the row of its lowest value and the row of its
    highest (NaN, stored as NULL, ranks after every number in both directions, so it is kept
    only in a bucket of nothing else). Steps are integers: `//` is integer division."""
    m = t.metrics.c
    bucket = (m.step - sa.literal(lo, sa.BigInteger)) // sa.literal(width, sa.BigInteger)
    ranked = (
        sa.select(
            m.value,
            m.step,
            m.timestamp,
            m.id,
            sa.func.row_number()
            .over(partition_by=bucket, order_by=(m.value.asc().nulls_last(), m.step, m.id))
            .label("low"),
            sa.func.row_number()
            .over(partition_by=bucket, order_by=(m.value.desc().nulls_last(), m.step, m.id))
            .label("high"),
        )
        .where(*where)
        .subquery("ranked")
    )
    r = ranked.c
    return (
        sa.select(r.value, r.step, r.timestamp)
        .where(sa.or_(r.low == 1, r.high == 1))
        .order_by(r.step, r.timestamp, r.id)
    )


def _point(key: str, row: Any) -> MetricPoint:
    value, step, timestamp = row
    return MetricPoint(key, math.nan if value is None else value, step, timestamp)
