"""What a killed process leaves behind, in SQL: runs still RUNNING and ONNX conversions still
pending. Runs carry their owner and a heartbeat; a pending conversion is claimed by one process
at a time with a conditional UPDATE (a lease renewed by heartbeats), so two replicas never
convert the same version. The same statements on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from shipyard.stores import audit
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms

if TYPE_CHECKING:
    from shipyard.stores.database import Database


@dataclass(frozen=True)
class RunningRun:
    id: str
    experiment_id: int
    name: str
    owner: str | None
    start_time: int
    last_seen: int  # the newest of start, heartbeat and metric timestamps (epoch ms)


@dataclass(frozen=True)
class PendingConversion:
    name: str
    version: int
    artifact_digest: str
    claimed_by: str | None
    claimed_at: int | None
    attempts: int


class RecoveryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- runs ------------------------------------------------------------------------------------

    def heartbeat_runs(self, run_ids: Sequence[str], *, owner: str) -> int:
        """Renew the heartbeat of the owner's runs that are still RUNNING."""
        if not run_ids:
            return 0
        c = t.runs.c
        with self._db.write() as conn:
            return conn.execute(
                t.runs.update()
                .where(c.id.in_(list(run_ids)), c.owner == owner, c.status == "RUNNING")
                .values(heartbeat_at=now_ms())
            ).rowcount

    def running_runs(self) -> list[RunningRun]:
        c, lm = t.runs.c, t.latest_metrics.c
        last_metric = (
            sa.select(sa.func.max(lm.timestamp))
            .where(lm.run_id == c.id)
            .correlate(t.runs)
            .scalar_subquery()
        )
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(
                    c.id,
                    c.experiment_id,
                    c.name,
                    c.owner,
                    c.start_time,
                    c.heartbeat_at,
                    last_metric,
                )
                .where(c.status == "RUNNING")
                .order_by(c.start_time)
            ).all()
        return [
            RunningRun(r[0], r[1], r[2], r[3], r[4], max(x for x in (r[4], r[5], r[6]) if x))
            for r in rows
        ]

    def fail_run(self, run: RunningRun, *, reason: str) -> bool:
        """Mark a run FAILED if it is still RUNNING and nothing about it changed since it was
        read (same owner, no newer heartbeat): a run that came back to life is left alone."""
        c = t.runs.c
        seen = sa.or_(c.heartbeat_at.is_(None), c.heartbeat_at <= run.last_seen)
        owner = c.owner.is_(None) if run.owner is None else c.owner == run.owner
        with self._db.write() as conn:
            return bool(
                conn.execute(
                    t.runs.update()
                    .where(c.id == run.id, c.status == "RUNNING", owner, seen)
                    .values(status="FAILED", end_time=now_ms(), error=reason)
                ).rowcount
            )

    # -- ONNX conversions ------------------------------------------------------------------------

    def pending_conversions(self) -> list[PendingConversion]:
        mv = t.model_versions.c
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(
                    mv.name,
                    mv.version,
                    mv.artifact_digest,
                    mv.onnx_claimed_by,
                    mv.onnx_claimed_at,
                    mv.onnx_attempts,
                )
                .where(mv.onnx_status == "pending")
                .order_by(mv.created_at)
            ).all()
        return [PendingConversion(*r) for r in rows]

    def claim_conversion(
        self,
        name: str,
        version: int,
        *,
        owner: str,
        lease_seconds: float,
        take_from: str | None = None,
    ) -> bool:
        """Claim a pending conversion for `owner`: it wins if nobody holds it, the holder's
        lease ran out, or the holder is `take_from` (a process found dead) still. One UPDATE,
        so of two processes claiming at once exactly one wins."""
        mv = t.model_versions.c
        now = now_ms()
        free = [mv.onnx_claimed_by.is_(None), mv.onnx_claimed_at < now - int(lease_seconds * 1000)]
        if take_from is not None:
            free.append(mv.onnx_claimed_by == take_from)
        with self._db.write() as conn:
            return bool(
                conn.execute(
                    t.model_versions.update()
                    .where(
                        mv.name == name,
                        mv.version == version,
                        mv.onnx_status == "pending",
                        sa.or_(*free),
                    )
                    .values(
                        onnx_claimed_by=owner,
                        onnx_claimed_at=now,
                        onnx_attempts=mv.onnx_attempts + 1,
                    )
                ).rowcount
            )

    def heartbeat_conversions(self, keys: Sequence[tuple[str, int]], *, owner: str) -> int:
        """Renew the leases `owner` holds on these versions."""
        if not keys:
            return 0
        mv = t.model_versions.c
        which = sa.or_(*(sa.and_(mv.name == n, mv.version == v) for n, v in keys))
        with self._db.write() as conn:
            return conn.execute(
                t.model_versions.update()
                .where(which, mv.onnx_claimed_by == owner, mv.onnx_status == "pending")
                .values(onnx_claimed_at=now_ms())
            ).rowcount

    def release_conversion(self, name: str, version: int, *, owner: str, failed: bool) -> None:
        """Give a claim back unfinished (the next start-up or doctor resumes it). An attempt
        that did not fail (the process is shutting down) does not count towards giving up."""
        mv = t.model_versions.c
        attempts = (
            mv.onnx_attempts
            if failed
            else sa.case((mv.onnx_attempts > 0, mv.onnx_attempts - 1), else_=0)
        )
        with self._db.write() as conn:
            conn.execute(
                t.model_versions.update()
                .where(mv.name == name, mv.version == version, mv.onnx_claimed_by == owner)
                .values(onnx_claimed_by=None, onnx_claimed_at=None, onnx_attempts=attempts)
            )

    def fail_conversion(self, pending: PendingConversion, *, detail: str, actor: str) -> bool:
        """Give up on a conversion that keeps failing: `failed`, with the reason, audited —
        only if it is still pending under the claim that was read."""
        mv = t.model_versions.c
        held = (
            mv.onnx_claimed_by.is_(None)
            if pending.claimed_by is None
            else mv.onnx_claimed_by == pending.claimed_by
        )
        with self._db.write() as conn:
            done = conn.execute(
                t.model_versions.update()
                .where(
                    mv.name == pending.name,
                    mv.version == pending.version,
                    mv.onnx_status == "pending",
                    held,
                )
                .values(
                    onnx_status="failed",
                    onnx_detail=detail,
                    onnx_claimed_by=None,
                    onnx_claimed_at=None,
                )
            ).rowcount
            if done:
                audit.append(
                    conn,
                    actor=actor,
                    action="version.convert",
                    subject_type="model_version",
                    subject=f"{pending.name}/{pending.version}",
                    before={"onnx": "pending"},
                    after={"onnx": "failed", "detail": detail},
                )
            return bool(done)
