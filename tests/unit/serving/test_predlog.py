from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from shipyard.serving.predlog import Entry, PredictionLogger
from shipyard.stores.predictions import PredictionLogStore


def entry(i: int, rows: int = 2, endpoint: str = "churn") -> Entry:
    return Entry(
        endpoint=endpoint,
        model_version="3",
        request_id=f"r{i}",
        ts_ms=1_795_000_000_000 + i,
        latency_ms=1.5,
        status=200,
        columns={"a": np.arange(rows, dtype=float), "b": np.full(rows, i, dtype=float)},
        predictions=np.arange(rows),
        probabilities=np.full((rows, 2), 0.5),
        classes=("no", "yes"),
    )


def test_flush_writes_one_row_per_predicted_row(tmp_path: Path) -> None:
    store = PredictionLogStore(tmp_path)
    logger = PredictionLogger(store, flush_seconds=3600)
    for i in range(5):
        assert logger.log(entry(i))
    logger.log(
        Entry(
            endpoint="churn",
            model_version="3",
            request_id="bad",
            ts_ms=1_795_000_000_100,
            latency_ms=0.2,
            status=422,
        )
    )
    assert logger.flush() == 11
    table = store.read("churn")
    assert table.num_rows == 11
    ok = table.filter(table["_status"].to_numpy() == 200).to_pydict()
    assert ok["_request_id"][:2] == ["r0", "r0"]
    assert ok["b"][-1] == 4.0
    assert ok["_proba_yes"][0] == 0.5
    assert store.endpoints() == ["churn"]


def test_read_by_time_range(tmp_path: Path) -> None:
    store = PredictionLogStore(tmp_path)
    logger = PredictionLogger(store, flush_seconds=3600)
    for i in range(10):
        logger.log(entry(i, rows=1))
    logger.flush()
    assert store.read("churn", start_ms=1_795_000_000_005).num_rows == 5
    assert store.read("churn", start_ms=1_795_000_000_002, end_ms=1_795_000_000_004).num_rows == 2
    assert store.read("nobody").num_rows == 0


def test_a_full_buffer_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    dropped: list[int] = []
    logger = PredictionLogger(
        PredictionLogStore(tmp_path),
        capacity_rows=5,
        flush_seconds=3600,
        on_drop=lambda endpoint, n: dropped.append(n),
    )
    assert logger.log(entry(0, rows=4))
    start = time.perf_counter()
    assert not logger.log(entry(1, rows=4))
    assert time.perf_counter() - start < 0.01
    assert logger.dropped == 4 and dropped == [4]
    logger.flush()
    assert logger.log(entry(2, rows=4))  # room again after a flush


def test_sampling(tmp_path: Path) -> None:
    logger = PredictionLogger(PredictionLogStore(tmp_path), sample_rate=0.0)
    assert not logger.log(entry(0))
    assert logger.flush() == 0


def test_background_thread_flushes_and_close_flushes_the_rest(tmp_path: Path) -> None:
    store = PredictionLogStore(tmp_path)
    logger = PredictionLogger(store, flush_seconds=0.05)
    logger.start()
    logger.log(entry(0))
    deadline = time.monotonic() + 5
    while store.read("churn").num_rows < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.read("churn").num_rows == 2
    logger.log(entry(1))
    logger.close()
    assert store.read("churn").num_rows == 4
    assert not list(tmp_path.rglob(".*.tmp"))


def test_table_repeats_request_fields_over_rows_of_matrix_requests() -> None:
    from shipyard.flavors.signature import MatrixColumns
    from shipyard.serving.predlog import to_table

    entries = []
    for i, n in enumerate((3, 1, 2)):
        matrix = np.arange(n * 2, dtype=float).reshape(n, 2) + 10 * i
        entries.append(
            Entry(
                endpoint="churn",
                model_version=str(i),
                request_id=f"r{i}",
                ts_ms=1_795_000_000_000 + i,
                latency_ms=0.5 * i,
                status=200,
                columns=MatrixColumns(matrix, {"a": 0, "b": 1}),
                predictions=np.arange(n),
                probabilities=np.full((n, 2), 0.25 * i, dtype=np.float32),
                classes=(0, 1),
                variant="shadow" if i == 1 else "stable",
            )
        )
    table = to_table(entries).to_pydict()
    assert table["_request_id"] == ["r0", "r0", "r0", "r1", "r2", "r2"]
    assert table["_row"] == [0, 1, 2, 0, 0, 1]
    assert table["_model_version"] == ["0", "0", "0", "1", "2", "2"]
    assert table["_variant"] == ["stable"] * 3 + ["shadow"] + ["stable"] * 2
    assert table["_latency_ms"] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    assert table["a"] == [0.0, 2.0, 4.0, 10.0, 20.0, 22.0]
    assert table["b"] == [1.0, 3.0, 5.0, 11.0, 21.0, 23.0]
    assert table["_prediction"] == [0, 1, 2, 0, 0, 1]
    assert table["_proba_1"] == [0.0, 0.0, 0.0, 0.25, 0.5, 0.5]


def _matrix_entries(count: int, classes: tuple[Any, ...] = (0, 1)) -> list[Entry]:
    from shipyard.flavors.signature import MatrixColumns

    rng = np.random.default_rng(0)
    entries = []
    for i in range(count):
        n = 1 + i % 4
        entries.append(
            Entry(
                endpoint="churn",
                model_version="7",
                request_id=f"r{i}",
                ts_ms=1_795_000_000_000 + i,
                latency_ms=0.1 * i,
                status=200,
                columns=MatrixColumns(rng.random((n, 3)), {"a": 0, "b": 1, "c": 2}),
                predictions=rng.integers(0, 2, n),
                probabilities=rng.random((n, 2)).astype(np.float32),
                classes=classes,
            )
        )
    return entries


def test_matrix_requests_are_copied_in_and_written_like_any_other(tmp_path: Path) -> None:
    """Matrix requests go into preallocated arrays (grown past their first size here); the
    file holds what the general path writes for the same requests, types included."""
    from shipyard.serving.predlog import to_table

    entries = _matrix_entries(4000)  # 10,000 rows: three blocks
    store = PredictionLogStore(tmp_path)
    logger = PredictionLogger(store, flush_seconds=3600)
    for e in entries:
        assert logger.log(e)
    (part,) = logger._parts.values()
    assert part.dense and len(part.blocks) == 3 and not part.columns  # nothing kept per request
    assert logger.flush() == 10_000
    written = store.read("churn")
    expected = to_table(entries)
    assert written.schema == expected.schema
    assert written.equals(expected)
    assert written["_proba_1"].type == expected["_proba_1"].type  # float32 stays float32

    # the next buffer of this partition reuses the blocks, and writes what it was given
    more = [dataclasses.replace(e, request_id=f"again-{i}") for i, e in enumerate(entries[-5:])]
    for e in more:
        logger.log(e)
    (part,) = logger._parts.values()
    assert len(part.blocks) == 1 and len(part.pool) == 2  # one of the three blocks reused
    assert logger.flush() == sum(len(e.predictions) for e in more)  # type: ignore[arg-type]
    table = store.read("churn")
    again = table.filter(pc.starts_with(table["_request_id"], "again-"))
    assert again.equals(to_table(more))


def test_text_labels_and_errors_are_logged_beside_matrix_requests(tmp_path: Path) -> None:
    from shipyard.flavors.signature import MatrixColumns

    store = PredictionLogStore(tmp_path)
    logger = PredictionLogger(store, flush_seconds=3600)
    for e in _matrix_entries(3):
        logger.log(e)
    logger.record(
        "labels", "1", "stable", "text", 1_795_000_000_100, 0.3, 200,
        MatrixColumns(np.ones((2, 3)), {"a": 0, "b": 1, "c": 2}),
        np.array(["no", "yes"]), None, ("no", "yes"),
    )  # fmt: skip
    logger.record("churn", "7", "stable", "bad", 1_795_000_000_200, 0.1, 422)
    assert logger.flush() == 6 + 2 + 1
    text = store.read("labels").to_pylist()
    assert [r["_prediction"] for r in text] == ["no", "yes"]
    assert [r["a"] for r in text] == [1.0, 1.0]
    rows = store.read("churn").to_pylist()
    assert [r["_status"] for r in rows if r["_request_id"] == "bad"] == [422]
    assert sorted(r["_row"] for r in rows if r["_request_id"] == "r2") == [0, 1, 2]
