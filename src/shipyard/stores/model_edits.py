"""Editing and deleting registered models and versions: descriptions, tag deletion, removal.

A removal is refused while an alias points at what would go, or while an endpoint serves it
(the caller judges endpoints: it knows model URIs and traffic policies, the store does not;
it gets the endpoint rows read in the removal's own transaction). Removing a version deletes
its tags and gate reports with it; the audit log keeps every event. Version numbers are never
given out again (see `highest_deleted_version`), so `models:/churn/3` in an old log or
report never names another model. Content-addressed artifact files are kept: another version
or run may hold the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import AlreadyExistsError, ConflictError, NotFoundError
from shipyard.stores import audit
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms
from shipyard.stores.endpoints import _record as endpoint_record
from shipyard.stores.models import ModelStore

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shipyard.stores.records import EndpointRecord

# the endpoints that use what would be removed, as phrases ("endpoint 'churn' (stable)")
EndpointJudge = Callable[[Sequence["EndpointRecord"]], list[str]]


class ModelEditStore(ModelStore):
    """The model store plus edits, removals and the registry's summary (kept apart to keep
    each module small)."""

    def approval_counts(self) -> dict[str, dict[str, int]]:
        """Per model, how many of its versions are in each approval state, in one query
        (`{"churn": {"approved": 2, "pending": 1}}`)."""
        mv = t.model_versions.c
        out: dict[str, dict[str, int]] = {}
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(mv.name, mv.approval, sa.func.count()).group_by(mv.name, mv.approval)
            ).all()
        for name, state, count in rows:
            out.setdefault(name, {})[state] = int(count)
        return out

    def versions_tagged(self, name: str, key: str, value: str) -> list[int]:
        """The versions of a model whose tag `key` is `value`, in order (e.g. those optimized
        from version 3: `optimize_parent` = "3"), in one query."""
        vt = t.model_version_tags.c
        with self._db.read() as conn:
            found = conn.execute(
                sa.select(vt.version)
                .where(vt.name == name, vt.key == key, vt.value == value)
                .order_by(vt.version)
            )
            return [int(v) for v in found.scalars()]

    def set_version_description(
        self, name: str, version: int, description: str, *, actor: str
    ) -> None:
        mv = t.model_versions.c
        with self._db.write() as conn:
            before = self._version_record(conn, name, version)
            conn.execute(
                t.model_versions.update()
                .where(mv.name == name, mv.version == version)
                .values(description=description)
            )
            audit.append(
                conn,
                actor=actor,
                action="version.update",
                subject_type="model_version",
                subject=f"{name}/{version}",
                before={"description": before.description},
                after={"description": description},
            )

    def delete_model_tag(self, name: str, key: str, *, actor: str) -> None:
        mt = t.model_tags.c
        with self._db.write() as conn:
            self._require_model(conn, name)
            where = (mt.name == name, mt.key == key)
            old = conn.execute(sa.select(mt.value).where(*where)).scalar()
            if old is None:
                known = conn.execute(sa.select(mt.key).where(mt.name == name)).scalars().all()
                raise NotFoundError.for_name(f"tag of model '{name}'", key, known)
            conn.execute(t.model_tags.delete().where(*where))
            audit.append(
                conn,
                actor=actor,
                action="model.untag",
                subject_type="model",
                subject=name,
                before={key: old},
                after=None,
            )

    def delete_version_tag(self, name: str, version: int, key: str, *, actor: str) -> None:
        vt = t.model_version_tags.c
        with self._db.write() as conn:
            current = self._version_record(conn, name, version)
            if key not in current.tags:
                raise NotFoundError.for_name(
                    f"tag of model '{name}' version {version}", key, list(current.tags)
                )
            conn.execute(
                t.model_version_tags.delete().where(
                    vt.name == name, vt.version == version, vt.key == key
                )
            )
            audit.append(
                conn,
                actor=actor,
                action="version.untag",
                subject_type="model_version",
                subject=f"{name}/{version}",
                before={key: current.tags[key]},
                after=None,
            )

    def delete_version(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        judge: EndpointJudge,
        reason: str | None = None,
    ) -> None:
        """Remove one version, or raise ConflictError naming the aliases and endpoints that
        use it."""
        mv, a = t.model_versions.c, t.aliases.c
        with self._db.write() as conn:
            self._lock_model(conn, name)
            current = self._version_record(conn, name, version)
            aliases = conn.execute(
                sa.select(a.alias).where(a.name == name, a.version == version).order_by(a.alias)
            ).scalars()
            users = [f"alias '{x}'" for x in aliases] + judge(_endpoints(conn))
            if users:
                raise ConflictError(
                    f"model '{name}' version {version} is in use by {', '.join(users)}; "
                    "move or delete those first",
                    field="version",
                )
            _remove_versions(conn, name, [version])
            conn.execute(t.model_versions.delete().where(mv.name == name, mv.version == version))
            conn.execute(
                t.registered_models.update()
                .where(t.registered_models.c.name == name)
                .values(updated_at=now_ms())
            )
            audit.append(
                conn,
                actor=actor,
                action="version.delete",
                subject_type="model_version",
                subject=f"{name}/{version}",
                before={
                    "version": version,
                    "run_id": current.run_id,
                    "artifact_digest": current.artifact_digest,
                },
                after=None,
                reason=reason,
            )

    def delete_model(
        self, name: str, *, actor: str, judge: EndpointJudge, reason: str | None = None
    ) -> int:
        """Remove a model with all its versions; returns how many versions went."""
        mv, a = t.model_versions.c, t.aliases.c
        with self._db.write() as conn:
            self._lock_model(conn, name)
            self._require_model(conn, name)
            aliases = conn.execute(
                sa.select(a.alias, a.version).where(a.name == name).order_by(a.alias)
            ).all()
            users = [f"alias '{x.alias}' (version {x.version})" for x in aliases]
            users += judge(_endpoints(conn))
            if users:
                raise ConflictError(
                    f"model '{name}' is in use by {', '.join(users)}; move or delete those first",
                    field="name",
                )
            versions = list(conn.execute(sa.select(mv.version).where(mv.name == name)).scalars())
            _remove_versions(conn, name, versions)
            conn.execute(t.model_versions.delete().where(mv.name == name))
            for table in (t.model_tags, t.model_gates):
                conn.execute(table.delete().where(table.c.name == name))
            conn.execute(t.registered_models.delete().where(t.registered_models.c.name == name))
            audit.append(
                conn,
                actor=actor,
                action="model.delete",
                subject_type="model",
                subject=name,
                before={"versions": sorted(versions)},
                after=None,
                reason=reason,
            )
            return len(versions)

    def rename_model(self, name: str, new_name: str, *, actor: str, judge: EndpointJudge) -> None:
        """Give a model, its versions, tags, aliases, gates and gate reports another name, in
        one transaction. Refused while an endpoint names it (its URI would break) or when
        `new_name` is taken."""
        with self._db.write() as conn:
            self._lock_model(conn, name)
            self._require_model(conn, name)
            if self._model_exists(conn, new_name):
                raise AlreadyExistsError(f"registered model '{new_name}' already exists")
            users = judge(_endpoints(conn))
            if users:
                raise ConflictError(
                    f"model '{name}' is served by {', '.join(users)}; point those at another "
                    "model before renaming it (their model URIs name it)",
                    field="name",
                )
            _copy_rows(conn, t.registered_models, name, new_name)
            _copy_rows(conn, t.model_versions, name, new_name)
            for table in (t.model_version_tags, t.gate_reports, t.model_tags, t.aliases):
                conn.execute(table.update().where(table.c.name == name).values(name=new_name))
            conn.execute(
                t.model_gates.update().where(t.model_gates.c.name == name).values(name=new_name)
            )
            conn.execute(t.model_versions.delete().where(t.model_versions.c.name == name))
            conn.execute(t.registered_models.delete().where(t.registered_models.c.name == name))
            audit.append(
                conn,
                actor=actor,
                action="model.rename",
                subject_type="model",
                subject=new_name,
                before={"name": name},
                after={"name": new_name},
            )

    def _lock_model(self, conn: Connection, name: str) -> None:
        # one change per model at a time (alias moves, registrations; see ModelStore.set_alias)
        conn.execute(
            sa.select(t.registered_models.c.name)
            .where(t.registered_models.c.name == name)
            .with_for_update()
        )


def highest_deleted_version(conn: Connection, name: str) -> int:
    """The highest version of `name` ever deleted (0 if none), from the audit log: numbering
    continues above it."""
    rows = conn.execute(
        sa.select(t.audit_events.c.subject).where(
            t.audit_events.c.subject_type == "model_version",
            t.audit_events.c.action == "version.delete",
            t.audit_events.c.subject.startswith(f"{name}/", autoescape=True),
        )
    ).scalars()
    highest = 0
    for subject in rows:
        tail = subject[len(name) + 1 :]
        if tail.isdigit():
            highest = max(highest, int(tail))
    return highest


def _endpoints(conn: Connection) -> list[Any]:
    return [endpoint_record(r) for r in conn.execute(sa.select(t.endpoints))]


def _remove_versions(conn: Connection, name: str, versions: list[int]) -> None:
    for table in (t.model_version_tags, t.gate_reports):
        for start in range(0, len(versions), 500):
            chunk = versions[start : start + 500]
            conn.execute(table.delete().where(table.c.name == name, table.c.version.in_(chunk)))


def _copy_rows(conn: Connection, table: sa.Table, name: str, new_name: str) -> None:
    """Insert `table`'s rows of model `name` again under `new_name` (children follow later)."""
    rows = [dict(r._mapping) for r in conn.execute(sa.select(table).where(table.c.name == name))]
    for row in rows:
        row["name"] = new_name
    if rows:
        conn.execute(table.insert(), rows)
