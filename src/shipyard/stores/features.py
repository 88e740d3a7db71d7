"""Feature definitions (entities, views, on-demand views, services), versioned, and how far each
view has been materialized into the online store.

A definition is stored as a JSON spec. Applying a spec that differs from the latest version of
that name adds a new version; the old versions stay as they were (training frames built on them
remain reproducible). Applying an identical spec changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.stores import audit
from shipyard.stores.clock import now_ms
from shipyard.stores.schema import metadata

if TYPE_CHECKING:
    from shipyard.stores.database import Database

KINDS = ("entity", "view", "on_demand", "service")

feature_definitions = sa.Table(
    "feature_definitions",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("schema_digest", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
)

online_materializations = sa.Table(
    "online_materializations",
    metadata,
    sa.Column("store", sa.String(512), primary_key=True),  # the online store's identity
    sa.Column("view", sa.String(256), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("materialized_until", sa.BigInteger, nullable=False),  # epoch ms, exclusive
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)


def spec_digest(spec: Any) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class DefinitionRecord:
    kind: str
    name: str
    version: int
    spec: dict[str, Any]
    digest: str
    schema_digest: str
    created_at: int
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "spec": self.spec,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class ApplyResult:
    record: DefinitionRecord
    change: str  # "created" | "unchanged" | "new version (schema changed)" | "new version"


class FeatureRegistryStore:
    """The feature definitions of one metadata database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def apply(
        self, kind: str, name: str, spec: dict[str, Any], schema: Any, *, actor: str
    ) -> ApplyResult:
        """Store `spec` as the newest version of `kind`/`name` unless it equals the latest.
        `schema` is the part of the spec whose change breaks readers (keys, feature types)."""
        if kind not in KINDS:
            raise InvalidArgumentError(f"unknown definition kind '{kind}'", field="kind")
        d = feature_definitions.c
        digest = spec_digest(spec)
        schema_digest = spec_digest(schema)
        with self._db.write() as conn:
            latest = conn.execute(
                sa.select(feature_definitions)
                .where(d.kind == kind, d.name == name)
                .order_by(d.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.digest == digest:
                return ApplyResult(_record(latest), "unchanged")
            version = 1 if latest is None else int(latest.version) + 1
            if latest is None:
                change = "created"
            elif latest.schema_digest != schema_digest:
                change = "new version (schema changed)"
            else:
                change = "new version"
            row = {
                "kind": kind,
                "name": name,
                "version": version,
                "spec": audit.json_safe(spec),
                "digest": digest,
                "schema_digest": schema_digest,
                "created_at": now_ms(),
                "created_by": actor,
            }
            conn.execute(feature_definitions.insert().values(**row))
            audit.append(
                conn,
                actor=actor,
                action=f"features.{kind}.apply",
                subject_type=f"feature_{kind}",
                subject=name,
                before={"version": latest.version} if latest is not None else None,
                after={"version": version, "change": change},
            )
        return ApplyResult(DefinitionRecord(**row), change)  # type: ignore[arg-type]

    def get(self, kind: str, name: str, version: int | None = None) -> DefinitionRecord:
        d = feature_definitions.c
        query = sa.select(feature_definitions).where(d.kind == kind, d.name == name)
        if version is None:
            query = query.order_by(d.version.desc()).limit(1)
        else:
            query = query.where(d.version == version)
        with self._db.read() as conn:
            row = conn.execute(query).first()
            if row is None:
                names = conn.execute(sa.select(d.name).where(d.kind == kind).distinct())
                candidates = [r[0] for r in names]
        if row is None:
            label = kind.replace("_", "-") if version is None else f"{kind} version {version} of"
            raise NotFoundError.for_name(f"feature {label}", name, candidates)
        return _record(row)

    def latest(self, kind: str | None = None) -> list[DefinitionRecord]:
        """The newest version of every definition (of one kind, or all), by kind and name."""
        d = feature_definitions.c
        newest = (
            sa.select(d.kind, d.name, sa.func.max(d.version).label("version"))
            .group_by(d.kind, d.name)
            .subquery()
        )
        query = sa.select(feature_definitions).join(
            newest,
            sa.and_(
                d.kind == newest.c.kind,
                d.name == newest.c.name,
                d.version == newest.c.version,
            ),
        )
        if kind is not None:
            query = query.where(d.kind == kind)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(d.kind, d.name)).all()
        return [_record(r) for r in rows]

    def versions(self, kind: str, name: str) -> list[DefinitionRecord]:
        d = feature_definitions.c
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(feature_definitions)
                .where(d.kind == kind, d.name == name)
                .order_by(d.version)
            ).all()
        return [_record(r) for r in rows]

    # -- materialization state -----------------------------------------------------------------

    def materialized_until(self, view: str, version: int, store: str | None = None) -> int | None:
        """Where the last materialization of `view` version `version` into online store
        `store` (its identity) ended; with no `store`, the furthest any store got."""
        m = online_materializations.c
        query = sa.select(sa.func.max(m.materialized_until)).where(
            m.view == view, m.version == version
        )
        if store is not None:
            query = query.where(m.store == store)
        with self._db.read() as conn:
            row = conn.execute(query).first()
        return int(row[0]) if row and row[0] is not None else None

    def record_materialization(
        self, view: str, version: int, until_ms: int, rows: int, *, actor: str, store: str = ""
    ) -> None:
        m = online_materializations.c
        where = sa.and_(m.store == store, m.view == view, m.version == version)
        with self._db.write() as conn:
            exists = conn.execute(sa.select(m.materialized_until).where(where)).first()
            values = {"materialized_until": until_ms, "rows": rows, "updated_at": now_ms()}
            if exists is None:
                conn.execute(
                    online_materializations.insert().values(
                        store=store, view=view, version=version, **values
                    )
                )
            else:
                conn.execute(online_materializations.update().where(where).values(**values))
            audit.append(
                conn,
                actor=actor,
                action="features.materialize",
                subject_type="feature_view",
                subject=view,
                before={"until": exists[0]} if exists else None,
                after={"version": version, "until": until_ms, "rows": rows, "store": store},
            )


def _record(row: Any) -> DefinitionRecord:
    return DefinitionRecord(
        kind=row.kind,
        name=row.name,
        version=int(row.version),
        spec=dict(row.spec),
        digest=row.digest,
        schema_digest=row.schema_digest,
        created_at=int(row.created_at),
        created_by=row.created_by,
    )
