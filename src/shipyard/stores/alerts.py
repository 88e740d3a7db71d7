"""Alert rules per endpoint, their state (ok → pending → firing; unknown when the metric could
not be computed) and fired/resolved events."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import AlreadyExistsError, NotFoundError
from shipyard.stores import audit
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms

if TYPE_CHECKING:
    from shipyard.stores.database import Database


@dataclass(frozen=True)
class AlertRule:
    id: int
    endpoint: str
    name: str
    metric: str
    op: str
    threshold: float
    for_windows: int
    webhook: str | None
    command: str | None
    state: str
    breaches: int
    created_at: int
    command_mac: str | None = None

    @property
    def condition(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "condition": self.condition}
        out.pop("command_mac")
        return out


@dataclass(frozen=True)
class AlertEvent:
    id: int
    rule_id: int
    endpoint: str
    rule: str
    ts: int
    kind: str
    value: float | None
    cause: Any
    action: Any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AlertStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_rule(
        self,
        endpoint: str,
        name: str,
        *,
        metric: str,
        op: str,
        threshold: float,
        for_windows: int,
        webhook: str | None,
        command: str | None,
        actor: str,
        command_mac: str | None = None,
    ) -> AlertRule:
        r = t.alert_rules.c
        with self._db.write() as conn:
            exists = conn.execute(
                sa.select(r.id).where(r.endpoint == endpoint, r.name == name)
            ).first()
            if exists is not None:
                raise AlreadyExistsError(f"endpoint '{endpoint}' already has an alert '{name}'")
            result = conn.execute(
                t.alert_rules.insert().values(
                    endpoint=endpoint,
                    name=name,
                    metric=metric,
                    op=op,
                    threshold=threshold,
                    for_windows=for_windows,
                    webhook=webhook,
                    command=command,
                    command_mac=command_mac,
                    state="ok",
                    breaches=0,
                    created_at=now_ms(),
                )
            )
            rule_id = result.inserted_primary_key[0]  # type: ignore[index]
            audit.append(
                conn,
                actor=actor,
                action="alert.rule.add",
                subject_type="endpoint",
                subject=endpoint,
                after={
                    "alert": name,
                    "condition": f"{metric} {op} {threshold:g}",
                    "for": for_windows,
                    "webhook": webhook,
                    "command": command,
                },
            )
        return self.get(int(rule_id))

    def get(self, rule_id: int) -> AlertRule:
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(t.alert_rules).where(t.alert_rules.c.id == rule_id)
            ).first()
        if row is None:
            raise NotFoundError(f"alert rule {rule_id} not found")
        return AlertRule(*row)

    def rules(self, endpoint: str | None = None) -> list[AlertRule]:
        stmt = sa.select(t.alert_rules).order_by(t.alert_rules.c.endpoint, t.alert_rules.c.name)
        if endpoint is not None:
            stmt = stmt.where(t.alert_rules.c.endpoint == endpoint)
        with self._db.read() as conn:
            return [AlertRule(*row) for row in conn.execute(stmt)]

    def remove_rule(self, endpoint: str, name: str, *, actor: str) -> None:
        r = t.alert_rules.c
        with self._db.write() as conn:
            row = conn.execute(
                sa.select(r.id).where(r.endpoint == endpoint, r.name == name)
            ).first()
            if row is None:
                names = (
                    conn.execute(sa.select(r.name).where(r.endpoint == endpoint)).scalars().all()
                )
                raise NotFoundError.for_name(f"alert of endpoint '{endpoint}'", name, names)
            conn.execute(t.alert_events.delete().where(t.alert_events.c.rule_id == row.id))
            conn.execute(t.alert_rules.delete().where(r.id == row.id))
            audit.append(
                conn,
                actor=actor,
                action="alert.rule.remove",
                subject_type="endpoint",
                subject=endpoint,
                before={"alert": name},
            )

    def set_state(self, rule_id: int, state: str, breaches: int) -> None:
        with self._db.write() as conn:
            conn.execute(
                t.alert_rules.update()
                .where(t.alert_rules.c.id == rule_id)
                .values(state=state, breaches=breaches)
            )

    def record(
        self,
        rule: AlertRule,
        kind: str,
        *,
        value: float | None,
        cause: Any,
        action: Any,
        actor: str,
    ) -> None:
        """An event and its audit entry, together."""
        with self._db.write() as conn:
            conn.execute(
                t.alert_events.insert().values(
                    rule_id=rule.id, ts=now_ms(), kind=kind, value=value, cause=cause, action=action
                )
            )
            audit.append(
                conn,
                actor=actor,
                action=f"alert.{kind}",
                subject_type="endpoint",
                subject=rule.endpoint,
                after={
                    "alert": rule.name,
                    "condition": rule.condition,
                    "value": value,
                    "action": action,
                },
                reason=str(cause)[:2000] if cause else None,
            )

    def events(self, endpoint: str | None = None, limit: int = 100) -> list[AlertEvent]:
        e, r = t.alert_events.c, t.alert_rules.c
        stmt = (
            sa.select(e.id, e.rule_id, r.endpoint, r.name, e.ts, e.kind, e.value, e.cause, e.action)
            .join_from(t.alert_events, t.alert_rules, e.rule_id == r.id)
            .order_by(e.id.desc())
            .limit(limit)
        )
        if endpoint is not None:
            stmt = stmt.where(r.endpoint == endpoint)
        with self._db.read() as conn:
            return [AlertEvent(*row) for row in conn.execute(stmt)]
