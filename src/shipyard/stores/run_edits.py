"""Edits of a run driven from elsewhere (an MLflow client over the REST API): status and end
time, name, lifecycle stage, a tag removed; and the latest point of each metric, with its step
and time, for many runs in one query."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.stores import schema as t
from shipyard.stores.records import MetricPoint
from shipyard.stores.runs import RUN_STATUSES

if TYPE_CHECKING:
    from shipyard.stores.database import Database

STAGES = ("active", "deleted")
_CHUNK = 500  # bounded IN lists


class RunEditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def update(
        self,
        run_id: str,
        *,
        status: str | None = None,
        end_time: int | None = None,
        name: str | None = None,
    ) -> None:
        """Set what is given; a status other than RUNNING without an end time keeps the one
        stored (the caller passes the time the run ended)."""
        if status is not None and status not in RUN_STATUSES:
            raise InvalidArgumentError(
                f"status must be one of {', '.join(RUN_STATUSES)}, not {status!r}", field="status"
            )
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status
        if end_time is not None:
            values["end_time"] = end_time
        if name:
            values["name"] = name[:256]
        self._update(run_id, values)

    def delete_artifacts(self, run_id: str, paths: Sequence[str]) -> int:
        """Remove the run's entries for `paths` (the content-addressed files stay: another
        run or version may hold the same bytes)."""
        with self._db.write() as conn:
            return _delete_artifacts(conn, run_id, paths)

    def set_stage(self, run_id: str, stage: str) -> None:
        if stage not in STAGES:
            raise InvalidArgumentError(f"stage must be one of {STAGES}", field="lifecycle_stage")
        self._update(run_id, {"lifecycle_stage": stage})

    def stage(self, run_id: str) -> str:
        with self._db.read() as conn:
            found = conn.execute(
                sa.select(t.runs.c.lifecycle_stage).where(t.runs.c.id == run_id)
            ).scalar()
        if found is None:
            raise NotFoundError(f"run '{run_id}' not found", kind="run", name=run_id)
        return str(found)

    def _update(self, run_id: str, values: dict[str, Any]) -> None:
        with self._db.write() as conn:
            stmt = t.runs.update().where(t.runs.c.id == run_id)
            if values:
                result = conn.execute(stmt.values(**values))
                found = result.rowcount > 0
            else:
                row = conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first()
                found = row is not None
            if not found:
                raise NotFoundError(f"run '{run_id}' not found", kind="run", name=run_id)

    def delete_tag(self, run_id: str, key: str) -> None:
        """NotFoundError when the run or the tag does not exist."""
        tags = t.run_tags.c
        with self._db.write() as conn:
            result = conn.execute(t.run_tags.delete().where(tags.run_id == run_id, tags.key == key))
            if result.rowcount == 0:
                if conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first():
                    raise NotFoundError(f"run '{run_id}' has no tag '{key}'", field="key")
                raise NotFoundError(f"run '{run_id}' not found", kind="run", name=run_id)

    def latest_metrics(self, run_ids: Sequence[str]) -> dict[str, list[MetricPoint]]:
        """Per run, the latest point of each of its metrics (by step, then time)."""
        lm = t.latest_metrics.c
        out: dict[str, list[MetricPoint]] = {}
        with self._db.read() as conn:
            for start in range(0, len(run_ids), _CHUNK):
                rows = conn.execute(
                    sa.select(lm.run_id, lm.key, lm.value, lm.step, lm.timestamp)
                    .where(lm.run_id.in_(list(run_ids[start : start + _CHUNK])))
                    .order_by(lm.run_id, lm.key)
                )
                for run_id, key, value, step, ts in rows:
                    point = MetricPoint(key, math.nan if value is None else value, step, ts)
                    out.setdefault(run_id, []).append(point)
        return out


def _delete_artifacts(conn: Any, run_id: str, paths: Sequence[str]) -> int:
    deleted = 0
    for start in range(0, len(paths), _CHUNK):
        chunk = list(paths[start : start + _CHUNK])
        done = conn.execute(
            t.run_artifacts.delete().where(
                t.run_artifacts.c.run_id == run_id, t.run_artifacts.c.path.in_(chunk)
            )
        )
        deleted += done.rowcount or 0
    return deleted
