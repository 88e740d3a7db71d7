"""Registered models, immutable versions, aliases and tags in SQL; every change is audited."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError
from shipyard.stores import audit
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms
from shipyard.stores.database import dialect_insert
from shipyard.stores.records import MAX_VERSION, ModelVersionRecord, RegisteredModelRecord

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shipyard.stores.database import Database


class ModelStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- registered models ---------------------------------------------------------------------

    def create_model(
        self, name: str, *, actor: str, description: str = "", exist_ok: bool = False
    ) -> None:
        with self._db.write() as conn:
            if self._model_exists(conn, name):
                if exist_ok:
                    return
                raise AlreadyExistsError(f"registered model '{name}' already exists")
            ts = now_ms()
            conn.execute(
                t.registered_models.insert().values(
                    name=name, description=description, created_at=ts, updated_at=ts
                )
            )
            audit.append(
                conn,
                actor=actor,
                action="model.create",
                subject_type="model",
                subject=name,
                after={"description": description},
            )

    def list_models(self) -> list[RegisteredModelRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(t.registered_models).order_by(t.registered_models.c.name)
            ).all()
            return [self._model_record(conn, r) for r in rows]

    def get_model(self, name: str) -> RegisteredModelRecord:
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(t.registered_models).where(t.registered_models.c.name == name)
            ).first()
            if row is None:
                raise self._model_not_found(conn, name)
            return self._model_record(conn, row)

    def update_model(self, name: str, *, actor: str, description: str) -> None:
        with self._db.write() as conn:
            before = self._require_model(conn, name)
            conn.execute(
                t.registered_models.update()
                .where(t.registered_models.c.name == name)
                .values(description=description, updated_at=now_ms())
            )
            audit.append(
                conn,
                actor=actor,
                action="model.update",
                subject_type="model",
                subject=name,
                before={"description": before.description},
                after={"description": description},
            )

    def set_model_tag(self, name: str, key: str, value: str, *, actor: str) -> None:
        with self._db.write() as conn:
            self._require_model(conn, name)
            old = conn.execute(
                sa.select(t.model_tags.c.value).where(
                    t.model_tags.c.name == name, t.model_tags.c.key == key
                )
            ).scalar()
            if old is None:
                conn.execute(t.model_tags.insert().values(name=name, key=key, value=value))
            else:
                conn.execute(
                    t.model_tags.update()
                    .where(t.model_tags.c.name == name, t.model_tags.c.key == key)
                    .values(value=value)
                )
            audit.append(
                conn,
                actor=actor,
                action="model.tag",
                subject_type="model",
                subject=name,
                before={key: old},
                after={key: value},
            )

    # -- versions ------------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        *,
        actor: str,
        flavor: str,
        artifact_digest: str,
        signature: Mapping[str, Any] | None,
        run_id: str | None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        onnx_status: str = "off",
        onnx_digest: str | None = None,
        onnx_detail: str | None = None,
        onnx_claimed_by: str | None = None,
        event: tuple[str, Mapping[str, Any]] | None = None,
    ) -> ModelVersionRecord:
        """Register a new immutable version; creates the registered model on first use.
        `onnx_claimed_by`: the process that will convert a pending version (stores/owners.py),
        claimed in the same transaction so no other process starts on it meanwhile.
        `event`: (action, details) of one more audit event about the new version, recorded in
        the same transaction (e.g. "version.optimize" with its parent)."""
        with self._db.write() as conn:
            ts = now_ms()
            version = self._next_version(conn, name, actor, ts)
            conn.execute(
                t.model_versions.insert().values(
                    name=name,
                    version=version,
                    flavor=flavor,
                    artifact_digest=artifact_digest,
                    signature=dict(signature) if signature is not None else None,
                    run_id=run_id,
                    description=description,
                    approval="pending",
                    created_at=ts,
                    created_by=actor,
                    onnx_status=onnx_status,
                    onnx_digest=onnx_digest,
                    onnx_detail=onnx_detail,
                    onnx_claimed_by=onnx_claimed_by,
                    onnx_claimed_at=ts if onnx_claimed_by else None,
                    onnx_attempts=1 if onnx_claimed_by else 0,
                )
            )
            if tags:
                conn.execute(
                    t.model_version_tags.insert(),
                    [
                        {"name": name, "version": version, "key": k, "value": str(v)}
                        for k, v in tags.items()
                    ],
                )
            conn.execute(
                t.registered_models.update()
                .where(t.registered_models.c.name == name)
                .values(updated_at=ts)
            )
            audit.append(
                conn,
                actor=actor,
                action="version.register",
                subject_type="model_version",
                subject=f"{name}/{version}",
                after={"flavor": flavor, "artifact_digest": artifact_digest, "run_id": run_id},
            )
            if event is not None:
                audit.append(
                    conn,
                    actor=actor,
                    action=event[0],
                    subject_type="model_version",
                    subject=f"{name}/{version}",
                    after=dict(event[1]),
                )
            return self._version_record(conn, name, version)

    def _next_version(self, conn: Connection, name: str, actor: str, ts: int) -> int:
        """The model's next version number, creating the model on first use; the model row
        stays locked until the transaction ends, so numbers are unique and dense."""
        created = conn.execute(
            dialect_insert(conn, t.registered_models)
            .values(name=name, description="", created_at=ts, updated_at=ts)
            .on_conflict_do_nothing(index_elements=["name"])
        ).rowcount
        if created:
            audit.append(
                conn, actor=actor, action="model.create", subject_type="model", subject=name
            )
        # Serialize version numbering per model (a no-op on SQLite, whose writers are serial).
        conn.execute(
            sa.select(t.registered_models.c.name)
            .where(t.registered_models.c.name == name)
            .with_for_update()
        )
        mv = t.model_versions.c
        from shipyard.stores.model_edits import highest_deleted_version

        latest = conn.execute(sa.select(sa.func.max(mv.version)).where(mv.name == name)).scalar()
        return max(int(latest or 0), highest_deleted_version(conn, name)) + 1

    def get_version(self, name: str, version: int) -> ModelVersionRecord:
        with self._db.read() as conn:
            self._require_model(conn, name)
            return self._version_record(conn, name, version)

    def list_versions(self, name: str) -> list[ModelVersionRecord]:
        with self._db.read() as conn:
            self._require_model(conn, name)
            versions = conn.execute(
                sa.select(t.model_versions.c.version)
                .where(t.model_versions.c.name == name)
                .order_by(t.model_versions.c.version)
            ).scalars()
            return [self._version_record(conn, name, v) for v in list(versions)]

    def versions_of_run(self, run_id: str) -> list[ModelVersionRecord]:
        mv = t.model_versions.c
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(mv.name, mv.version).where(mv.run_id == run_id).order_by(mv.created_at)
            ).all()
            return [self._version_record(conn, r.name, r.version) for r in rows]

    def set_version_tag(self, name: str, version: int, key: str, value: str, *, actor: str) -> None:
        with self._db.write() as conn:
            self._version_record(conn, name, version)
            vt = t.model_version_tags.c
            where = (vt.name == name, vt.version == version, vt.key == key)
            old = conn.execute(sa.select(vt.value).where(*where)).scalar()
            if old is None:
                conn.execute(
                    t.model_version_tags.insert().values(
                        name=name, version=version, key=key, value=value
                    )
                )
            else:
                conn.execute(t.model_version_tags.update().where(*where).values(value=value))
            audit.append(
                conn,
                actor=actor,
                action="version.tag",
                subject_type="model_version",
                subject=f"{name}/{version}",
                before={key: old},
                after={key: value},
            )

    def set_approval(
        self, name: str, version: int, *, state: str, reviewer: str, comment: str, actor: str
    ) -> ModelVersionRecord:
        """pending -> approved | rejected, by a named reviewer with a comment; audited."""
        if state not in ("approved", "rejected"):
            raise InvalidArgumentError(
                f"approval must be approved or rejected, not {state!r}", field="state"
            )
        if not reviewer.strip():
            raise InvalidArgumentError("a reviewer must be named", field="reviewer")
        mv = t.model_versions.c
        with self._db.write() as conn:
            current = self._version_record(conn, name, version)
            if current.approval != "pending":
                raise ConflictError(
                    f"model '{name}' version {version} is already {current.approval} (by "
                    f"{current.tags.get('approval_reviewer', '?')}); register a new version to "
                    "review again",
                    field="state",
                )
            conn.execute(
                t.model_versions.update()
                .where(mv.name == name, mv.version == version)
                .values(approval=state)
            )
            conn.execute(
                t.model_version_tags.insert(),
                [
                    {
                        "name": name,
                        "version": version,
                        "key": "approval_reviewer",
                        "value": reviewer,
                    },
                    {"name": name, "version": version, "key": "approval_comment", "value": comment},
                ],
            )
            audit.append(
                conn,
                actor=actor,
                action={"approved": "version.approve", "rejected": "version.reject"}[state],
                subject_type="model_version",
                subject=f"{name}/{version}",
                before={"approval": "pending"},
                after={"approval": state, "reviewer": reviewer},
                reason=comment,
            )
            return self._version_record(conn, name, version)

    def request_approval(
        self, name: str, version: int, *, reviewer: str | None, comment: str, actor: str
    ) -> ModelVersionRecord:
        """Ask for a review of a pending version (an audited request; the tag names the
        reviewer asked, if any)."""
        with self._db.write() as conn:
            current = self._version_record(conn, name, version)
            if current.approval != "pending":
                raise ConflictError(
                    f"model '{name}' version {version} is already {current.approval}",
                    field="state",
                )
            vt = t.model_version_tags.c
            conn.execute(
                t.model_version_tags.delete().where(
                    vt.name == name, vt.version == version, vt.key == "approval_requested"
                )
            )
            conn.execute(
                t.model_version_tags.insert().values(
                    name=name,
                    version=version,
                    key="approval_requested",
                    value=reviewer or "any reviewer",
                )
            )
            audit.append(
                conn,
                actor=actor,
                action="version.request_approval",
                subject_type="model_version",
                subject=f"{name}/{version}",
                after={"approval": "pending", "reviewer": reviewer},
                reason=comment,
            )
            return self._version_record(conn, name, version)

    def record_conversion(
        self,
        name: str,
        version: int,
        *,
        status: str,
        digest: str | None,
        detail: str | None,
        actor: str,
    ) -> None:
        """Record the outcome of an ONNX conversion. A version that has a verified ONNX file
        keeps it: only off, pending, refused or unavailable versions change."""
        if status not in ("ok", "refused", "failed", "unavailable"):
            raise InvalidArgumentError(
                f"conversion status must be ok, refused, failed or unavailable, not {status!r}"
            )
        mv = t.model_versions.c
        with self._db.write() as conn:
            result = conn.execute(
                t.model_versions.update()
                .where(mv.name == name, mv.version == version, mv.onnx_status != "ok")
                .values(
                    onnx_status=status,
                    onnx_digest=digest,
                    onnx_detail=detail,
                    onnx_claimed_by=None,
                    onnx_claimed_at=None,
                )
            )
            if result.rowcount == 0:
                self._version_record(conn, name, version)  # not found → NotFoundError
                raise InvalidArgumentError(
                    f"model '{name}' version {version} already has a verified ONNX file"
                )
            audit.append(
                conn,
                actor=actor,
                action="version.convert",
                subject_type="model_version",
                subject=f"{name}/{version}",
                before=None,
                after={"onnx": status, "digest": digest, "detail": detail},
            )

    # -- aliases -------------------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str | None = None,
        override_gates: str | None = None,
    ) -> None:
        """Point an alias at a version. If the model has quality gates, the version must have
        passed them, unless `override_gates` gives a reason (audited)."""
        from shipyard.stores.gates import require_pass

        _check_alias(alias)
        with self._db.write() as conn:
            self._version_record(conn, name, version)
            # one alias change per model at a time: the first two sets of a new alias would
            # both insert (a unique violation, a 500) on PostgreSQL; SQLite writers are serial
            conn.execute(
                sa.select(t.registered_models.c.name)
                .where(t.registered_models.c.name == name)
                .with_for_update()
            )
            require_pass(
                conn,
                name,
                version,
                action=f"alias '{alias}'",
                actor=actor,
                override_reason=override_gates,
            )
            a = t.aliases.c
            old = conn.execute(
                sa.select(a.version).where(a.name == name, a.alias == alias)
            ).scalar()
            if old is None:
                conn.execute(t.aliases.insert().values(name=name, alias=alias, version=version))
            elif old != version:
                conn.execute(
                    t.aliases.update()
                    .where(a.name == name, a.alias == alias)
                    .values(version=version)
                )
            audit.append(
                conn,
                actor=actor,
                action="alias.set",
                subject_type="model",
                subject=name,
                before={"alias": alias, "version": old},
                after={"alias": alias, "version": version},
                reason=reason,
            )

    def delete_alias(self, name: str, alias: str, *, actor: str, reason: str | None = None) -> None:
        with self._db.write() as conn:
            self._require_model(conn, name)
            a = t.aliases.c
            old = conn.execute(
                sa.select(a.version).where(a.name == name, a.alias == alias)
            ).scalar()
            if old is None:
                known = conn.execute(sa.select(a.alias).where(a.name == name)).scalars().all()
                raise NotFoundError.for_name(f"alias of model '{name}'", alias, known)
            conn.execute(t.aliases.delete().where(a.name == name, a.alias == alias))
            audit.append(
                conn,
                actor=actor,
                action="alias.delete",
                subject_type="model",
                subject=name,
                before={"alias": alias, "version": old},
                after=None,
                reason=reason,
            )

    def resolve_alias(self, name: str, alias: str) -> int:
        a = t.aliases.c
        with self._db.read() as conn:
            self._require_model(conn, name)
            version = conn.execute(
                sa.select(a.version).where(a.name == name, a.alias == alias)
            ).scalar()
            if version is None:
                known = conn.execute(sa.select(a.alias).where(a.name == name)).scalars().all()
                raise NotFoundError.for_name(f"alias of model '{name}'", alias, known)
            return int(version)

    def latest_version(self, name: str) -> int:
        mv = t.model_versions.c
        with self._db.read() as conn:
            self._require_model(conn, name)
            version = conn.execute(
                sa.select(sa.func.max(mv.version)).where(mv.name == name)
            ).scalar()
            if version is None:
                raise NotFoundError(f"model '{name}' has no versions yet")
            return int(version)

    # -- internals -----------------------------------------------------------------------------

    def _model_exists(self, conn: Connection, name: str) -> bool:
        return (
            conn.execute(
                sa.select(t.registered_models.c.name).where(t.registered_models.c.name == name)
            ).first()
            is not None
        )

    def _model_not_found(self, conn: Connection, name: str) -> NotFoundError:
        names = conn.execute(sa.select(t.registered_models.c.name)).scalars().all()
        return NotFoundError.for_name("model", name, names)

    def _require_model(self, conn: Connection, name: str) -> Any:
        row = conn.execute(
            sa.select(t.registered_models).where(t.registered_models.c.name == name)
        ).first()
        if row is None:
            raise self._model_not_found(conn, name)
        return row

    def _model_record(self, conn: Connection, row: Any) -> RegisteredModelRecord:
        a, mt, mv = t.aliases.c, t.model_tags.c, t.model_versions.c
        aliases = dict(conn.execute(sa.select(a.alias, a.version).where(a.name == row.name)).all())
        tags = dict(conn.execute(sa.select(mt.key, mt.value).where(mt.name == row.name)).all())
        latest = conn.execute(
            sa.select(sa.func.max(mv.version)).where(mv.name == row.name)
        ).scalar()
        return RegisteredModelRecord(
            row.name, row.description, row.created_at, row.updated_at, latest, aliases, tags
        )

    def _version_record(self, conn: Connection, name: str, version: int) -> ModelVersionRecord:
        if not 1 <= version <= MAX_VERSION:  # SQLite would raise OverflowError past 2**63
            raise InvalidArgumentError(
                f"version {version} is out of range: versions are 1 to {MAX_VERSION}",
                field="version",
            )
        mv = t.model_versions.c
        row = conn.execute(
            sa.select(t.model_versions).where(mv.name == name, mv.version == version)
        ).first()
        if row is None:
            versions = conn.execute(sa.select(mv.version).where(mv.name == name)).scalars().all()
            self._require_model(conn, name)
            raise NotFoundError(
                f"model '{name}' has no version {version}; versions: "
                f"{', '.join(map(str, versions)) or 'none'}",
                kind="model_version",
                name=name,
            )
        a, vt = t.aliases.c, t.model_version_tags.c
        aliases = (
            conn.execute(
                sa.select(a.alias).where(a.name == name, a.version == version).order_by(a.alias)
            )
            .scalars()
            .all()
        )
        tags = dict(
            conn.execute(
                sa.select(vt.key, vt.value).where(vt.name == name, vt.version == version)
            ).all()
        )
        return ModelVersionRecord(
            name=row.name,
            version=row.version,
            flavor=row.flavor,
            artifact_digest=row.artifact_digest,
            signature=row.signature,
            run_id=row.run_id,
            description=row.description,
            approval=row.approval,
            created_at=row.created_at,
            created_by=row.created_by,
            aliases=tuple(aliases),
            tags=tags,
            onnx_status=row.onnx_status,
            onnx_digest=row.onnx_digest,
            onnx_detail=row.onnx_detail,
        )


MAX_ALIAS = 128


def _check_alias(alias: str) -> None:
    if len(alias) > MAX_ALIAS:
        raise InvalidArgumentError(
            f"alias of {len(alias)} characters: the limit is {MAX_ALIAS}", field="alias"
        )
    if not alias or alias.isdigit() or not alias.replace("-", "").replace("_", "").isalnum():
        raise InvalidArgumentError(
            f"alias {alias!r} is not valid: use letters, digits, '-' or '_', not only digits "
            "(a number would be confused with a version)",
            field="alias",
        )
