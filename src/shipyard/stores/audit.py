"""The append-only audit log: who, when, what and why, for every state change."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms
from shipyard.stores.records import AuditRecord

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shipyard.stores.database import Database


# who is acting in this context when it is not the configured user: an HTTP edge sets it to the
# caller (API key or JWT subject) for the request it handles. A context variable, not a global:
# each request (and the worker thread that runs a sync handler, which gets a copy of the
# request's context) sees its own.
_ACTING: ContextVar[str | None] = ContextVar("shipyard_acting", default=None)


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Record `actor` in the audit log for the changes made in this context (instead of
    SHIPYARD_USER or the OS user); e.g. `with acting_as("key:3fa9c2d1/ci-bot"): …`."""
    token = _ACTING.set(actor[:256])  # the audit column's width
    try:
        yield
    finally:
        _ACTING.reset(token)


def current_actor(default: str) -> str:
    """Who is acting here: the caller an edge set with `acting_as`, else `default`."""
    return _ACTING.get() or default


def json_safe(value: Any) -> Any:
    """JSON columns take no NaN or infinity (PostgreSQL refuses them): those become null."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return json_safe(value.item())
    return value


def append(
    conn: Connection,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject: str,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> None:
    """Append one event inside the caller's transaction, so the change and its record commit
    together or not at all."""
    conn.execute(
        t.audit_events.insert().values(
            ts=now_ms(),
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject=subject,
            before=json_safe(before),
            after=json_safe(after),
            reason=reason,
        )
    )


class AuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def list(
        self,
        *,
        subject_type: str | None = None,
        subject_types: tuple[str, ...] = (),
        subject_prefix: str | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        a = t.audit_events.c
        stmt = sa.select(t.audit_events).order_by(a.id.desc()).limit(limit)
        if subject_type:
            stmt = stmt.where(a.subject_type == subject_type)
        if subject_types:
            stmt = stmt.where(a.subject_type.in_(subject_types))
        if subject_prefix:
            stmt = stmt.where(
                sa.or_(a.subject == subject_prefix, a.subject.like(f"{subject_prefix}/%"))
            )
        with self._db.read() as conn:
            return [
                AuditRecord(
                    r.id,
                    r.ts,
                    r.actor,
                    r.action,
                    r.subject_type,
                    r.subject,
                    r.before,
                    r.after,
                    r.reason,
                )
                for r in conn.execute(stmt)
            ]
