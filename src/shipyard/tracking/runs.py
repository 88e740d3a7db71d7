"""Runs: params, metrics, tags, datasets, artifacts and models of one training attempt.

    with shipyard.start_run(experiment="churn", params={"C": 1.0}) as run:
        run.log_metrics({"auc": 0.93}, step=3)
        mv = run.log_model(model, name="churn", input_example=X[:5])

Metrics are buffered and written in batches (by count and by age), flushed when the run ends
and at interpreter exit: a tight training loop never waits on the database.

A run records the process that runs it and a heartbeat (every `run_heartbeat_seconds`, from
one daemon thread for all runs of the process), so `shipyard admin doctor` can tell a run whose
process was killed from a live one.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import math
import threading
import time
import traceback
import weakref
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError
from shipyard.stores.records import ArtifactRecord, DatasetRecord, MetricPoint

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.flavors import OnnxMode, Serialization
    from shipyard.stores import MetadataStore, Stores
    from shipyard.stores.records import ModelVersionRecord, RunRecord

log = logging.getLogger("shipyard.tracking")
_MAX_KEY = 250
_ACTIVE: weakref.WeakSet[Run] = weakref.WeakSet()
_HEARTBEAT: threading.Thread | None = None
_HEARTBEAT_LOCK = threading.Lock()
# the run that runs started here attach to (a pipeline step's run, see `attached_to`)
_ATTACHED: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "shipyard_attached_run", default=None
)


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
        raise InvalidArgumentError(
            f"{what} name must be a non-empty string of at most {_MAX_KEY} characters, got {key!r}",
            field=what,
        )
    return key


def _check_value(key: str, value: Any) -> float:
    if isinstance(value, bool) or (
        not isinstance(value, (int, float)) and not hasattr(value, "__float__")
    ):
        raise InvalidArgumentError(
            f"metric '{key}' must be a number, got {type(value).__name__}", field=key
        )
    v = float(value)
    if math.isinf(v):
        raise InvalidArgumentError(f"metric '{key}' is infinite", field=key)
    return v


class Run:
    """One tracked run. Use it as a context manager: an exception inside marks it FAILED."""

    def __init__(
        self,
        stores: Stores,
        run_id: str,
        experiment: str,
        *,
        flush_points: int = 5000,
        flush_seconds: float = 5.0,
    ) -> None:
        self.stores = stores
        self.id = run_id
        self.experiment = experiment
        self._flush_points = flush_points
        self._flush_seconds = flush_seconds
        self._buffer: list[MetricPoint] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._ended = False
        _ACTIVE.add(self)

    def __repr__(self) -> str:
        return f"<Run {self.id[:8]} experiment={self.experiment!r}>"

    # -- params and tags -------------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        for k in params:
            _check_key(k, "param")
        self.stores.metadata.runs.log_batch(self.id, params=params)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k in tags:
            _check_key(k, "tag")
        self.stores.metadata.runs.log_batch(self.id, tags=tags)

    # -- metrics ---------------------------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Buffer metric points; they reach the store in batches."""
        ts = timestamp if timestamp is not None else time.time_ns() // 1_000_000
        s = int(step) if step is not None else 0
        points = [
            MetricPoint(_check_key(k, "metric"), _check_value(k, v), s, ts)
            for k, v in metrics.items()
        ]
        with self._lock:
            self._buffer.extend(points)
            due = (
                len(self._buffer) >= self._flush_points
                or time.monotonic() - self._last_flush >= self._flush_seconds
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Write buffered metrics now (one transaction)."""
        with self._lock:
            points, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
            if points:
                try:
                    self.stores.metadata.runs.log_batch(self.id, metrics=points)
                except BaseException:
                    self._buffer[:0] = points  # keep them for the next attempt
                    raise

    # -- datasets, artifacts, models -------------------------------------------------------------

    def log_dataset(
        self, data: Any, *, name: str, role: str = "train", keep_rows: bool = False
    ) -> DatasetRecord:
        """Record a dataset's content hash, schema, row count and column profile.
        `keep_rows` also stores the rows (Parquet, a run artifact `datasets/<role>/<name>.parquet`)
        so `shipyard models optimize` can use them: "train" rows to distill and calibrate,
        "test"/"validation" rows (with the label column) to measure and prune."""
        from shipyard.tracking.datasets import as_frame, fingerprint, rows_path

        record = fingerprint(data, name=name, role=role)
        self.stores.metadata.runs.log_dataset(self.id, record)
        if keep_rows:
            import io

            buffer = io.BytesIO()
            as_frame(data).to_parquet(buffer, index=False)
            digest, size = self.stores.artifacts.put_bytes(buffer.getvalue())
            self.stores.metadata.runs.log_artifact(
                self.id, ArtifactRecord(rows_path(role, name), digest, size)
            )
        return record

    def log_artifact(self, path: str | Path, name: str | None = None) -> ArtifactRecord:
        """Copy a file into the artifact store and attach it to this run."""
        src = Path(path)
        if not src.is_file():
            raise InvalidArgumentError(f"log_artifact: no such file {src}", field="path")
        digest, size = self.stores.artifacts.put_file(src)
        record = ArtifactRecord(name or src.name, digest, size)
        self.stores.metadata.runs.log_artifact(self.id, record)
        return record

    def log_model(
        self,
        model: Any,
        *,
        name: str,
        input_example: Any,
        serialization: Serialization = "skops",
        onnx: OnnxMode = "auto",
        description: str = "",
        tags: dict[str, str] | None = None,
        reference_data: Any = None,
        reference_target: Any = None,
        allow_missing: bool | Iterable[str] = (),
        code: Iterable[str | Path] | None = None,
        artifacts: Mapping[str, str | Path] | None = None,
        pip_requirements: Iterable[str] = (),
    ) -> ModelVersionRecord:
        """Save `model` and register it as a new version of `name`, linked to this run.
        A `shipyard.PythonModel` goes with its `code` and `artifacts`; `pip_requirements` adds
        to the versions locked with the model (see `Registry.register`).
        Pass the training data as `reference_data` (and `reference_target`) to monitor
        prediction and label drift too. Requests with a missing value (null) in a column the
        model was trained without them are refused; `allow_missing` names the columns (True:
        all) where the model handles them (see `Registry.register`)."""
        from shipyard.registry import Registry

        return Registry(self.stores).register(
            name,
            model,
            input_example=input_example,
            run_id=self.id,
            serialization=serialization,
            onnx=onnx,
            description=description,
            tags=tags,
            reference_data=reference_data,
            reference_target=reference_target,
            allow_missing=allow_missing,
            code=code,
            artifacts=artifacts,
            pip_requirements=pip_requirements,
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def end(
        self, status: Literal["FINISHED", "FAILED", "KILLED"] = "FINISHED", error: str | None = None
    ) -> None:
        if self._ended:
            return
        with self._lock:
            points, self._buffer = self._buffer, []
        self._ended = True
        _ACTIVE.discard(self)
        # the last metrics and the status change commit together
        self.stores.metadata.runs.end_run(self.id, status, error, metrics=points)

    def info(self) -> RunRecord:
        self.flush()
        return self.stores.metadata.runs.get_run(self.id)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.end("FINISHED")
        elif isinstance(exc, KeyboardInterrupt):
            self.end("KILLED", "KeyboardInterrupt")
        else:
            text = "".join(traceback.format_exception(exc_type, exc, tb))[-8000:]
            self.end("FAILED", text)


@contextlib.contextmanager
def attached_to(run_id: str | None) -> Iterator[None]:
    """Inside this block, `start_run()` without `parent_run_id` starts a child of `run_id`
    (in its experiment unless one is named). Pipelines run each step inside one, so a run a
    step starts is linked to the step's run instead of being an orphan."""
    token = _ATTACHED.set(run_id)
    try:
        yield
    finally:
        _ATTACHED.reset(token)


def start_run(
    experiment: str | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    name: str | None = None,
    parent_run_id: str | None = None,
    source: str | None = None,
    settings: Settings | None = None,
) -> Run:
    """Start a run (records git commit, dirty flag and the environment). `source` is the code
    file the run is about (default: the running script); its folder's git commit is recorded.
    `experiment` defaults to "default".

    Inside a pipeline step, the run is a nested child of the step's run (as MLflow's
    `start_run(nested=True)`): it lands in the step's experiment and is linked to it, while
    the step's own run stays the pipeline's to end."""
    from shipyard.config import get_settings
    from shipyard.stores import open_stores
    from shipyard.stores.owners import current_owner
    from shipyard.tracking.environment import code_version

    settings = settings or get_settings()
    attached = _ATTACHED.get() if parent_run_id is None else None
    if experiment is not None and not experiment:
        raise InvalidArgumentError("experiment name must not be empty", field="experiment")
    for k in params or {}:
        _check_key(k, "param")
    stores = open_stores(settings)
    if attached is not None:
        parent_run_id = attached
        if experiment is None:
            experiment = stores.metadata.runs.get_run(attached).experiment
    experiment = experiment or "default"
    code = code_version(source)
    env_digest = _environment_digest(stores)
    run_id = stores.metadata.runs.create_run(
        experiment=experiment,
        name=name,
        user=stores.actor,
        params=params,
        tags=tags,
        source=code.source,
        git_commit=code.commit,
        git_dirty=code.dirty,
        environment_digest=env_digest,
        parent_run_id=parent_run_id,
        owner=current_owner(),
    )
    run = Run(
        stores,
        run_id,
        experiment,
        flush_points=settings.metrics_flush_points,
        flush_seconds=settings.metrics_flush_seconds,
    )
    _start_heartbeat(settings.run_heartbeat_seconds)
    return run


def _start_heartbeat(seconds: float) -> None:
    global _HEARTBEAT
    with _HEARTBEAT_LOCK:
        if _HEARTBEAT is None or not _HEARTBEAT.is_alive():  # none yet, or we were forked
            _HEARTBEAT = threading.Thread(
                target=_heartbeat_loop, args=(seconds,), name="shipyard-run-heartbeat", daemon=True
            )
            _HEARTBEAT.start()


def _heartbeat_loop(seconds: float) -> None:
    """Renew the heartbeat of every open run of this process, one UPDATE per database."""
    from shipyard.stores.owners import current_owner

    while True:
        time.sleep(seconds)
        by_store: dict[MetadataStore, list[str]] = {}
        with contextlib.suppress(RuntimeError):  # the set changed while we copied it
            for run in list(_ACTIVE):
                if run.stores.metadata.db.is_open:
                    by_store.setdefault(run.stores.metadata, []).append(run.id)
        for metadata, ids in by_store.items():
            try:
                metadata.recovery.heartbeat_runs(ids, owner=current_owner())
            except Exception:  # the database may be away for a while; try again next beat
                log.warning("renewing the heartbeat of %d run(s) failed", len(ids), exc_info=True)


_ENV_DIGESTS: dict[str, str] = {}


def _environment_digest(stores: Stores) -> str:
    """The environment is stored once per artifact store and process, not once per run."""
    from shipyard.tracking.environment import environment_json

    root = str(getattr(stores.artifacts, "root", id(stores.artifacts)))
    digest = _ENV_DIGESTS.get(root)
    if digest is None or not stores.artifacts.exists(digest):
        digest, _ = stores.artifacts.put_bytes(environment_json())
        _ENV_DIGESTS[root] = digest
    return digest


@atexit.register
def _flush_at_exit() -> None:
    """A normal interpreter exit loses no metric; runs left open are marked FINISHED."""
    for run in list(_ACTIVE):
        # the database may be gone at exit; there is nothing useful left to do then
        with contextlib.suppress(Exception):
            run.end("FINISHED")
