"""Endpoints: a name, the model it serves and its traffic policy. Read by every replica."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import AlreadyExistsError, NotFoundError
from shipyard.stores import audit
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms
from shipyard.stores.records import EndpointRecord

if TYPE_CHECKING:
    from shipyard.stores.database import Database


class EndpointStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        name: str,
        model_uri: str,
        *,
        actor: str,
        policy: str = "single",
        config: Mapping[str, Any] | None = None,
        reason: str | None = None,
        replace: bool = False,
    ) -> EndpointRecord:
        e = t.endpoints.c
        with self._db.write() as conn:
            old = conn.execute(sa.select(t.endpoints).where(e.name == name)).first()
            ts = now_ms()
            values = {
                "model_uri": model_uri,
                "policy": policy,
                "config": audit.json_safe(dict(config or {})),
                "updated_at": ts,
            }
            if old is not None:
                if not replace:
                    raise AlreadyExistsError(f"endpoint '{name}' already exists")
                conn.execute(
                    t.endpoints.update()
                    .where(e.name == name)
                    .values(generation=old.generation + 1, **values)
                )
            else:
                conn.execute(
                    t.endpoints.insert().values(name=name, generation=1, created_at=ts, **values)
                )
            audit.append(
                conn,
                actor=actor,
                action="endpoint.update" if old else "endpoint.create",
                subject_type="endpoint",
                subject=name,
                before={"model_uri": old.model_uri} if old else None,
                after={"model_uri": model_uri, "policy": policy},
                reason=reason,
            )
        return self.get(name)

    def set_policy(
        self,
        name: str,
        *,
        policy: str,
        config: Mapping[str, Any],
        actor: str,
        action: str,
        reason: str | None = None,
        evidence: Any = None,
        model_uri: str | None = None,
        expect_generation: int | None = None,
    ) -> EndpointRecord:
        """Change an endpoint's traffic policy (and maybe its stable model) in one audited
        transaction. `expect_generation` guards against a concurrent change (another controller
        or a person): the update applies only if nobody changed the endpoint meanwhile."""
        e = t.endpoints.c
        with self._db.write() as conn:
            old = conn.execute(sa.select(t.endpoints).where(e.name == name)).first()
            if old is None:
                names = conn.execute(sa.select(e.name)).scalars().all()
                raise NotFoundError.for_name("endpoint", name, names)
            if expect_generation is not None and old.generation != expect_generation:
                raise AlreadyExistsError(
                    f"endpoint '{name}' changed meanwhile (generation {old.generation}, "
                    f"expected {expect_generation}); look at it again and retry"
                )
            values: dict[str, Any] = {
                "policy": policy,
                "config": audit.json_safe(dict(config)),
                "generation": old.generation + 1,
                "updated_at": now_ms(),
            }
            if model_uri is not None:
                values["model_uri"] = model_uri
            conn.execute(t.endpoints.update().where(e.name == name).values(**values))
            audit.append(
                conn,
                actor=actor,
                action=action,
                subject_type="endpoint",
                subject=name,
                before={"policy": old.policy, "model_uri": old.model_uri, "config": old.config},
                after={
                    "policy": policy,
                    "model_uri": model_uri or old.model_uri,
                    "config": dict(config),
                    "evidence": evidence,
                },
                reason=reason,
            )
        return self.get(name)

    def get(self, name: str) -> EndpointRecord:
        with self._db.read() as conn:
            row = conn.execute(sa.select(t.endpoints).where(t.endpoints.c.name == name)).first()
            if row is None:
                names = conn.execute(sa.select(t.endpoints.c.name)).scalars().all()
                raise NotFoundError.for_name("endpoint", name, names)
        return _record(row)

    def list(self) -> list[EndpointRecord]:
        with self._db.read() as conn:
            return [
                _record(r)
                for r in conn.execute(sa.select(t.endpoints).order_by(t.endpoints.c.name))
            ]

    def delete(self, name: str, *, actor: str, reason: str | None = None) -> None:
        e = t.endpoints.c
        with self._db.write() as conn:
            old = conn.execute(sa.select(t.endpoints).where(e.name == name)).first()
            if old is None:
                raise NotFoundError(f"endpoint '{name}' not found")
            conn.execute(t.endpoints.delete().where(e.name == name))
            audit.append(
                conn,
                actor=actor,
                action="endpoint.delete",
                subject_type="endpoint",
                subject=name,
                before={"model_uri": old.model_uri},
                reason=reason,
            )


def _record(row: Any) -> EndpointRecord:
    return EndpointRecord(
        row.name,
        row.model_uri,
        row.policy,
        row.config,
        row.generation,
        row.created_at,
        row.updated_at,
    )
