"""An MLflow tracking database (SQLite or PostgreSQL), read with SQLAlchemy Core from MLflow's
own tables, as `stores/mlflow_records.py`'s records. Read only; the tables are reflected, so
the columns newer MLflow versions add (workspaces, logged models) are used when present."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, StoreUnavailableError
from shipyard.stores.database import redact
from shipyard.stores.mlflow_records import (
    MlflowDataset,
    MlflowExperiment,
    MlflowModel,
    MlflowRun,
    MlflowVersion,
)
from shipyard.stores.records import MetricPoint

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection, Engine

_REQUIRED = ("experiments", "runs", "params", "metrics", "tags", "alembic_version")
_DELETED_VERSION = "Deleted_Internal"  # MLflow keeps a deleted version's row with this stage


class MlflowDatabase:
    """`MlflowDatabase("sqlite:///mlflow.db")`: nothing is opened until the first read."""

    def __init__(self, url: str) -> None:
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        self.url = url
        self._open_url = url
        self._engine: Engine | None = None
        self._tables: dict[str, sa.Table] = {}

    def _open(self) -> Engine:
        if self._engine is not None:
            return self._engine
        import sqlalchemy as sa

        if self.url.startswith("sqlite:///"):
            from pathlib import Path

            path = Path(self.url.removeprefix("sqlite:///"))
            if not path.is_file():
                raise InvalidArgumentError(f"no MLflow database at {path}", field="from")
            self._open_url = f"sqlite:///file:{path}?mode=ro&uri=true"
        try:
            engine = sa.create_engine(self._open_url)
            meta = sa.MetaData()
            meta.reflect(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailableError(
                f"cannot read {redact(self.url)}: {exc.__class__.__name__}"
            ) from exc
        missing = [name for name in _REQUIRED if name not in meta.tables]
        if missing:
            raise InvalidArgumentError(
                f"{redact(self.url)} is not an MLflow tracking database (no table {missing[0]!r})",
                field="from",
            )
        self._tables = dict(meta.tables)
        self._engine = engine
        return engine

    def _table(self, name: str) -> sa.Table | None:
        self._open()
        return self._tables.get(name)

    def _read(self) -> Any:
        return self._open().connect()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # -- experiments and runs ------------------------------------------------------------------

    def experiments(self) -> list[MlflowExperiment]:
        import sqlalchemy as sa

        exp, tags = self._table("experiments"), self._table("experiment_tags")
        assert exp is not None
        with self._read() as conn:
            found = _grouped(conn, tags, "experiment_id") if tags is not None else {}
            rows = conn.execute(sa.select(exp).order_by(exp.c.experiment_id)).mappings()
            return [
                MlflowExperiment(
                    id=str(r["experiment_id"]),
                    name=r["name"],
                    created_at=int(r.get("creation_time") or 0),
                    lifecycle_stage=r["lifecycle_stage"] or "active",
                    tags=found.get(str(r["experiment_id"]), {}),
                )
                for r in rows
            ]

    def runs(self, page_size: int = 1000) -> Iterator[list[MlflowRun]]:
        """Every run, deleted ones too, a page at a time (ordered by id)."""
        import sqlalchemy as sa

        runs = self._table("runs")
        assert runs is not None
        after = ""
        while True:
            with self._read() as conn:
                rows = list(
                    conn.execute(
                        sa.select(runs)
                        .where(runs.c.run_uuid > after)
                        .order_by(runs.c.run_uuid)
                        .limit(page_size)
                    ).mappings()
                )
                if not rows:
                    return
                yield self._runs(conn, rows)
            after = rows[-1]["run_uuid"]

    def _runs(self, conn: Connection, rows: list[Any]) -> list[MlflowRun]:
        ids = [r["run_uuid"] for r in rows]
        params = _grouped(conn, self._table("params"), "run_uuid", ids)
        tags = _grouped(conn, self._table("tags"), "run_uuid", ids)
        latest = _grouped(conn, self._table("latest_metrics"), "run_uuid", ids)
        datasets = self._datasets(conn, ids)
        return [
            MlflowRun(
                id=r["run_uuid"],
                experiment_id=str(r["experiment_id"]),
                name=r["name"] or "",
                user=r["user_id"] or "",
                status=r["status"] or "FINISHED",
                start_time=int(r["start_time"] or 0),
                end_time=r["end_time"],
                lifecycle_stage=r["lifecycle_stage"] or "active",
                artifact_uri=r["artifact_uri"] or "",
                params=params.get(r["run_uuid"], {}),
                tags=tags.get(r["run_uuid"], {}),
                latest=tuple(latest.get(r["run_uuid"], {})),
                datasets=tuple(datasets.get(r["run_uuid"], ())),
            )
            for r in rows
        ]

    def _datasets(self, conn: Connection, ids: list[str]) -> dict[str, list[MlflowDataset]]:
        import sqlalchemy as sa

        inputs, datasets = self._table("inputs"), self._table("datasets")
        input_tags = self._table("input_tags")
        if inputs is None or datasets is None:
            return {}
        i, d = inputs.c, datasets.c
        rows = list(
            conn.execute(
                sa.select(i.input_uuid, i.destination_id, *d)
                .join_from(inputs, datasets, d.dataset_uuid == i.source_id)
                .where(i.source_type == "DATASET", i.destination_type == "RUN")
                .where(i.destination_id.in_(ids))
            ).mappings()
        )
        contexts: dict[str, str] = {}
        if input_tags is not None and rows:
            it = input_tags.c
            contexts = dict(
                conn.execute(
                    sa.select(it.input_uuid, it.value).where(
                        it.name == "mlflow.data.context",
                        it.input_uuid.in_([r["input_uuid"] for r in rows]),
                    )
                ).all()
            )
        out: dict[str, list[MlflowDataset]] = {}
        for r in rows:
            out.setdefault(r["destination_id"], []).append(
                MlflowDataset(
                    name=r["name"],
                    digest=r["digest"],
                    source_type=r["dataset_source_type"],
                    source=r["dataset_source"],
                    schema=r["dataset_schema"] or "",
                    profile=r["dataset_profile"] or "",
                    context=contexts.get(r["input_uuid"], "input"),
                )
            )
        return out

    def metric_history(self, run_id: str) -> list[MetricPoint]:
        """Every point of every metric of the run (NaN where MLflow flagged one)."""
        import sqlalchemy as sa

        m = self._table("metrics")
        assert m is not None
        with self._read() as conn:
            rows = conn.execute(
                sa.select(m.c.key, m.c.value, m.c.step, m.c.timestamp, m.c.is_nan)
                .where(m.c.run_uuid == run_id)
                .order_by(m.c.key, m.c.step, m.c.timestamp)
            )
            return [
                MetricPoint(key, math.nan if is_nan else float(value), int(step or 0), int(ts))
                for key, value, step, ts, is_nan in rows
            ]

    # -- registry ------------------------------------------------------------------------------

    def models(self) -> list[MlflowModel]:
        import sqlalchemy as sa

        models = self._table("registered_models")
        if models is None:
            return []
        with self._read() as conn:
            tags = _grouped(conn, self._table("registered_model_tags"), "name")
            aliases: dict[str, dict[str, int]] = {}
            table = self._table("registered_model_aliases")
            if table is not None:
                for name, alias, version in conn.execute(
                    sa.select(table.c.name, table.c.alias, table.c.version)
                ):
                    aliases.setdefault(name, {})[alias] = int(version)
            rows = conn.execute(sa.select(models).order_by(models.c.name)).mappings()
            return [
                MlflowModel(
                    name=r["name"],
                    description=r["description"] or "",
                    created_at=int(r["creation_time"] or 0),
                    tags=tags.get(r["name"], {}),
                    aliases=aliases.get(r["name"], {}),
                )
                for r in rows
            ]

    def versions(self, name: str) -> list[MlflowVersion]:
        import sqlalchemy as sa

        mv, mvt = self._table("model_versions"), self._table("model_version_tags")
        if mv is None:
            return []
        with self._read() as conn:
            tags: dict[int, dict[str, str]] = {}
            if mvt is not None:
                for version, key, value in conn.execute(
                    sa.select(mvt.c.version, mvt.c.key, mvt.c.value).where(mvt.c.name == name)
                ):
                    tags.setdefault(int(version), {})[key] = value or ""
            rows = conn.execute(
                sa.select(mv).where(mv.c.name == name).order_by(mv.c.version)
            ).mappings()
            return [
                MlflowVersion(
                    name=name,
                    version=int(r["version"]),
                    description=r["description"] or "",
                    created_at=int(r["creation_time"] or 0),
                    run_id=r["run_id"] or None,
                    location=r.get("storage_location") or r["source"] or "",
                    status=r["status"] or "READY",
                    tags=tags.get(int(r["version"]), {}),
                )
                for r in rows
                if r["current_stage"] != _DELETED_VERSION
            ]

    def logged_model_location(self, model_id: str) -> str | None:
        """Where an MLflow 3 logged model keeps its files ("models:/<id>" resolves here)."""
        import sqlalchemy as sa

        table = self._table("logged_models")
        if table is None:
            return None
        with self._read() as conn:
            found = conn.execute(
                sa.select(table.c.artifact_location).where(table.c.model_id == model_id)
            ).scalar()
        return str(found) if found else None

    def artifact_uri(self, run_id: str) -> str | None:
        import sqlalchemy as sa

        runs = self._table("runs")
        assert runs is not None
        with self._read() as conn:
            found = conn.execute(
                sa.select(runs.c.artifact_uri).where(runs.c.run_uuid == run_id)
            ).scalar()
        return str(found) if found else None


def _grouped(
    conn: Connection, table: sa.Table | None, by: str, ids: list[str] | None = None
) -> dict[str, dict[str, str]]:
    """{owner: {key: value}} of a key/value table (params, tags, latest metrics' keys)."""
    import sqlalchemy as sa

    if table is None:
        return {}
    out: dict[str, dict[str, str]] = {}
    owner = table.c[by]
    stmt = sa.select(owner, table.c.key, table.c.value)
    if ids is not None:
        stmt = stmt.where(owner.in_(ids))
    for who, key, value in conn.execute(stmt):
        out.setdefault(str(who), {})[key] = "" if value is None else str(value)
    return out
