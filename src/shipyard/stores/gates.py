"""Quality gates per registered model and the gate reports of its versions.

A model with gates configured lets a version get an alias (or serve in a deployment) only when
the version's latest gate report passed; otherwise the caller must give an override reason,
which goes to the audit log. `require_pass` runs inside the caller's write transaction, so the
check and the alias change commit together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import GateBlockedError
from shipyard.stores import audit
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shipyard.stores.database import Database


@dataclass(frozen=True)
class GateReportRecord:
    id: int
    name: str
    version: int
    passed: bool
    report: dict[str, Any]
    created_at: int
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _report(row: Any) -> GateReportRecord:
    return GateReportRecord(
        id=row.id,
        name=row.name,
        version=row.version,
        passed=bool(row.passed),
        report=row.report,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _latest(conn: Connection, name: str, version: int) -> GateReportRecord | None:
    g = t.gate_reports.c
    row = conn.execute(
        sa.select(t.gate_reports)
        .where(g.name == name, g.version == version)
        .order_by(g.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _report(row)


def require_pass(
    conn: Connection,
    name: str,
    version: int,
    *,
    action: str,
    actor: str,
    override_reason: str | None,
) -> None:
    """Raise GateBlockedError unless `name` has no gates, the version passed them, or the
    caller overrides with a reason (recorded as a `gate.override` audit event)."""
    configured = conn.execute(
        sa.select(t.model_gates.c.config).where(t.model_gates.c.name == name)
    ).scalar()
    if not configured:
        return
    report = _latest(conn, name, version)
    if report is not None and report.passed:
        return
    if report is None:
        why = f"version {version} of '{name}' has no gate report"
        fix = f"run `shipyard gate check {name} {version} --data HOLDOUT --target COLUMN`"
    else:
        failed = [g["name"] for g in report.report.get("gates", []) if not g.get("passed")]
        why = f"version {version} of '{name}' failed its quality gates ({', '.join(failed)})"
        fix = "fix the model, or override with a reason"
    if not override_reason:
        raise GateBlockedError(f"{why}; {action} refused: {fix}", model=name, version=version)
    audit.append(
        conn,
        actor=actor,
        action="gate.override",
        subject_type="model_version",
        subject=f"{name}/{version}",
        before={"gate_report": None if report is None else report.id},
        after={"action": action},
        reason=override_reason,
    )


class GateStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def configure(self, name: str, gates: list[dict[str, Any]], *, actor: str) -> None:
        """Replace the gates of a registered model (an empty list removes them); audited."""
        from shipyard.stores.models import ModelStore

        with self._db.write() as conn:
            ModelStore(self._db)._require_model(conn, name)
            g = t.model_gates.c
            old = conn.execute(sa.select(g.config).where(g.name == name)).scalar()
            if old is not None:
                conn.execute(t.model_gates.delete().where(g.name == name))
            if gates:
                conn.execute(
                    t.model_gates.insert().values(
                        name=name,
                        config=audit.json_safe(gates),
                        updated_at=now_ms(),
                        updated_by=actor,
                    )
                )
            audit.append(
                conn,
                actor=actor,
                action="gates.configure",
                subject_type="model",
                subject=name,
                before={"gates": old},
                after={"gates": gates},
            )

    def config(self, name: str) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            value = conn.execute(
                sa.select(t.model_gates.c.config).where(t.model_gates.c.name == name)
            ).scalar()
        return list(value or [])

    def record_report(
        self, name: str, version: int, *, passed: bool, report: dict[str, Any], actor: str
    ) -> GateReportRecord:
        """Store a gate report with the version (append-only: the latest one counts)."""
        from shipyard.stores.models import ModelStore

        with self._db.write() as conn:
            ModelStore(self._db)._version_record(conn, name, version)
            result = conn.execute(
                t.gate_reports.insert().values(
                    name=name,
                    version=version,
                    passed=passed,
                    report=audit.json_safe(report),
                    created_at=now_ms(),
                    created_by=actor,
                )
            )
            audit.append(
                conn,
                actor=actor,
                action="gates.report",
                subject_type="model_version",
                subject=f"{name}/{version}",
                after={"passed": passed},
            )
            key = result.inserted_primary_key
            assert key is not None
            report_id = key[0]
            row = conn.execute(sa.select(t.gate_reports).where(t.gate_reports.c.id == report_id))
            return _report(row.one())

    def latest_report(self, name: str, version: int) -> GateReportRecord | None:
        with self._db.read() as conn:
            return _latest(conn, name, version)

    def reports(self, name: str, version: int) -> list[GateReportRecord]:
        g = t.gate_reports.c
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(t.gate_reports)
                .where(g.name == name, g.version == version)
                .order_by(g.id.desc())
            ).all()
        return [_report(r) for r in rows]

    def latest_results(self, name: str) -> dict[int, tuple[bool, int]]:
        """Per version of a model: whether its latest gate report passed, and when it was made
        (versions whose gates never ran are absent); one query for the whole model."""
        g = t.gate_reports.c
        newest = (
            sa.select(sa.func.max(g.id)).where(g.name == name).group_by(g.version).scalar_subquery()
        )
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(g.version, g.passed, g.created_at).where(g.id.in_(newest))
            ).all()
        return {r.version: (bool(r.passed), r.created_at) for r in rows}
