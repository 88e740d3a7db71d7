"""Runs driven from another process over an API (an MLflow client through `compat.mlflow`).

    runs = RemoteRuns(open_stores())
    run = runs.create("churn", name="rf-1", user="ana", tags={"team": "a"})
    runs.log(run.id, params={"C": "1.0"}, metrics=[MetricPoint("auc", 0.9, 3, now)])
    runs.update(run.id, status="FINISHED", end_time=now)

Unlike `start_run`'s `Run`, nothing is buffered (each call is one transaction, answered when
committed) and no heartbeat is kept: the run's process is elsewhere, so it has no owner and
`admin doctor` judges it by its last metric. `delete` and `restore` are MLflow's: the run is
marked "deleted" (hidden from searches, refused new data) and kept until restored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.errors import ConflictError, NotFoundError

# the records this capability takes and returns (the edges import them from here)
from shipyard.stores.records import ArtifactRecord, DatasetRecord, MetricPoint, RunRecord
from shipyard.tracking.runs import _check_key, _check_value

if TYPE_CHECKING:
    from shipyard.stores import Stores
    from shipyard.stores.artifacts import ArtifactWriter

__all__ = ["DatasetRecord", "ForeignDataset", "MetricPoint", "RemoteRuns", "RunRecord"]
FOREIGN_KEY = "mlflow"  # where a dataset record keeps the description it came with


@dataclass(frozen=True)
class ForeignDataset:
    """A dataset another tool describes (MLflow's Dataset): a name, its digest and source,
    schema and profile as JSON text, and the role it played (`context`). No rows come with
    it, so shipyard cannot profile it: the record keeps the description whole (under
    `profile["mlflow"]`, beside an empty column profile), its columns from the schema, and a
    digest hashing the name, digest and source, so the same dataset is stored once."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str = ""
    profile: str = ""
    context: str = "input"

    def record(self) -> DatasetRecord:
        identity = "\0".join((self.name, self.digest, self.source_type, self.source))
        spec = _json_object(self.schema).get("mlflow_colspec")
        columns = {
            str(c["name"]): str(c.get("type"))
            for c in (spec if isinstance(spec, list) else [])
            if isinstance(c, dict) and c.get("name") is not None
        }
        rows = _json_object(self.profile).get("num_rows")
        kept = {k: getattr(self, k) for k in ("name", "digest", "source_type", "source")}
        kept |= {"schema": self.schema, "profile": self.profile}
        return DatasetRecord(
            digest=hashlib.sha256(identity.encode()).hexdigest(),
            name=self.name[:256],
            schema=columns,
            rows=rows if isinstance(rows, int) and not isinstance(rows, bool) else 0,
            profile={"rows": 0, "columns": {}, FOREIGN_KEY: kept},
            role=(self.context or "input")[:64],
        )


def _json_object(text: str) -> dict[str, Any]:
    try:
        found = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


class RemoteRuns:
    """Writes to runs whose process is elsewhere, over one set of stores."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self._runs = stores.metadata.runs
        self._edits = stores.metadata.run_edits

    def create(
        self,
        experiment: str,
        *,
        name: str | None = None,
        user: str | None = None,
        tags: Mapping[str, Any] | None = None,
        start_time: int | None = None,
        source: str | None = None,
        git_commit: str | None = None,
        parent_run_id: str | None = None,
    ) -> RunRecord:
        """A new RUNNING run in `experiment` (made if missing); `user` defaults to the caller."""
        for key in tags or {}:
            _check_key(key, "tag")
        run_id = self._runs.create_run(
            experiment=experiment,
            name=name,
            user=user or self.stores.actor,
            tags=tags,
            source=source,
            git_commit=git_commit[:64] if git_commit else None,
            parent_run_id=parent_run_id,
            owner=None,
            start_time=start_time,
        )
        return self._runs.get_run(run_id)

    def log(
        self,
        run_id: str,
        *,
        metrics: Sequence[MetricPoint] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Metrics, params and tags in one transaction (all or nothing); a param logged again
        with another value is refused, a deleted run refuses everything."""
        for point in metrics:
            _check_key(point.key, "metric")
            _check_value(point.key, point.value)
        for key in params or {}:
            _check_key(key, "param")
        for key in tags or {}:
            _check_key(key, "tag")
        self._runs.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def log_inputs(self, run_id: str, datasets: Sequence[ForeignDataset]) -> None:
        """Record the datasets the run used, each with its role; a deleted run refuses them."""
        for dataset in datasets:
            self._runs.log_dataset(run_id, dataset.record())

    def update(
        self,
        run_id: str,
        *,
        status: str | None = None,
        end_time: int | None = None,
        name: str | None = None,
    ) -> RunRecord:
        """Set the status, end time or name; returns the run as stored."""
        self._edits.update(run_id, status=status, end_time=end_time, name=name)
        return self._runs.get_run(run_id)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._edits.delete_tag(run_id, key)

    def delete(self, run_id: str) -> None:
        """Mark the run deleted: searches skip it, it refuses new data, `restore` undoes it."""
        self._edits.set_stage(run_id, "deleted")

    def restore(self, run_id: str) -> None:
        self._edits.set_stage(run_id, "active")

    def stage(self, run_id: str) -> str:
        """ "active" or "deleted"."""
        return self._edits.stage(run_id)

    # -- artifacts (an MLflow client's uploads through the server) -------------------------------

    @contextmanager
    def upload(self, run_id: str, path: str) -> Iterator[ArtifactWriter]:
        """A writer for one artifact of the run: stored and recorded when the block ends
        without an error, discarded otherwise. A deleted run refuses it."""
        from shipyard.stores.artifacts import clean_path

        path = clean_path(path)
        if self._edits.stage(run_id) != "active":
            raise ConflictError(f"run '{run_id}' is deleted: restore it to log to it")
        with self.stores.artifacts.writer() as out:
            yield out
            digest, size = out.commit()
        self._runs.log_artifact(run_id, ArtifactRecord(path, digest, size))

    def artifacts(self, run_id: str) -> tuple[ArtifactRecord, ...]:
        return self._runs.get_run(run_id).artifacts

    def artifact_file(self, run_id: str, path: str) -> tuple[ArtifactRecord, Path]:
        """One artifact's record and its verified local path."""
        from shipyard.stores.artifacts import clean_path

        path = clean_path(path)
        for record in self.artifacts(run_id):
            if record.path == path:
                return record, self.stores.artifacts.local_path(record.digest)
        raise NotFoundError(f"run '{run_id}' has no artifact {path!r}")

    def delete_artifacts(self, run_id: str, path: str) -> int:
        """Remove the artifact at `path`, or every artifact under it."""
        from shipyard.stores.artifacts import clean_path

        path = clean_path(path)
        gone = [
            r.path
            for r in self.artifacts(run_id)
            if r.path == path or r.path.startswith(path + "/")
        ]
        if not gone:
            raise NotFoundError(f"run '{run_id}' has no artifact at {path!r}")
        return self._edits.delete_artifacts(run_id, gone)
