"""Experiments as records: list with counts, one by name, rename, delete (audited).

Deleting an experiment removes it with its runs and everything recorded under them (params,
tags, metrics, dataset inputs, run artifact entries) in one transaction. It is refused while
something still points at one of those runs: a registered model version (its lineage), a
pipeline run, a child run in another experiment, or a run still RUNNING. Content-addressed
artifact files are kept: another run, version or pipeline may hold the same bytes.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError
from shipyard.stores import audit, logged_models
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shipyard.stores.database import Database

MAX_NAME = 256
STAGES = ("active", "deleted")
_RUN_TABLES = (t.params, t.run_tags, t.metrics, t.latest_metrics, t.run_artifacts)


@dataclass(frozen=True)
class ExperimentRecord:
    id: int
    name: str
    created_at: int
    runs: int
    last_run_at: int | None
    statuses: dict[str, int]
    lifecycle_stage: str = "active"  # "deleted": soft-deleted by an MLflow client
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DeletedExperiment:
    name: str
    runs: int


class ExperimentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def list(self) -> builtins.list[ExperimentRecord]:
        with self._db.read() as conn:
            return self._records(conn, None)

    def get(self, name: str) -> ExperimentRecord:
        with self._db.read() as conn:
            found = self._records(conn, name)
            if not found:
                raise self._not_found(conn, name)
            return found[0]

    def rename(self, name: str, new_name: str, *, actor: str) -> ExperimentRecord:
        check_name(new_name)
        e = t.experiments.c
        with self._db.write() as conn:
            exp_id = self._require(conn, name)
            if new_name != name:
                taken = conn.execute(sa.select(e.id).where(e.name == new_name)).first()
                if taken is not None:
                    raise AlreadyExistsError(
                        f"experiment '{new_name}' already exists", field="new_name"
                    )
                conn.execute(t.experiments.update().where(e.id == exp_id).values(name=new_name))
                audit.append(
                    conn,
                    actor=actor,
                    action="experiment.rename",
                    subject_type="experiment",
                    subject=new_name,
                    before={"name": name},
                    after={"name": new_name},
                )
            return self._records(conn, new_name)[0]

    def delete(self, name: str, *, actor: str, reason: str | None = None) -> DeletedExperiment:
        """Delete the experiment and its runs, or raise ConflictError naming what uses them."""
        with self._db.write() as conn:
            exp_id = self._require(conn, name)
            run_ids = list(
                conn.execute(
                    sa.select(t.runs.c.id).where(t.runs.c.experiment_id == exp_id)
                ).scalars()
            )
            _refuse_if_used(conn, name, exp_id, run_ids)
            for start in range(0, len(run_ids), 500):  # bounded IN lists
                chunk = run_ids[start : start + 500]
                for table in (*_RUN_TABLES, t.dataset_inputs):
                    conn.execute(table.delete().where(table.c.run_id.in_(chunk)))
                conn.execute(t.runs.delete().where(t.runs.c.id.in_(chunk)))
            logged_models.delete_for_experiment(conn, exp_id)
            conn.execute(
                t.experiment_tags.delete().where(t.experiment_tags.c.experiment_id == exp_id)
            )
            conn.execute(t.experiments.delete().where(t.experiments.c.id == exp_id))
            audit.append(
                conn,
                actor=actor,
                action="experiment.delete",
                subject_type="experiment",
                subject=name,
                before={"name": name, "runs": len(run_ids)},
                after=None,
                reason=reason,
            )
        return DeletedExperiment(name, len(run_ids))

    def by_id(self, exp_id: int) -> ExperimentRecord:
        with self._db.read() as conn:
            found = self._records(conn, None, exp_id)
        if not found:
            raise NotFoundError(f"experiment with id {exp_id} not found", kind="experiment")
        return found[0]

    def create(
        self, name: str, *, actor: str, tags: Mapping[str, str] | None = None
    ) -> ExperimentRecord:
        """A new, empty experiment (audited), with its `tags`; AlreadyExistsError when the
        name is taken, by an active or a deleted one."""
        check_name(name, field="name")
        e = t.experiments.c
        with self._db.write() as conn:
            stage = conn.execute(sa.select(e.lifecycle_stage).where(e.name == name)).scalar()
            if stage is not None:
                extra = " (deleted: restore it or choose another name)" if stage != "active" else ""
                raise AlreadyExistsError(f"experiment '{name}' already exists{extra}", field="name")
            done = conn.execute(t.experiments.insert().values(name=name, created_at=now_ms()))
            if tags:
                exp_id = (done.inserted_primary_key or (None,))[0]
                conn.execute(
                    t.experiment_tags.insert(),
                    [{"experiment_id": exp_id, "key": k, "value": v} for k, v in tags.items()],
                )
            audit.append(
                conn,
                actor=actor,
                action="experiment.create",
                subject_type="experiment",
                subject=name,
                before=None,
                after={"name": name},
            )
            return self._records(conn, name)[0]

    def set_tag(self, name: str, key: str, value: str | None) -> None:
        """Set a tag of the experiment, or remove it (`value` None; NotFoundError if absent)."""
        et = t.experiment_tags.c
        with self._db.write() as conn:
            exp_id = self._require(conn, name)
            where = (et.experiment_id == exp_id) & (et.key == key)
            done = conn.execute(t.experiment_tags.delete().where(where))
            if value is None:
                if not done.rowcount:
                    raise NotFoundError(f"experiment '{name}' has no tag {key!r}", field="key")
                return
            conn.execute(
                t.experiment_tags.insert().values(experiment_id=exp_id, key=key, value=value)
            )

    def set_stage(self, name: str, stage: str, *, actor: str) -> ExperimentRecord:
        """Mark the experiment "deleted" or "active" again (audited); its runs are kept."""
        if stage not in STAGES:
            raise InvalidArgumentError(f"stage must be one of {STAGES}", field="lifecycle_stage")
        e = t.experiments.c
        with self._db.write() as conn:
            exp_id = self._require(conn, name)
            before = conn.execute(sa.select(e.lifecycle_stage).where(e.id == exp_id)).scalar()
            if before != stage:
                conn.execute(
                    t.experiments.update().where(e.id == exp_id).values(lifecycle_stage=stage)
                )
                audit.append(
                    conn,
                    actor=actor,
                    action="experiment.restore" if stage == "active" else "experiment.mark_deleted",
                    subject_type="experiment",
                    subject=name,
                    before={"lifecycle_stage": before},
                    after={"lifecycle_stage": stage},
                )
            return self._records(conn, name)[0]

    # -- internals -----------------------------------------------------------------------------

    def _require(self, conn: Connection, name: str) -> int:
        e = t.experiments.c
        found = conn.execute(sa.select(e.id).where(e.name == name)).scalar()
        if found is None:
            raise self._not_found(conn, name)
        return int(found)

    def _not_found(self, conn: Connection, name: str) -> NotFoundError:
        names = conn.execute(sa.select(t.experiments.c.name)).scalars().all()
        return NotFoundError.for_name("experiment", name, names)

    def _records(
        self, conn: Connection, name: str | None, exp_id: int | None = None
    ) -> builtins.list[ExperimentRecord]:
        e, r = t.experiments.c, t.runs.c
        stmt = sa.select(e.id, e.name, e.created_at, e.lifecycle_stage).order_by(e.id)
        if name is not None:
            stmt = stmt.where(e.name == name)
        if exp_id is not None:
            stmt = stmt.where(e.id == exp_id)
        rows = conn.execute(stmt).all()
        if not rows:
            return []
        counts = conn.execute(
            sa.select(r.experiment_id, r.status, sa.func.count(), sa.func.max(r.start_time))
            .where(r.experiment_id.in_([row.id for row in rows]))
            .group_by(r.experiment_id, r.status)
        ).all()
        statuses: dict[int, dict[str, int]] = {}
        last: dict[int, int] = {}
        tags: dict[int, dict[str, str]] = {}
        et = t.experiment_tags.c
        for exp_id, key, value in conn.execute(
            sa.select(et.experiment_id, et.key, et.value).where(
                et.experiment_id.in_([row.id for row in rows])
            )
        ):
            tags.setdefault(exp_id, {})[key] = value
        for exp_id, status, count, latest in counts:
            statuses.setdefault(exp_id, {})[status] = int(count)
            last[exp_id] = max(last.get(exp_id, 0), int(latest))
        return [
            ExperimentRecord(
                row.id,
                row.name,
                row.created_at,
                sum(statuses.get(row.id, {}).values()),
                last.get(row.id),
                statuses.get(row.id, {}),
                row.lifecycle_stage,
                tags.get(row.id, {}),
            )
            for row in rows
        ]


def check_name(name: str, field: str = "new_name") -> None:
    if not name or not name.strip() or len(name) > MAX_NAME:
        raise InvalidArgumentError(
            f"experiment name must be 1 to {MAX_NAME} characters, not {len(name)}",
            field=field,
        )
    if "/" in name or any(ord(c) < 32 or c == "\x7f" for c in name):
        raise InvalidArgumentError(
            f"experiment name {name!r} holds '/' or a control character: it appears in URLs "
            "and on one line of a listing",
            field=field,
        )


def _refuse_if_used(conn: Connection, name: str, exp_id: int, run_ids: list[str]) -> None:
    """ConflictError naming the first things that still need the experiment's runs."""
    if not run_ids:
        return
    mv, r = t.model_versions.c, t.runs.c
    blockers: list[str] = []
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start : start + 500]
        versions = conn.execute(
            sa.select(mv.name, mv.version).where(mv.run_id.in_(chunk)).order_by(mv.name, mv.version)
        ).all()
        blockers += [f"model version {v.name}/{v.version} came from it" for v in versions]
        running = conn.execute(
            sa.select(r.id).where(r.id.in_(chunk), r.status == "RUNNING")
        ).scalars()
        blockers += [f"run {rid[:8]} (still RUNNING)" for rid in running]
        children = conn.execute(
            sa.select(r.id).where(r.parent_run_id.in_(chunk), r.experiment_id != exp_id)
        ).scalars()
        blockers += [f"child run {rid[:8]} of another experiment" for rid in children]
        for table in (t.pipeline_runs, t.step_runs):
            ids = conn.execute(sa.select(table.c.id).where(table.c.run_id.in_(chunk))).scalars()
            blockers += [f"pipeline record {pid[:8]}" for pid in ids]
    if blockers:
        shown = ", ".join(blockers[:5]) + (f" and {len(blockers) - 5} more" if blockers[5:] else "")
        raise ConflictError(
            f"experiment '{name}' is in use: {shown}; delete or finish those first (a model "
            "version's source run is its lineage)",
            field="name",
        )
