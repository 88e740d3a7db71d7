"""The prediction log, off the hot path: requests append to a bounded in-memory buffer (a lock
and a list append); a background thread turns the buffer into Parquet every few seconds. When
the buffer is full, records are dropped and counted — a request never waits for the log."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np
    import pyarrow as pa

    from shipyard.stores.predictions import PredictionLogStore

log = logging.getLogger("shipyard.predlog")


@dataclass(slots=True)  # one per request: a frozen __init__ pays an object.__setattr__ per field
class Entry:
    endpoint: str
    model_version: str
    request_id: str
    ts_ms: int
    latency_ms: float
    status: int
    columns: Mapping[str, np.ndarray] | None = None
    predictions: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    classes: tuple[Any, ...] | None = None
    variant: str = "stable"  # stable | candidate | shadow (rollouts)

    @property
    def rows(self) -> int:
        if self.predictions is not None:
            return len(self.predictions)
        return 1


def _layout(
    columns: Mapping[str, np.ndarray], predictions: np.ndarray, probabilities: np.ndarray | None
) -> tuple[Any, ...] | None:
    """How a request's features and outputs can be copied into a partition's blocks:
    (feature dtype, prediction dtype, probability dtype and columns), or None when they
    cannot (no single feature matrix, text labels, ...)."""
    matrix = getattr(columns, "matrix", None)
    if matrix is None or matrix.ndim != 2 or predictions.ndim != 1:
        return None
    if predictions.dtype.kind not in "biuf":
        return None
    if probabilities is None:
        return (matrix.dtype, predictions.dtype, None, 0)
    if probabilities.ndim != 2 or probabilities.dtype.kind != "f":
        return None
    return (matrix.dtype, predictions.dtype, probabilities.dtype, probabilities.shape[1])


_BLOCK_ROWS = 4096


class _Block:
    """Room for `_BLOCK_ROWS` rows of a dense partition, feature-major."""

    __slots__ = ("features", "outputs", "proba")

    def __init__(
        self, n_features: int, features: Any, outputs: Any, proba: Any, width: int
    ) -> None:
        import numpy as np

        self.features = np.empty((n_features, _BLOCK_ROWS), dtype=features)
        self.outputs = np.empty(_BLOCK_ROWS, dtype=outputs)
        self.proba = None if proba is None else np.empty((width, _BLOCK_ROWS), dtype=proba)


class _Part:
    """The buffered requests of one file-to-be (endpoint, version, variant, feature columns,
    hour), kept column by column.

    Features and outputs of matrix requests (the common case: all-float signatures) are
    copied into fixed-size blocks, feature-major, as they arrive: a request retains no Python
    object but its request id, so the garbage collector has nothing to walk through however
    full the buffer is, and a flush hands Arrow views of the blocks. Written blocks are reused:
    no large array is allocated, grown or copied while requests are answered (fresh large
    arrays per flush show up as latency spikes of the requests answered meanwhile).
    Other requests (text features or labels) keep references to their arrays, concatenated
    at flush time."""

    __slots__ = (
        "all_matrix",
        "all_proba",
        "blocks",
        "classes",
        "columns",
        "counts",
        "filled",
        "latency",
        "layout",
        "names",
        "pool",
        "predictions",
        "probabilities",
        "request_ids",
        "status",
        "ts",
        "variants",
        "versions",
    )

    def __init__(
        self,
        names: tuple[str, ...],
        classes: tuple[Any, ...] | None,
        layout: tuple[Any, ...] | None = None,
        pool: list[_Block] | None = None,
    ) -> None:
        self.names = names
        self.classes = classes
        self.request_ids: list[str] = []
        self.versions: list[str] = []
        self.variants: list[str] = []
        self.ts: list[int] = []
        self.latency: list[float] = []
        self.status: list[int] = []
        self.counts: list[int] = []
        self.columns: list[Mapping[str, np.ndarray]] = []
        self.predictions: list[np.ndarray] = []
        self.probabilities: list[np.ndarray | None] = []
        self.all_matrix = True
        self.all_proba = True
        self.filled = 0
        self.layout = layout if names else None
        # dense storage: fixed-size blocks, taken from (and given back to) a pool shared with
        # the partitions before and after this one, so that a busy server neither allocates
        # nor copies large arrays while it answers requests
        self.blocks: list[_Block] = []
        self.pool = pool if pool is not None else []

    @property
    def dense(self) -> bool:
        return self.layout is not None

    def _block(self) -> _Block:
        if self.pool:
            return self.pool.pop()
        assert self.layout is not None
        return _Block(len(self.names), *self.layout)

    def add(
        self,
        request_id: str,
        version: str,
        variant: str,
        ts_ms: int,
        latency_ms: float,
        status: int,
        rows: int,
        columns: Mapping[str, np.ndarray] | None,
        predictions: np.ndarray | None,
        probabilities: np.ndarray | None,
    ) -> None:
        self.request_ids.append(request_id)
        self.versions.append(version)
        self.variants.append(variant)
        self.ts.append(ts_ms)
        self.latency.append(latency_ms)
        self.status.append(status)
        self.counts.append(rows)
        if not self.names or columns is None or predictions is None:
            return
        if self.layout is not None:  # dense: copied in, nothing kept
            matrix = columns.matrix  # type: ignore[attr-defined]
            done = 0
            while done < rows:
                used = self.filled % _BLOCK_ROWS
                if used == 0:
                    self.blocks.append(self._block())
                block = self.blocks[-1]
                n = min(rows - done, _BLOCK_ROWS - used)
                if n == 1:  # one row (most requests): element copies, no slice objects
                    block.features[:, used] = matrix[done]
                    block.outputs[used] = predictions[done]
                    if block.proba is not None:
                        block.proba[:, used] = probabilities[done]  # type: ignore[index]
                else:
                    block.features[:, used : used + n] = matrix[done : done + n].T
                    block.outputs[used : used + n] = predictions[done : done + n]
                    if block.proba is not None:
                        block.proba[:, used : used + n] = probabilities[done : done + n].T  # type: ignore[index]
                done += n
                self.filled += n
            return
        self.columns.append(columns)
        self.predictions.append(predictions)
        self.probabilities.append(probabilities)
        if probabilities is None:
            self.all_proba = False
        if getattr(columns, "matrix", None) is None:
            self.all_matrix = False

    def to_table(self) -> pa.Table:
        """One row per predicted row; request fields repeated over the rows of their request.

        A handful of array-level calls whatever the number of requests: a busy server's flush
        runs while requests are served, in the same process."""
        import numpy as np
        import pyarrow as pa

        n = len(self.request_ids)
        counts = np.array(self.counts, dtype=np.int64)
        total = int(counts.sum())
        uniform = total == n  # one row per request: nothing to repeat
        index = None if uniform else pa.array(np.repeat(np.arange(n), counts))

        def text(values: list[str]) -> pa.Array:
            arr = pa.array(values, type=pa.string())
            return arr if index is None else arr.take(index)

        def numbers(values: list[Any], dtype: Any) -> np.ndarray:
            arr = np.array(values, dtype=dtype)
            return arr if uniform else np.repeat(arr, counts)

        starts = np.cumsum(counts) - counts
        data: dict[str, Any] = {
            "_request_id": text(self.request_ids),
            "_ts": numbers(self.ts, np.int64),
            "_model_version": text(self.versions),
            "_latency_ms": numbers(self.latency, np.float64),
            "_status": numbers(self.status, np.int32),
            # the row's position in its request: (request_id, row) is the key feedback uses
            "_row": (np.arange(total) - np.repeat(starts, counts)).astype(np.int32),
            "_variant": text(self.variants),
        }
        if self.layout is not None:
            if self.filled:
                data.update(self._dense_columns())
        elif self.columns:
            data.update(self._listed_columns())
        return pa.table(
            {
                k: v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.array(v)
                for k, v in data.items()
            }
        )

    def _dense_columns(self) -> dict[str, pa.ChunkedArray]:
        """Every column as views of the blocks (no copy); the blocks go back to the pool
        only once the table is written (`release`)."""
        import pyarrow as pa

        sizes = [_BLOCK_ROWS] * len(self.blocks)
        sizes[-1] = self.filled - _BLOCK_ROWS * (len(self.blocks) - 1)
        pieces = list(zip(self.blocks, sizes, strict=True))

        def column(get: Any) -> pa.ChunkedArray:
            return pa.chunked_array([pa.array(get(b)[:n]) for b, n in pieces])

        data = {name: column(lambda b, i=i: b.features[i]) for i, name in enumerate(self.names)}
        data["_prediction"] = column(lambda b: b.outputs)
        if self.blocks[0].proba is not None:
            labels = self.classes or tuple(range(len(self.blocks[0].proba)))
            for i, label in enumerate(labels):
                data[f"_proba_{label}"] = column(lambda b, i=i: b.proba[i])
        return data

    def release(self, keep: int) -> None:
        """Give the blocks back to the pool (at most `keep` blocks stay pooled)."""
        room = max(0, keep - len(self.pool))
        self.pool.extend(self.blocks[:room])
        self.blocks = []

    def _listed_columns(self) -> dict[str, np.ndarray]:
        import numpy as np

        data: dict[str, np.ndarray] = {}
        if self.all_matrix:  # one stack instead of a concat per column
            # feature-major, so every column is one contiguous block Arrow takes as it is;
            # transposed a few thousand rows at a time (at once, it is cache-hostile, and so
            # is Arrow copying strided columns)
            matrices = [c.matrix for c in self.columns]  # type: ignore[attr-defined]
            total = sum(map(len, matrices))
            by_feature = np.empty((len(self.names), total), dtype=matrices[0].dtype)
            done = 0
            for i in range(0, len(matrices), 256):
                block = np.concatenate(matrices[i : i + 256])
                by_feature[:, done : done + len(block)] = block.T
                done += len(block)
            for i, name in enumerate(self.names):
                data[name] = by_feature[i]
        else:
            for name in self.names:
                data[name] = np.concatenate([c[name] for c in self.columns])
        data["_prediction"] = _per_row(np.concatenate(self.predictions))
        if self.all_proba:
            proba: np.ndarray = np.concatenate(self.probabilities)  # type: ignore[arg-type]
            labels = self.classes or tuple(range(proba.shape[1]))
            for i, label in enumerate(labels):
                data[f"_proba_{label}"] = np.ascontiguousarray(proba[:, i])
        return data


MAX_OUTPUT_VALUES = 1024  # an N-d prediction row larger than this is logged by its shape


def _per_row(predictions: np.ndarray) -> np.ndarray:
    """Predictions of more than one value per row (a tensor model's, a multi-output model's)
    as one list of values per row, or None where a row has more than MAX_OUTPUT_VALUES."""
    import numpy as np

    if predictions.ndim <= 1:
        return predictions
    flat = predictions.reshape(len(predictions), -1)
    out = np.empty(len(flat), dtype=object)
    if flat.shape[1] <= MAX_OUTPUT_VALUES:
        out[:] = flat.tolist()
    return out


def _tensor_record(columns: Any, predictions: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """What the log keeps of a tensor model's request: a summary of each input per row
    (`TensorColumns.log_columns`), and the outputs' shape beside the outputs (`_per_row`)."""
    import numpy as np

    logged = columns.log_columns()
    if predictions.ndim > 1:
        shape = "x".join(map(str, predictions.shape[1:]))
        logged["_prediction.shape"] = np.full(len(predictions), shape, dtype=object)
        predictions = _per_row(predictions)
    return logged, predictions


def _warm_up() -> None:
    """Import and initialise what a flush uses (pyarrow, and pandas, which pyarrow imports
    on its first conversion) before the server takes requests: done by the first flush, the
    imports would hold the interpreter while requests wait."""
    import numpy as np
    import pyarrow.parquet  # noqa: F401

    from shipyard.flavors.signature import MatrixColumns

    part = _Part(("x",), None, (np.dtype(np.float64), np.dtype(np.int64), None, 0))
    part.add(
        "",
        "",
        "",
        0,
        0.0,
        0,
        1,
        MatrixColumns(np.zeros((1, 1)), {"x": 0}),
        np.zeros(1, np.int64),
        None,
    )
    part.to_table()


class PredictionLogger:
    def __init__(
        self,
        store: PredictionLogStore,
        *,
        capacity_rows: int = 100_000,
        flush_seconds: float = 2.0,
        sample_rate: float = 1.0,
        on_drop: Any = None,
        on_write: Any = None,
    ) -> None:
        self.store = store
        self.capacity_rows = capacity_rows
        self.flush_seconds = flush_seconds
        self.sample_rate = sample_rate
        self._on_drop = on_drop
        self._on_write = on_write
        self._parts: dict[tuple[Any, ...], _Part] = {}
        # spare dense blocks by (feature count, layout), reused from one flush to the next
        self._pools: dict[tuple[Any, ...], list[_Block]] = {}
        self._rows = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.written = 0

    def log(self, entry: Entry) -> bool:
        """Buffer one request's record; False if it was sampled out or dropped."""
        return self.record(
            entry.endpoint,
            entry.model_version,
            entry.variant,
            entry.request_id,
            entry.ts_ms,
            entry.latency_ms,
            entry.status,
            entry.columns,
            entry.predictions,
            entry.probabilities,
            entry.classes,
        )

    def record(
        self,
        endpoint: str,
        model_version: str,
        variant: str,
        request_id: str,
        ts_ms: int,
        latency_ms: float,
        status: int,
        columns: Mapping[str, np.ndarray] | None = None,
        predictions: np.ndarray | None = None,
        probabilities: np.ndarray | None = None,
        classes: Sequence[Any] | None = None,
    ) -> bool:
        """`log` without building an Entry (the serving hot path). A record carries its
        features only together with its predictions."""
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return False
        names: tuple[str, ...] = ()
        layout = None
        if columns is None or predictions is None:
            columns = predictions = probabilities = None
            rows = 1
        else:
            rows = len(predictions)
            names = getattr(columns, "names", None) or tuple(columns)
            layout = _layout(columns, predictions, probabilities)
            if layout is None and hasattr(columns, "log_columns"):  # tensors: a summary
                columns, predictions = _tensor_record(columns, predictions)
                names = tuple(columns)
        key = (endpoint, model_version, variant, names, layout, ts_ms // 3_600_000)
        with self._lock:
            if self._rows + rows > self.capacity_rows:
                self.dropped += rows
                dropped = True
            else:
                part = self._parts.get(key)
                if part is None:
                    pool = (
                        None if layout is None else self._pools.setdefault((len(names), layout), [])
                    )
                    part = self._parts[key] = _Part(
                        names, tuple(classes) if classes is not None else None, layout, pool
                    )
                part.add(
                    request_id,
                    model_version,
                    variant,
                    ts_ms,
                    latency_ms,
                    status,
                    rows,
                    columns,
                    predictions,
                    probabilities,
                )
                self._rows += rows
                dropped = False
        if dropped and self._on_drop is not None:
            self._on_drop(endpoint, rows)
        return not dropped

    def start(self) -> None:
        if self._thread is None:
            _warm_up()
            self._thread = threading.Thread(target=self._run, name="shipyard-predlog", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # a full disk must not kill the thread; the next flush retries
                log.exception("writing the prediction log failed")

    def flush(self) -> int:
        """Write everything buffered now, a file per partition; returns the rows written."""
        with self._flush_lock:
            with self._lock:
                parts, self._parts = self._parts, {}
                self._rows = 0
            written = 0
            for key, part in parts.items():
                endpoint = key[0]
                table = part.to_table()
                self.store.write(endpoint, table, ts_ms=part.ts[0])
                rows = table.num_rows
                del table  # the blocks it viewed may now be written again
                if part.dense:
                    with self._lock:
                        part.release(self.capacity_rows // _BLOCK_ROWS + 1)
                written += rows
                if self._on_write is not None:
                    self._on_write(endpoint, rows)
            self.written += written
            return written


def to_table(entries: list[Entry]) -> pa.Table:
    """The log's table of `entries` (any mix of versions and variants), as a flush writes it."""
    first = entries[0]
    part = _Part(tuple(first.columns) if first.columns else (), first.classes)
    for e in entries:
        part.add(
            e.request_id,
            e.model_version,
            e.variant,
            e.ts_ms,
            e.latency_ms,
            e.status,
            e.rows,
            e.columns,
            e.predictions,
            e.probabilities,
        )
    return part.to_table()


class FeedbackLogger:
    """Late labels and outcomes, buffered like predictions and flushed to their own
    partitions (labels and outcomes apart: live accuracy reads one, A/B tests the other):
    one row per labelled prediction row, keyed by (request_id, row)."""

    def __init__(
        self,
        store: PredictionLogStore,
        outcomes: PredictionLogStore | None = None,
        *,
        flush_seconds: float = 2.0,
    ) -> None:
        self.store = store
        self.outcomes = outcomes
        self.flush_seconds = flush_seconds
        self._rows: dict[str, list[tuple[str, int, Any, Any, int]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def log(self, endpoint: str, items: Sequence[Sequence[Any]], ts_ms: int) -> None:
        """`items`: (request_id, row, label, outcome), label or outcome None when not sent."""
        with self._lock:
            self._rows.setdefault(endpoint, []).extend(
                (r, i, label, outcome, ts_ms) for r, i, label, outcome in items
            )

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shipyard-feedback", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:
                log.exception("writing feedback failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def flush(self) -> int:
        from shipyard.stores.predictions import labels_table, outcomes_table

        with self._lock:
            pending, self._rows = self._rows, {}
        written = 0
        for endpoint, rows in pending.items():
            labels = [(r, i, v, ts) for r, i, v, _, ts in rows if v is not None]
            outcomes = [(r, i, o, ts) for r, i, _, o, ts in rows if o is not None]
            try:  # one endpoint's rows that cannot be written never cost the others theirs
                if labels:
                    self.store.write(endpoint, labels_table(labels), ts_ms=labels[0][3])
                if outcomes and self.outcomes is not None:
                    self.outcomes.write(endpoint, outcomes_table(outcomes), ts_ms=outcomes[0][3])
            except Exception:
                log.exception("writing the feedback of endpoint %s failed", endpoint)
                continue
            written += len(rows)
        return written
