"""MLflow 3's logged models: a model an MLflow client logs before (or without) registering it.

A logged model belongs to an experiment, usually comes from a run, and holds files (an MLflow
model directory: MLmodel, model.skops…) kept like a run's artifacts (path → content digest),
plus params and tags (small JSON objects) and a status the client finalizes.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms
from shipyard.stores.database import dialect_insert
from shipyard.stores.records import ArtifactRecord

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Row

    from shipyard.stores.database import Database

STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
STAGES = ("active", "deleted")


@dataclass(frozen=True)
class LoggedModelRecord:
    id: str
    experiment_id: int
    name: str
    model_type: str | None
    source_run_id: str | None
    status: str
    status_message: str | None
    creator: str
    created_at: int
    updated_at: int
    lifecycle_stage: str
    tags: dict[str, str]
    params: dict[str, str]


class LoggedModelStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        experiment_id: int,
        name: str,
        *,
        creator: str,
        model_type: str | None = None,
        source_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> LoggedModelRecord:
        if not name or len(name) > 256:
            raise InvalidArgumentError(
                "a logged model's name must be 1 to 256 characters", field="name"
            )
        model_id = f"m-{uuid.uuid4().hex}"
        now = now_ms()
        with self._db.write() as conn:
            if (
                conn.execute(
                    sa.select(t.experiments.c.id).where(t.experiments.c.id == experiment_id)
                ).first()
                is None
            ):
                raise NotFoundError(f"experiment {experiment_id} not found")
            conn.execute(
                t.logged_models.insert().values(
                    id=model_id,
                    experiment_id=experiment_id,
                    name=name,
                    model_type=model_type,
                    source_run_id=source_run_id,
                    status=STATUSES[0],
                    creator=creator,
                    created_at=now,
                    updated_at=now,
                    lifecycle_stage="active",
                    tags=dict(tags or {}),
                    params=dict(params or {}),
                )
            )
        return self.get(model_id)

    def get(self, model_id: str, *, allow_deleted: bool = True) -> LoggedModelRecord:
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(t.logged_models).where(t.logged_models.c.id == model_id)
            ).first()
        if row is None or (not allow_deleted and row.lifecycle_stage != "active"):
            raise NotFoundError(f"logged model '{model_id}' not found")
        return _record(row)

    def search(
        self,
        experiment_ids: Sequence[int],
        *,
        stage: str | None = "active",
        source_run_id: str | None = None,
        names: Sequence[str] = (),
    ) -> builtins.list[LoggedModelRecord]:
        """The experiments' logged models, newest first."""
        m = t.logged_models.c
        query = sa.select(t.logged_models).order_by(m.created_at.desc(), m.id.desc())
        if experiment_ids:
            query = query.where(m.experiment_id.in_(list(experiment_ids)))
        if stage is not None:
            query = query.where(m.lifecycle_stage == stage)
        if source_run_id is not None:
            query = query.where(m.source_run_id == source_run_id)
        if names:
            query = query.where(m.name.in_(list(names)))
        with self._db.read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def update(
        self,
        model_id: str,
        *,
        status: str | None = None,
        status_message: str | None = None,
        stage: str | None = None,
        set_tags: Mapping[str, str] | None = None,
        delete_tag: str | None = None,
        set_params: Mapping[str, str] | None = None,
    ) -> LoggedModelRecord:
        """Change what is given, in one transaction (tags and params merge)."""
        if status is not None and status not in STATUSES:
            raise InvalidArgumentError(
                f"status must be one of {', '.join(STATUSES)}", field="status"
            )
        if stage is not None and stage not in STAGES:
            raise InvalidArgumentError(f"stage must be one of {STAGES}", field="lifecycle_stage")
        with self._db.write() as conn:
            row = conn.execute(
                sa.select(t.logged_models).where(t.logged_models.c.id == model_id).with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"logged model '{model_id}' not found")
            values: dict[str, Any] = {"updated_at": now_ms()}
            if status is not None:
                values["status"] = status
                values["status_message"] = status_message
            if stage is not None:
                values["lifecycle_stage"] = stage
            if set_tags or delete_tag is not None:
                tags = {**row.tags, **(set_tags or {})}
                if delete_tag is not None:
                    tags.pop(delete_tag, None)
                values["tags"] = tags
            if set_params:
                values["params"] = {**row.params, **set_params}
            conn.execute(
                t.logged_models.update().where(t.logged_models.c.id == model_id).values(**values)
            )
        return self.get(model_id)

    # -- files -----------------------------------------------------------------------------------

    def put_file(self, model_id: str, artifact: ArtifactRecord) -> None:
        with self._db.write() as conn:
            _require(conn, model_id)
            stmt = dialect_insert(conn, t.logged_model_artifacts).values(
                model_id=model_id, path=artifact.path, digest=artifact.digest, size=artifact.size
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["model_id", "path"],
                    set_={"digest": stmt.excluded.digest, "size": stmt.excluded.size},
                )
            )

    def files(self, model_id: str) -> builtins.list[ArtifactRecord]:
        a = t.logged_model_artifacts.c
        with self._db.read() as conn:
            _require(conn, model_id)
            rows = conn.execute(
                sa.select(a.path, a.digest, a.size).where(a.model_id == model_id).order_by(a.path)
            )
            return [ArtifactRecord(r.path, r.digest, r.size) for r in rows]

    def delete_files(self, model_id: str, paths: Sequence[str]) -> int:
        a = t.logged_model_artifacts.c
        with self._db.write() as conn:
            _require(conn, model_id)
            deleted = 0
            for start in range(0, len(paths), 500):
                chunk = list(paths[start : start + 500])
                done = conn.execute(
                    t.logged_model_artifacts.delete().where(
                        a.model_id == model_id, a.path.in_(chunk)
                    )
                )
                deleted += done.rowcount or 0
            return deleted


def delete_for_experiment(conn: Connection, experiment_id: int) -> None:
    """Remove an experiment's logged models and their file entries (the experiment goes)."""
    ids = sa.select(t.logged_models.c.id).where(t.logged_models.c.experiment_id == experiment_id)
    conn.execute(
        t.logged_model_artifacts.delete().where(t.logged_model_artifacts.c.model_id.in_(ids))
    )
    conn.execute(t.logged_models.delete().where(t.logged_models.c.experiment_id == experiment_id))


def _require(conn: Connection, model_id: str) -> None:
    found = conn.execute(
        sa.select(t.logged_models.c.id).where(t.logged_models.c.id == model_id)
    ).first()
    if found is None:
        raise NotFoundError(f"logged model '{model_id}' not found")


def _record(row: Row[Any]) -> LoggedModelRecord:
    return LoggedModelRecord(
        id=row.id,
        experiment_id=row.experiment_id,
        name=row.name,
        model_type=row.model_type,
        source_run_id=row.source_run_id,
        status=row.status,
        status_message=row.status_message,
        creator=row.creator,
        created_at=row.created_at,
        updated_at=row.updated_at,
        lifecycle_stage=row.lifecycle_stage,
        tags=dict(row.tags or {}),
        params=dict(row.params or {}),
    )
