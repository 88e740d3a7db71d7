"""Pipeline runs, their step runs and the outputs each step produced (for caching and lineage).

A step run's `cache_key` is a hash of (step name, step code, input digests, params); a later
run with the same key reuses the outputs of the latest FINISHED step run with that key.
`step_outputs` indexes every output digest, so any artifact can be traced to the step run,
code hash and input digests that made it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import NotFoundError
from shipyard.stores import audit
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms

if TYPE_CHECKING:
    from shipyard.stores.database import Database


@dataclass(frozen=True)
class StepRunRecord:
    id: str
    pipeline_run_id: str
    step: str
    status: str
    cache_key: str
    code_hash: str
    inputs: dict[str, str]
    params: dict[str, Any]
    outputs: list[dict[str, Any]]
    seed: int
    run_id: str | None
    cached_from: str | None
    started_at: int
    ended_at: int | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PipelineRunRecord:
    id: str
    name: str
    status: str
    executor: str
    params: dict[str, Any]
    seed: int
    run_id: str | None
    user: str
    started_at: int
    ended_at: int | None
    error: str | None
    steps: list[StepRunRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _step(row: Any) -> StepRunRecord:
    return StepRunRecord(**{c: getattr(row, c) for c in StepRunRecord.__dataclass_fields__})


def _pipeline_run(row: Any, steps: list[StepRunRecord]) -> PipelineRunRecord:
    names = [c for c in PipelineRunRecord.__dataclass_fields__ if c != "steps"]
    return PipelineRunRecord(**{c: getattr(row, c) for c in names}, steps=steps)


class PipelineStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create_run(
        self,
        run_id: str,
        *,
        name: str,
        executor: str,
        params: dict[str, Any],
        seed: int,
        tracking_run_id: str | None,
        user: str,
    ) -> None:
        with self._db.write() as conn:
            conn.execute(
                t.pipeline_runs.insert().values(
                    id=run_id,
                    name=name,
                    status="RUNNING",
                    executor=executor,
                    params=audit.json_safe(params),
                    seed=seed,
                    run_id=tracking_run_id,
                    user=user,
                    started_at=now_ms(),
                )
            )

    def end_run(self, run_id: str, status: str, error: str | None = None) -> None:
        with self._db.write() as conn:
            conn.execute(
                t.pipeline_runs.update()
                .where(t.pipeline_runs.c.id == run_id)
                .values(status=status, error=error, ended_at=now_ms())
            )

    def record_step(self, record: StepRunRecord) -> None:
        """Store a finished (or cached, failed, skipped) step run and index its outputs."""
        values = asdict(record)
        values["params"] = audit.json_safe(values["params"])
        with self._db.write() as conn:
            conn.execute(t.step_runs.insert().values(**values))
            if record.status == "FINISHED":
                seen: set[str] = set()
                for position, out in enumerate(record.outputs):
                    if out["digest"] in seen:
                        continue
                    seen.add(out["digest"])
                    conn.execute(
                        t.step_outputs.insert().values(
                            digest=out["digest"], step_run_id=record.id, position=position
                        )
                    )

    def find_cached(self, cache_key: str) -> StepRunRecord | None:
        """The latest step run that computed outputs for this key, if any."""
        s = t.step_runs.c
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(t.step_runs)
                .where(s.cache_key == cache_key, s.status == "FINISHED")
                .order_by(s.started_at.desc())
                .limit(1)
            ).first()
        return None if row is None else _step(row)

    def get_run(self, run_id: str) -> PipelineRunRecord:
        p, s = t.pipeline_runs.c, t.step_runs.c
        with self._db.read() as conn:
            row = conn.execute(sa.select(t.pipeline_runs).where(p.id == run_id)).first()
            if row is None:
                matches = conn.execute(
                    sa.select(p.id).where(p.id.like(f"{run_id}%")).limit(2)
                ).scalars()
                found = list(matches)
                if len(found) != 1:
                    raise NotFoundError(
                        f"pipeline run '{run_id}' not found; list them with "
                        "`shipyard pipeline runs`",
                        kind="pipeline_run",
                        name=run_id,
                    )
                row = conn.execute(sa.select(t.pipeline_runs).where(p.id == found[0])).one()
            steps = conn.execute(
                sa.select(t.step_runs)
                .where(s.pipeline_run_id == row.id)
                .order_by(s.started_at, s.step)
            ).all()
        return _pipeline_run(row, [_step(r) for r in steps])

    def list_runs(self, name: str | None = None, limit: int = 50) -> list[PipelineRunRecord]:
        p = t.pipeline_runs.c
        query = sa.select(t.pipeline_runs).order_by(p.started_at.desc()).limit(limit)
        if name is not None:
            query = query.where(p.name == name)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [_pipeline_run(r, []) for r in rows]

    def lineage(self, digest: str) -> list[StepRunRecord]:
        """The step runs that produced an output digest (a prefix of 8+ characters works)."""
        o, s = t.step_outputs.c, t.step_runs.c
        cond = o.digest == digest if len(digest) == 64 else o.digest.like(f"{digest}%")
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(t.step_runs)
                .join(t.step_outputs, o.step_run_id == s.id)
                .where(cond)
                .order_by(s.started_at)
            ).all()
        return [_step(r) for r in rows]
