"""Score files with a registered model, chunk by chunk.

The parent plans chunks (whole Parquet row groups that the workers read themselves, or streamed
record batches / CSV blocks, never a whole file in memory) and hands them to worker processes,
at most two per worker in flight, so memory stays bounded by `chunk_rows` x in-flight chunks
whatever the input size. Each worker loads the model
once and writes each chunk's predictions to `part-<file>-<chunk>.parquet` under a temporary name,
then renames it: a chunk's output either exists whole or not at all. A rerun with the same job
(`_job.json`: model version, inputs, chunk size) skips finished chunks, so a crash costs only the
chunks in flight; it first removes the temporary files a killed run left behind (the run
assumes it is the only one writing to its output folder).

Output columns: the input columns kept (`keep`, default all), `_prediction`, one
`_proba_<class>` per class when the model has probabilities (`proba`: None = when it has
them, True = required, an error before scoring if it has none, False = never), and
`_model_version`.

A model version that names a feature service (tag `feature_service`) gets its features joined
point-in-time from the offline store, as for training, at each row's event time (the
`timestamp` column, "event_timestamp" unless told): see batch.features.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import AlreadyExistsError, InvalidArgumentError
from shipyard.stores.owners import pid_alive

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from shipyard.batch.features import FeatureJoin
    from shipyard.config import Settings
    from shipyard.stores.records import ModelVersionRecord

JOB_FILE = "_job.json"
# a chunk written by a worker, not yet renamed: see _score_chunk
_CHUNK_TMP = re.compile(r"part-\d{5}-\d{6}\.parquet\.tmp-(\d+)")


@dataclass
class ScoreResult:
    model: str
    version: int
    files: int
    chunks: int
    skipped_chunks: int
    rows: int
    seconds: float
    output: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_second": self.rows_per_second}


def input_files(path: Path) -> list[Path]:
    if not path.exists():
        raise InvalidArgumentError(f"no such file or folder: {path}", field="input")
    if path.is_file():
        files = [path]
    else:
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in (".parquet", ".pq", ".csv")
        )
    if not files:
        raise InvalidArgumentError(f"{path} holds no .parquet or .csv file", field="input")
    return files


def _chunks(path: Path, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of at most `chunk_rows` rows, streamed."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".csv":
        reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 22))
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in reader:
            pending.append(batch)
            size += batch.num_rows
            while size >= chunk_rows:
                yield from _emit(pending, chunk_rows)
                size = sum(b.num_rows for b in pending)
        if size:
            yield from _emit(pending, size)
        return
    yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)


@dataclass(frozen=True)
class RowGroups:
    """A chunk the worker reads itself: whole row groups of a Parquet file (no copy of the
    data through the pipe to the worker)."""

    path: str
    row_groups: tuple[int, ...]
    num_rows: int
    names: tuple[str, ...]


def _plan(path: Path, chunk_rows: int) -> Iterator[pa.RecordBatch | RowGroups]:
    """The chunks of a file. A Parquet file whose row groups hold at most `chunk_rows` rows is
    cut at row-group boundaries (whole row groups, up to `chunk_rows` per chunk) and read by the
    workers themselves; anything else (CSV, larger row groups) is streamed by the parent in
    `chunk_rows` batches. Memory stays bounded by `chunk_rows` either way."""
    import pyarrow.parquet as pq

    if path.suffix.lower() != ".csv":
        meta = pq.ParquetFile(path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        if sizes and max(sizes) <= chunk_rows:
            names = tuple(pq.ParquetFile(path).schema_arrow.names)
            group: list[int] = []
            rows = 0
            for i, n in enumerate(sizes):
                if group and rows + n > chunk_rows:
                    yield RowGroups(str(path), tuple(group), rows, names)
                    group, rows = [], 0
                group.append(i)
                rows += n
            if group:
                yield RowGroups(str(path), tuple(group), rows, names)
            return
    yield from _chunks(path, chunk_rows)


def _emit(pending: list[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    table = pa.Table.from_batches(pending).combine_chunks()
    head, rest = table.slice(0, rows), table.slice(rows)
    pending.clear()
    pending.extend(rest.to_batches())
    yield from head.to_batches(max_chunksize=rows)


def rows_of(path: Path) -> int | None:
    if path.suffix.lower() == ".csv":
        return None
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


# -- the worker side ------------------------------------------------------------------------------

_MODEL: Any = None
_JOIN: Callable[[pd.DataFrame], pd.DataFrame] | None = None  # adds a feature service's columns


def _init_worker(
    settings_json: str, uri: str, trusted: bool, features: FeatureJoin | None = None
) -> None:
    global _MODEL, _JOIN
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker process
    from shipyard.config import Settings
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    settings = Settings.model_validate_json(settings_json)
    _MODEL = Registry(open_stores(settings)).load(uri, trusted=trusted)
    from shipyard.batch.features import joiner

    _JOIN = joiner(settings, features) if features is not None else None


def _score_chunk(
    batch: pa.RecordBatch | RowGroups, target: str, keep: list[str] | None, proba: bool = True
) -> int:
    """Predict one chunk and write it atomically. Runs in a worker process."""
    import pyarrow.parquet as pq

    if isinstance(batch, RowGroups):
        batch = pq.ParquetFile(batch.path).read_row_groups(list(batch.row_groups))
    tmp = f"{target}.tmp-{os.getpid()}"
    write_parquet(score_table(_MODEL, batch, keep, _JOIN, proba=proba), tmp)
    os.replace(tmp, target)
    return int(batch.num_rows)


def _remove_stale_temporaries(out: Path) -> None:
    """Remove the chunks an earlier, killed run wrote but never renamed (their chunks are
    scored again). Only names `_score_chunk` writes are touched, and only those of a process
    that is gone: another run writing here now keeps its chunks in progress."""
    for path in out.glob("part-*.parquet.tmp-*"):
        m = _CHUNK_TMP.fullmatch(path.name)
        if m and not pid_alive(int(m.group(1))):
            path.unlink(missing_ok=True)


def write_parquet(table: pa.Table, path: str) -> None:
    """zstd, dictionary encoding only for non-float columns: floats rarely repeat, and trying
    to dictionary-encode them triples the write time for nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    pq.write_table(table, path, compression="zstd", use_dictionary=dictionary)


def score_table(
    model: Any,
    batch: pa.RecordBatch | pa.Table,
    keep: list[str] | None,
    join: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    *,
    proba: bool = True,
) -> pa.Table:
    """The output table of one chunk: kept input columns, prediction, probabilities (unless
    not `proba`), version. `join` adds the model's features to the chunk's rows first (see
    batch.features)."""
    import numpy as np
    import pyarrow as pa

    frame = batch.to_pandas()
    if join is not None:
        frame = join(frame)
    columns = model.signature.check_frame(frame)
    if model.has_proba and proba:
        labels, probs = (
            model.predictor.predict_both(columns, True)
            if hasattr(model.predictor, "predict_both")
            else (
                model.predictor.predict_columns(columns),
                model.predictor.predict_proba_columns(columns),
            )
        )
    else:
        labels, probs = model.predictor.predict_columns(columns), None
    out = {name: batch.column(name) for name in (keep if keep is not None else batch.schema.names)}
    out["_prediction"] = pa.array(np.asarray(labels))
    if probs is not None:
        classes = model.classes or list(range(probs.shape[1]))
        for i, label in enumerate(classes):
            out[f"_proba_{label}"] = pa.array(np.asarray(probs)[:, i])
    out["_model_version"] = pa.array(np.full(batch.num_rows, model.version, dtype=np.int32))
    return pa.table(out)


# -- the parent side ------------------------------------------------------------------------------


def _worker_context() -> Any:
    """Fork when this process runs no other thread (workers share the parent's imported
    modules instead of importing them again, so they start at once); pooled database
    connections are closed first, so none is shared. Otherwise spawn: forking next to live
    threads can deadlock."""
    import multiprocessing
    import threading

    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        from shipyard.stores import close_all

        close_all()
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _check_options(chunk_rows: int, executor: str) -> None:
    if chunk_rows < 1:
        raise InvalidArgumentError("chunk_rows must be at least 1", field="chunk_rows")
    if executor not in ("local", "ray"):
        raise InvalidArgumentError(
            f"executor must be local or ray, not {executor!r}", field="executor"
        )


def _pin_model(
    settings: Settings, model: str, *, trusted: bool, proba: bool | None = None
) -> tuple[ModelVersionRecord, bool]:
    """Resolve `model` to one version and load it once here: a model that cannot load
    (untrusted, malformed) fails with the loader's message, not as a worker pool broken by
    its initializer. Returns the version and whether its probabilities are written."""
    from shipyard.registry import Registry, parse_model_uri
    from shipyard.stores import open_stores

    registry = Registry(open_stores(settings))
    mv = registry.resolve(parse_model_uri(model))
    loaded = registry.load(f"models:/{mv.name}/{mv.version}", trusted=trusted)
    if proba and not loaded.has_proba:
        raise InvalidArgumentError(
            f"models:/{mv.name}/{mv.version} ({mv.flavor}) has no class probabilities "
            "(no predict_proba: a regressor, or a classifier without probability estimates); "
            "score without --proba",
            field="proba",
        )
    return mv, loaded.has_proba and proba is not False


def _total_rows(files: list[Path]) -> int | None:
    """Rows in all inputs, for progress; None when a CSV would have to be read to count."""
    if any(f.suffix.lower() == ".csv" for f in files):
        return None
    return sum(r for r in (rows_of(f) for f in files) if r is not None)


def _claim_output(out: Path, job: dict[str, Any], *, overwrite: bool) -> None:
    """Write the job description into `out`. The output of another job there is an error
    unless `overwrite`, which deletes its parts; the same job's parts are kept, to resume."""
    job_file = out / JOB_FILE
    if job_file.exists():
        previous = json.loads(job_file.read_text())
        if previous != job:
            if not overwrite:
                raise AlreadyExistsError(
                    f"{out} holds the output of another job ({previous.get('model')}, "
                    f"{len(previous.get('inputs', []))} input(s), chunks of "
                    f"{previous.get('chunk_rows')}); use another --output or --overwrite"
                )
            for part in [*out.glob("part-*.parquet"), *out.glob("_ray_done.json")]:
                part.unlink()
    job_file.write_text(json.dumps(job, indent=2))
    _remove_stale_temporaries(out)


@dataclass(frozen=True)
class _LocalJob:
    chunk_rows: int
    workers: int
    keep: list[str] | None
    trusted: bool
    features: FeatureJoin | None
    proba: bool = True


def _score_locally(
    settings: Settings,
    pinned: str,
    files: list[Path],
    out: Path,
    job: _LocalJob,
    *,
    progress: Callable[[int], None] | None,
) -> tuple[int, int, int]:
    """Score every chunk in a pool of processes, skipping chunks an earlier run finished;
    returns (rows done, chunks, chunks skipped). At most two chunks per worker are in flight,
    so memory stays bounded whatever the input size."""
    done_rows = chunks = skipped = 0
    in_flight: set[Future[int]] = set()
    context = _worker_context()
    with ProcessPoolExecutor(
        job.workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(settings.model_dump_json(), pinned, job.trusted, job.features),
    ) as pool:
        for file_index, path in enumerate(files):
            for chunk_index, batch in enumerate(_plan(path, job.chunk_rows)):
                chunks += 1
                target = out / f"part-{file_index:05d}-{chunk_index:06d}.parquet"
                if target.exists():  # finished by an earlier run
                    skipped += 1
                    done_rows += batch.num_rows
                    if progress:
                        progress(done_rows)
                    continue
                _check_keep(path, batch, job.keep)
                while len(in_flight) >= 2 * job.workers:  # bounded memory: wait for a slot
                    finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for f in finished:
                        done_rows += f.result()
                    if progress:
                        progress(done_rows)
                in_flight.add(pool.submit(_score_chunk, batch, str(target), job.keep, job.proba))
        for f in in_flight:
            done_rows += f.result()
        if progress:
            progress(done_rows)
    return done_rows, chunks, skipped


def _check_keep(path: Path, batch: Any, keep: list[str] | None) -> None:
    if keep is None:
        return
    names = batch.names if isinstance(batch, RowGroups) else batch.schema.names
    missing = [c for c in keep if c not in names]
    if missing:
        raise InvalidArgumentError(
            f"{path}: no column(s) {', '.join(missing)} to keep", field="keep"
        )


def _job(
    pinned: str,
    files: list[Path],
    chunk_rows: int,
    keep: list[str] | None,
    executor: str,
    features: FeatureJoin | None,
    proba: bool | None,
) -> dict[str, Any]:
    """What a job's output folder records, to resume the same job and refuse another."""
    job: dict[str, Any] = {
        "model": pinned,
        "inputs": [str(f.resolve()) for f in files],
        "chunk_rows": chunk_rows,
        "keep": keep,
        "executor": executor,
        "chunking": 2,  # row-group chunks for Parquet
    }
    if features is not None:  # absent otherwise: earlier jobs' files still match
        job["features"] = features.to_job()
    if proba is False:  # likewise: a job's parts hold probabilities unless it says not
        job["proba"] = False
    return job


def score_files(
    settings: Settings,
    model: str,
    input_path: str | Path,
    output_path: str | Path,
    *,
    chunk_rows: int = 100_000,
    workers: int | None = None,
    keep: list[str] | None = None,
    trusted: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    timestamp: str | None = None,
    proba: bool | None = None,
) -> ScoreResult:
    """Score every input file with `model`; returns counts and timing.

    `executor`: "local" (processes on this machine) or "ray" (Ray Data; a local Ray, or the
    cluster at `ray_address`). `progress(rows_done, rows_total_or_None)` is called as chunks
    finish. When the model's version names a feature service, its features are joined at
    each row's event time, read from the `timestamp` column (default "event_timestamp").
    `proba`: one `_proba_<class>` column per class when None and the model has them; True
    requires them (InvalidArgumentError before anything is scored if it has none); False
    leaves them out."""
    from shipyard.batch.features import check_inputs, feature_join

    _check_options(chunk_rows, executor)
    mv, with_proba = _pin_model(settings, model, trusted=trusted, proba=proba)
    pinned = f"models:/{mv.name}/{mv.version}"  # a moving alias must not mix versions mid-job
    files = input_files(Path(input_path))
    features = feature_join(mv.tags, timestamp)
    if features is not None:
        check_inputs(features, files, pinned)
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    job = _job(pinned, files, chunk_rows, keep, executor, features, proba)
    _claim_output(out, job, overwrite=overwrite)
    total = _total_rows(files)
    report = (lambda n: progress(n, total)) if progress else None
    workers = max(1, workers or os.cpu_count() or 1)
    start = time.perf_counter()
    if executor == "ray":
        from shipyard.batch.ray_scoring import score_on_ray

        done_rows, scored, skipped = score_on_ray(
            settings,
            pinned,
            files,
            out,
            chunk_rows=chunk_rows,
            workers=workers,
            keep=keep,
            trusted=trusted,
            address=ray_address,
            progress=report,
            features=features,
            proba=with_proba,
        )
        chunks = scored + skipped
    else:
        done_rows, chunks, skipped = _score_locally(
            settings,
            pinned,
            files,
            out,
            _LocalJob(chunk_rows, workers, keep, trusted, features, with_proba),
            progress=report,
        )
    elapsed = time.perf_counter() - start
    return ScoreResult(
        pinned, mv.version, len(files), chunks, skipped, done_rows, elapsed, str(out)
    )
