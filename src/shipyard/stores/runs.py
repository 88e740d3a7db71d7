"""Experiments, runs, params, tags, metrics, datasets and run artifacts in SQL."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.stores import run_search, run_statements
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms
from shipyard.stores.database import dialect_insert
from shipyard.stores.records import (
    ArtifactRecord,
    Clause,
    DatasetRecord,
    MetricPoint,
    MetricSeries,
    OrderKey,
    RunRecord,
)
from shipyard.stores.run_statements import SearchRequest, SearchStatements

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shipyard.stores.database import Database

RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
# Statements that run per run are built once; their parameters are bound at execution.
_END_RUN = (
    t.runs.update()
    .where(t.runs.c.id == sa.bindparam("rid"))
    .values(
        status=sa.bindparam("status"),
        end_time=sa.bindparam("end_time"),
        error=sa.bindparam("error"),
    )
)
_RUN_STAGE = sa.select(t.runs.c.lifecycle_stage).where(t.runs.c.id == sa.bindparam("rid"))


class RunStore:
    """Tracking data. Every write is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._upserts: dict[tuple[str, str], Any] = {}
        self._statements: SearchStatements | None = None

    # -- experiments ---------------------------------------------------------------------------

    def get_or_create_experiment(self, name: str) -> int:
        with self._db.write() as conn:
            return _experiment_id(conn, name)

    def list_experiments(self) -> list[str]:
        with self._db.read() as conn:
            rows = conn.execute(sa.select(t.experiments.c.name).order_by(t.experiments.c.id))
            return [r[0] for r in rows]

    # -- runs ----------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        experiment: str,
        name: str | None,
        user: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        source: str | None = None,
        git_commit: str | None = None,
        git_dirty: bool | None = None,
        environment_digest: str | None = None,
        parent_run_id: str | None = None,
        owner: str | None = None,
        start_time: int | None = None,
    ) -> str:
        """`owner`: the process that runs it and renews its heartbeat (stores/owners.py); None
        for runs driven from elsewhere (the REST API), judged by their last metric."""
        run_id = uuid.uuid4().hex
        ts = now_ms() if start_time is None else start_time
        with self._db.write() as conn:
            # looked up in the run's own transaction: experiments are renamed and deleted
            experiment_id = _experiment_id(conn, experiment)
            conn.execute(
                t.runs.insert(),
                {
                    "id": run_id,
                    "experiment_id": experiment_id,
                    "name": name or run_id[:8],
                    "status": "RUNNING",
                    "start_time": ts,
                    "end_time": None,
                    "error": None,
                    "user": user,
                    "source": source,
                    "git_commit": git_commit,
                    "git_dirty": git_dirty,
                    "environment_digest": environment_digest,
                    "parent_run_id": parent_run_id,
                    "owner": owner,
                    "heartbeat_at": ts if owner else None,
                },
            )
            if params:
                conn.execute(
                    t.params.insert(),
                    [{"run_id": run_id, "key": str(k), "value": str(v)} for k, v in params.items()],
                )
            self._write_tags(conn, run_id, tags or {})
        return run_id

    def end_run(
        self,
        run_id: str,
        status: str,
        error: str | None = None,
        metrics: Sequence[MetricPoint] = (),
    ) -> None:
        """Mark the run ended; `metrics` (the last buffered points) land in the same
        transaction."""
        if status not in RUN_STATUSES:
            raise InvalidArgumentError(f"status must be one of {RUN_STATUSES}, not {status!r}")
        with self._db.write() as conn:
            if metrics:
                self._write_metrics(conn, run_id, metrics)
            result = conn.execute(
                _END_RUN, {"rid": run_id, "status": status, "end_time": now_ms(), "error": error}
            )
            if result.rowcount == 0:
                raise NotFoundError(f"run '{run_id}' not found")

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[MetricPoint] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Write metrics, params and tags in one transaction (all or nothing)."""
        with self._db.write() as conn:
            self._require_run(conn, run_id)
            if params:
                self._write_params(conn, run_id, params)
            if tags:
                self._write_tags(conn, run_id, tags)
            if metrics:
                self._write_metrics(conn, run_id, metrics)

    def _require_run(self, conn: Connection, run_id: str) -> None:
        """NotFoundError for no such run; InvalidArgumentError for a deleted one (restore it)."""
        stage = conn.execute(_RUN_STAGE, {"rid": run_id}).scalar()
        if stage is None:
            raise NotFoundError(f"run '{run_id}' not found")
        if stage != "active":
            raise InvalidArgumentError(
                f"run '{run_id}' is {stage}; restore it before logging to it", field="run_id"
            )

    def _write_params(self, conn: Connection, run_id: str, params: Mapping[str, Any]) -> None:
        if not params:
            return
        new = {str(k): str(v) for k, v in params.items()}
        existing = dict(
            conn.execute(
                sa.select(t.params.c.key, t.params.c.value).where(
                    t.params.c.run_id == run_id, t.params.c.key.in_(list(new))
                )
            ).all()
        )
        for key, value in existing.items():
            if new[key] != value:
                raise InvalidArgumentError(
                    f"param '{key}' is already {value!r} for this run; params are immutable "
                    f"(tried {new[key]!r}). Log a metric or a tag for values that change."
                )
        rows = [
            {"run_id": run_id, "key": k, "value": v} for k, v in new.items() if k not in existing
        ]
        if rows:
            conn.execute(t.params.insert(), rows)

    def _upsert(self, conn: Connection, name: str) -> Any:
        """Upsert statements are built once per dialect: building `excluded` and the conflict
        clause costs more than running the statement."""
        key = (conn.dialect.name, name)
        stmt = self._upserts.get(key)
        if stmt is not None:
            return stmt
        if name == "tags":
            stmt = dialect_insert(conn, t.run_tags)
            stmt = stmt.on_conflict_do_update(
                index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
            )
        else:
            stmt = dialect_insert(conn, t.latest_metrics)
            ex = stmt.excluded
            lm = t.latest_metrics.c
            stmt = stmt.on_conflict_do_update(
                index_elements=["run_id", "key"],
                set_={"value": ex.value, "step": ex.step, "timestamp": ex.timestamp},
                where=sa.or_(
                    ex.step > lm.step, sa.and_(ex.step == lm.step, ex.timestamp >= lm.timestamp)
                ),
            )
        self._upserts[key] = stmt
        return stmt

    def _write_tags(self, conn: Connection, run_id: str, tags: Mapping[str, Any]) -> None:
        if not tags:
            return
        stmt = self._upsert(conn, "tags")
        conn.execute(
            stmt, [{"run_id": run_id, "key": str(k), "value": str(v)} for k, v in tags.items()]
        )

    def _write_metrics(self, conn: Connection, run_id: str, points: Sequence[MetricPoint]) -> None:
        conn.execute(
            t.metrics.insert(),
            [
                {
                    "run_id": run_id,
                    "key": p.key,
                    "value": _stored(p.value),
                    "step": p.step,
                    "timestamp": p.timestamp,
                }
                for p in points
            ],
        )
        latest: dict[str, MetricPoint] = {}
        for p in points:
            cur = latest.get(p.key)
            if cur is None or (p.step, p.timestamp) >= (cur.step, cur.timestamp):
                latest[p.key] = p
        stmt = self._upsert(conn, "latest_metrics")
        conn.execute(
            stmt,
            [
                {
                    "run_id": run_id,
                    "key": p.key,
                    "value": _stored(p.value),
                    "step": p.step,
                    "timestamp": p.timestamp,
                }
                for p in latest.values()
            ],
        )

    def log_dataset(self, run_id: str, dataset: DatasetRecord) -> None:
        with self._db.write() as conn:
            self._require_run(conn, run_id)
            stmt = dialect_insert(conn, t.datasets).values(
                digest=dataset.digest,
                name=dataset.name,
                schema=dataset.schema,
                rows=dataset.rows,
                profile=dataset.profile,
                created_at=now_ms(),
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["digest"]))
            stmt = dialect_insert(conn, t.dataset_inputs).values(
                run_id=run_id, dataset_digest=dataset.digest, role=dataset.role, name=dataset.name
            )
            conn.execute(stmt.on_conflict_do_nothing())

    def get_dataset(self, digest: str) -> DatasetRecord:
        with self._db.read() as conn:
            row = conn.execute(sa.select(t.datasets).where(t.datasets.c.digest == digest)).first()
        if row is None:
            raise NotFoundError(f"dataset '{digest}' not found")
        return DatasetRecord(row.digest, row.name, row.schema, row.rows, row.profile)

    def log_artifact(self, run_id: str, artifact: ArtifactRecord) -> None:
        with self._db.write() as conn:
            self._require_run(conn, run_id)
            stmt = dialect_insert(conn, t.run_artifacts).values(
                run_id=run_id, path=artifact.path, digest=artifact.digest, size=artifact.size
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["run_id", "path"],
                    set_={"digest": stmt.excluded.digest, "size": stmt.excluded.size},
                )
            )

    # -- reads ---------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        runs = self._load_runs(
            sa.select(*run_statements.run_columns())
            .select_from(run_search.run_join())
            .where(t.runs.c.id == run_id)
        )
        if not runs:
            full = self.run_id_of_prefix(run_id)
            runs = self._load_runs(
                sa.select(*run_statements.run_columns())
                .select_from(run_search.run_join())
                .where(t.runs.c.id == full)
            )
            if not runs:
                raise NotFoundError(f"run '{run_id}' not found", kind="run", name=run_id)
        return runs[0]

    def run_id_of_prefix(self, prefix: str) -> str:
        """The id of the one run whose id starts with `prefix`: NotFoundError when none does,
        InvalidArgumentError listing a few when several do."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._db.read() as conn:
            ids = list(
                conn.execute(
                    sa.select(t.runs.c.id)
                    .where(t.runs.c.id.like(f"{escaped}%", escape="\\"))
                    .order_by(t.runs.c.id)
                    .limit(6)
                ).scalars()
            )
        if not ids:
            raise NotFoundError(f"run '{prefix}' not found", kind="run", name=prefix)
        if len(ids) > 1:
            shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
            raise InvalidArgumentError(
                f"run id prefix '{prefix}' matches several runs ({shown}); give more of the id",
                field="run_id",
                candidates=ids[:5],
            )
        return str(ids[0])

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        m = t.metrics.c
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(m.key, m.value, m.step, m.timestamp)
                .where(m.run_id == run_id, m.key == key)
                .order_by(m.step, m.timestamp, m.id)
            )
            return [MetricPoint(r.key, _loaded(r.value), r.step, r.timestamp) for r in rows]

    def metric_series(
        self,
        run_id: str,
        key: str,
        *,
        max_points: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> MetricSeries:
        """`metric_series.metric_series`: a step range, min/max buckets past `max_points`."""
        from shipyard.stores.metric_series import metric_series

        with self._db.read() as conn:
            return metric_series(
                conn, run_id, key, max_points=max_points, min_step=min_step, max_step=max_step
            )

    def search_runs(
        self,
        *,
        experiments: Sequence[str] | None = None,
        clauses: Sequence[Clause] = (),
        order_by: Sequence[OrderKey] = (),
        limit: int | None = 1000,
        offset: int = 0,
        after: Sequence[Any] | None = None,
        keys: Mapping[str, Sequence[str]] | None = None,
        max_keys: int | None = None,
        lifecycle: str | None = "active",
    ) -> list[RunRecord]:
        """Runs matching, in `run_search.ordered`'s total order; `after` (the sort values of
        the previous page's last run, `run_search.sort_values`) starts a keyset page; `keys`
        and `max_keys` narrow the params, metrics and tags returned (`_children`); `lifecycle`:
        "active" (default), "deleted" or None (both)."""
        request = SearchRequest(
            experiments, clauses, order_by, limit, offset, after, keys, max_keys, lifecycle
        )
        with self._db.read() as conn:
            if self._statements is None:
                self._statements = SearchStatements(conn.dialect.name)
            return run_statements.records(self._statements.rows(conn, request), {}, {})

    def column_summary(
        self, *, experiments: Sequence[str] | None = None, clauses: Sequence[Clause] = ()
    ) -> dict[str, Any]:
        """`run_search.column_summary` over the runs matching."""
        with self._db.read() as conn:
            return run_search.column_summary(conn, experiments, clauses)

    def group_summary(
        self,
        *,
        by: OrderKey,
        metric: str | None = None,
        experiments: Sequence[str] | None = None,
        clauses: Sequence[Clause] = (),
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """`run_search.group_summary` over the runs matching."""
        with self._db.read() as conn:
            return run_search.group_summary(conn, experiments, clauses, by, metric, limit)

    def _load_runs(self, stmt: sa.Select[Any]) -> list[RunRecord]:
        """The runs `stmt` (over `run_search.run_join()`) selects, with their details."""
        stmt = stmt.add_columns(*run_statements.children(self._db.dialect))
        with self._db.read() as conn:
            rows = conn.execute(stmt).all()
            if not rows:
                return []
            datasets, artifacts = _details(conn, [r.id for r in rows])
        return run_statements.records(rows, datasets, artifacts)


def _details(
    conn: Connection, ids: list[str]
) -> tuple[dict[str, list[DatasetRecord]], dict[str, list[ArtifactRecord]]]:
    """The datasets and the artifacts of the runs `ids`, by run id."""
    datasets: dict[str, list[DatasetRecord]] = {}
    artifacts: dict[str, list[ArtifactRecord]] = {}
    di, ds = t.dataset_inputs.c, t.datasets.c
    for r in conn.execute(
        sa.select(di.run_id, di.role, di.name, ds.digest, ds.schema, ds.rows, ds.profile)
        .join_from(t.dataset_inputs, t.datasets, di.dataset_digest == ds.digest)
        .where(di.run_id.in_(ids))
    ):
        datasets.setdefault(r.run_id, []).append(
            DatasetRecord(r.digest, r.name, r.schema, r.rows, r.profile, r.role)
        )
    ra = t.run_artifacts.c
    for a in conn.execute(
        sa.select(ra.run_id, ra.path, ra.digest, ra.size)
        .where(ra.run_id.in_(ids))
        .order_by(ra.path)
    ):
        artifacts.setdefault(a.run_id, []).append(ArtifactRecord(a.path, a.digest, a.size))
    return datasets, artifacts


def _experiment_id(conn: Connection, name: str) -> int:
    e = t.experiments.c
    found = conn.execute(sa.select(e.id).where(e.name == name)).scalar()
    if found is not None:
        return int(found)
    stmt = dialect_insert(conn, t.experiments).values(name=name, created_at=now_ms())
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    return int(conn.execute(sa.select(e.id).where(e.name == name)).scalar_one())


def _stored(value: float) -> float | None:
    return None if math.isnan(value) else value


def _loaded(value: float | None) -> float:
    return math.nan if value is None else value
