"""Runs copied from another tracking store (MLflow), each in one transaction under the id it
had there: the run, its params, tags, every metric point and its dataset inputs are stored
whole or not at all, so an import killed half way leaves no half-written run to fix.

A run is written with a "pending" tag; the importer removes it (`finish`) once the run's
artifacts are copied too, so a restarted import knows which runs still need their files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from shipyard.errors import InvalidArgumentError
from shipyard.stores import audit
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms
from shipyard.stores.database import dialect_insert
from shipyard.stores.records import DatasetRecord, MetricPoint

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shipyard.stores.database import Database

_CHUNK = 500  # bounded IN lists and insert batches


@dataclass(frozen=True)
class CopiedRun:
    """A run as the importer writes it (its fields already in shipyard's terms)."""

    id: str
    experiment: str
    name: str
    user: str
    status: str
    start_time: int
    end_time: int | None
    source: str | None
    git_commit: str | None
    parent_run_id: str | None
    params: Mapping[str, str]
    tags: Mapping[str, str]
    metrics: Sequence[MetricPoint]
    datasets: Sequence[DatasetRecord]


@dataclass(frozen=True)
class CopiedState:
    """A run found here: its status and end time, where it was imported from (None: not an
    import), and whether its files are still to copy."""

    status: str
    end_time: int | None
    imported_from: str | None
    pending: bool


class RunImportStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def ensure_experiment(self, name: str, *, created_at: int, actor: str, origin: str) -> bool:
        """Make the experiment with its original creation time unless one of that name exists
        (audited as a create that says where it came from); True when it was made.
        InvalidArgumentError for a name shipyard refuses (one with '/')."""
        from shipyard.stores.experiments import check_name

        check_name(name, field="name")
        e = t.experiments.c
        with self._db.write() as conn:
            if conn.execute(sa.select(e.id).where(e.name == name)).first() is not None:
                return False
            conn.execute(t.experiments.insert().values(name=name, created_at=created_at))
            audit.append(
                conn,
                actor=actor,
                action="experiment.create",
                subject_type="experiment",
                subject=name,
                after={"name": name, "imported_from": origin},
            )
            return True

    def states(
        self, run_ids: Sequence[str], *, imported_key: str, pending_key: str
    ) -> dict[str, CopiedState]:
        """Which of `run_ids` exist here, each with what an importer compares."""
        r = t.runs.c
        imported, pending = t.run_tags.alias("imported"), t.run_tags.alias("pending")
        joined = t.runs.outerjoin(
            imported, sa.and_(imported.c.run_id == r.id, imported.c.key == imported_key)
        ).outerjoin(pending, sa.and_(pending.c.run_id == r.id, pending.c.key == pending_key))
        out: dict[str, CopiedState] = {}
        with self._db.read() as conn:
            for start in range(0, len(run_ids), _CHUNK):
                rows = conn.execute(
                    sa.select(r.id, r.status, r.end_time, imported.c.value, pending.c.value)
                    .select_from(joined)
                    .where(r.id.in_(list(run_ids[start : start + _CHUNK])))
                )
                for run_id, status, end_time, origin, left in rows:
                    out[run_id] = CopiedState(status, end_time, origin, left is not None)
        return out

    def write_run(self, run: CopiedRun, *, replace: bool = False) -> None:
        """The run and everything in it, in one transaction; the experiment must exist.
        `replace`: the run is here already (an earlier import): its params, tags, metrics and
        dataset inputs are replaced by these (its artifact files stay)."""
        if len(run.id) > 32:
            raise InvalidArgumentError(f"run id '{run.id}' is longer than 32 characters")
        with self._db.write() as conn:
            exp_id = conn.execute(
                sa.select(t.experiments.c.id).where(t.experiments.c.name == run.experiment)
            ).scalar_one()
            row = _run_row(run, int(exp_id))
            if replace:
                for table in (t.params, t.run_tags, t.metrics, t.latest_metrics, t.dataset_inputs):
                    conn.execute(table.delete().where(table.c.run_id == run.id))
                conn.execute(t.runs.update().where(t.runs.c.id == run.id).values(**row))
            else:
                conn.execute(t.runs.insert().values(**row))
            params = [{"run_id": run.id, "key": k, "value": v} for k, v in run.params.items()]
            _insert(conn, t.params, params)
            tags = [{"run_id": run.id, "key": k, "value": v} for k, v in run.tags.items()]
            _insert(conn, t.run_tags, tags)
            _write_metrics(conn, run.id, run.metrics)
            for dataset in run.datasets:
                _write_dataset(conn, run.id, dataset)

    def finish(self, run_id: str, *, pending_key: str, stage: str) -> None:
        """The run is whole: drop its pending tag and give it its lifecycle stage."""
        with self._db.write() as conn:
            conn.execute(
                t.run_tags.delete().where(
                    t.run_tags.c.run_id == run_id, t.run_tags.c.key == pending_key
                )
            )
            conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(lifecycle_stage=stage))


def _run_row(run: CopiedRun, exp_id: int) -> dict[str, object]:
    return {
        "id": run.id,
        "experiment_id": exp_id,
        "name": (run.name or run.id[:8])[:256],
        "status": run.status,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "error": None,
        "user": run.user[:256],
        "source": run.source[:1024] if run.source else None,
        "git_commit": run.git_commit[:64] if run.git_commit else None,
        "git_dirty": None,
        "environment_digest": None,
        "parent_run_id": run.parent_run_id[:32] if run.parent_run_id else None,
        "owner": None,
        "heartbeat_at": None,
        "lifecycle_stage": "active",  # deleted ones are marked by `finish`, after their files
    }


def _insert(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, object]]) -> None:
    for start in range(0, len(rows), _CHUNK):
        conn.execute(table.insert(), rows[start : start + _CHUNK])


def _write_metrics(conn: Connection, run_id: str, points: Sequence[MetricPoint]) -> None:
    rows: list[dict[str, object]] = []
    latest: dict[str, MetricPoint] = {}
    for p in points:
        value = None if math.isnan(p.value) else p.value  # NULL is NaN, as in stores/runs.py
        rows.append(
            {
                "run_id": run_id,
                "key": p.key,
                "value": value,
                "step": p.step,
                "timestamp": p.timestamp,
            }
        )
        cur = latest.get(p.key)
        if cur is None or (p.step, p.timestamp) >= (cur.step, cur.timestamp):
            latest[p.key] = p
    _insert(conn, t.metrics, rows)
    _insert(
        conn,
        t.latest_metrics,
        [
            {
                "run_id": run_id,
                "key": p.key,
                "value": None if math.isnan(p.value) else p.value,
                "step": p.step,
                "timestamp": p.timestamp,
            }
            for p in latest.values()
        ],
    )


def _write_dataset(conn: Connection, run_id: str, dataset: DatasetRecord) -> None:
    stmt = dialect_insert(conn, t.datasets).values(
        digest=dataset.digest,
        name=dataset.name,
        schema=dataset.schema,
        rows=dataset.rows,
        profile=dataset.profile,
        created_at=now_ms(),
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["digest"]))
    stmt = dialect_insert(conn, t.dataset_inputs).values(
        run_id=run_id, dataset_digest=dataset.digest, role=dataset.role, name=dataset.name
    )
    conn.execute(stmt.on_conflict_do_nothing())
