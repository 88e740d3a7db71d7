"""Logged models: what an MLflow 3 client logs as a model before it registers it.

    models = LoggedModels(stores)
    m = models.create(experiment_id, "model", source_run_id=run_id)
    with models.upload(m.id, "MLmodel") as out: out.write(data)
    models.finalize(m.id, "LOGGED_MODEL_READY")
    models.download(m.id, folder)        # the model directory, to register it

Files live in the content-addressed artifact store, named by path under the model.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import ConflictError, NotFoundError
from shipyard.stores.artifacts import clean_path

# the records this capability takes and returns (the edges import them from here)
from shipyard.stores.logged_models import LoggedModelRecord
from shipyard.stores.records import ArtifactRecord

if TYPE_CHECKING:
    from shipyard.stores import Stores
    from shipyard.stores.artifacts import ArtifactWriter


def under(
    records: Sequence[ArtifactRecord], prefix: str
) -> list[tuple[str, ArtifactRecord | None]]:
    """The direct children of `prefix` among `records`' paths: (name, record) for a file,
    (name, None) for a directory, sorted by name."""
    base = f"{prefix}/" if prefix else ""
    found: dict[str, ArtifactRecord | None] = {}
    for record in records:
        if not record.path.startswith(base):
            continue
        rest = record.path[len(base) :]
        head, _, tail = rest.partition("/")
        if tail:
            found.setdefault(base + head, None)
        else:
            found[base + head] = record
    return sorted(found.items())


class LoggedModels:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self._store = stores.metadata.logged_models

    def create(
        self,
        experiment_id: int,
        name: str,
        *,
        model_type: str | None = None,
        source_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> LoggedModelRecord:
        if source_run_id:
            self.stores.metadata.runs.get_run(source_run_id)  # NotFoundError names it
        return self._store.create(
            experiment_id,
            name,
            creator=self.stores.actor,
            model_type=model_type,
            source_run_id=source_run_id,
            tags=tags,
            params=params,
        )

    def get(self, model_id: str, *, allow_deleted: bool = True) -> LoggedModelRecord:
        return self._store.get(model_id, allow_deleted=allow_deleted)

    def search(
        self,
        experiment_ids: Sequence[int],
        *,
        stage: str | None = "active",
        source_run_id: str | None = None,
        names: Sequence[str] = (),
    ) -> list[LoggedModelRecord]:
        return self._store.search(
            experiment_ids, stage=stage, source_run_id=source_run_id, names=names
        )

    def finalize(self, model_id: str, status: str) -> LoggedModelRecord:
        return self._store.update(model_id, status=status)

    def set_tags(self, model_id: str, tags: Mapping[str, str]) -> LoggedModelRecord:
        return self._store.update(model_id, set_tags=tags)

    def delete_tag(self, model_id: str, key: str) -> LoggedModelRecord:
        if key not in self._store.get(model_id).tags:
            raise NotFoundError(f"logged model '{model_id}' has no tag {key!r}")
        return self._store.update(model_id, delete_tag=key)

    def log_params(self, model_id: str, params: Mapping[str, str]) -> LoggedModelRecord:
        return self._store.update(model_id, set_params=params)

    def delete(self, model_id: str) -> LoggedModelRecord:
        return self._store.update(model_id, stage="deleted")

    # -- files -----------------------------------------------------------------------------------

    @contextmanager
    def upload(self, model_id: str, path: str) -> Iterator[ArtifactWriter]:
        """A writer for one file of the model: stored and recorded when the block ends
        without an error, discarded otherwise. A deleted model refuses it."""
        path = clean_path(path)
        if self._store.get(model_id).lifecycle_stage != "active":
            raise ConflictError(f"logged model '{model_id}' is deleted: it takes no more files")
        with self.stores.artifacts.writer() as out:
            yield out
            digest, size = out.commit()
        self._store.put_file(model_id, ArtifactRecord(path, digest, size))

    def files(self, model_id: str) -> list[ArtifactRecord]:
        return self._store.files(model_id)

    def file(self, model_id: str, path: str) -> tuple[ArtifactRecord, Path]:
        """One file's record and its verified local path."""
        path = clean_path(path)
        for record in self._store.files(model_id):
            if record.path == path:
                return record, self.stores.artifacts.local_path(record.digest)
        raise NotFoundError(f"logged model '{model_id}' has no file {path!r}")

    def delete_files(self, model_id: str, path: str) -> int:
        """Remove the file at `path`, or every file under it."""
        path = clean_path(path)
        gone = [r.path for r in self._store.files(model_id) if _within(r.path, path)]
        if not gone:
            raise NotFoundError(f"logged model '{model_id}' has nothing at {path!r}")
        return self._store.delete_files(model_id, gone)

    def download(self, model_id: str, folder: Path, prefix: str = "") -> Path:
        """Copy the model's files (under `prefix`) into `folder`; returns `folder`."""
        prefix = clean_path(prefix, allow_empty=True)
        for record in self._store.files(model_id):
            if prefix and not _within(record.path, prefix):
                continue
            relative = record.path[len(prefix) :].lstrip("/") if prefix else record.path
            dest = folder / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.stores.artifacts.local_path(record.digest), dest)
        return folder


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


__all__ = ["ArtifactRecord", "LoggedModelRecord", "LoggedModels", "clean_path", "under"]
