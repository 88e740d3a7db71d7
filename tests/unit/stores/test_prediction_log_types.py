"""Prediction-log files of one endpoint written by different models: a canary of a Ridge
(served by onnxruntime, float32 answers) and a gradient-boosted model (float64) made every
read fail (`Unable to merge: Field _prediction has incompatible types: float vs double`), and
with it the rollout controller, `deploy status` and monitoring, for as long as both were in
the window."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from shipyard.stores.predictions import PredictionLogStore


def _rows(ts: int, prediction: pa.Array) -> pa.Table:
    n = len(prediction)
    return pa.table(
        {
            "_request_id": [f"r{ts}-{i}" for i in range(n)],
            "_ts": pa.array([ts] * n, pa.int64()),
            "_prediction": prediction,
        }
    )


def test_float_and_double_answers_read_as_double(tmp_path: Path) -> None:
    log = PredictionLogStore(tmp_path)
    log.write("diab", _rows(1_000, pa.array([1.5, 2.5], pa.float32())), ts_ms=1_000)
    log.write("diab", _rows(2_000, pa.array([3.25], pa.float64())), ts_ms=2_000)
    table = log.read("diab", start_ms=0, end_ms=10_000)
    assert table.schema.field("_prediction").type == pa.float64()
    assert sorted(table.column("_prediction").to_pylist()) == [1.5, 2.5, 3.25]


@pytest.mark.parametrize("window", [(0, 10_000), (1_500, 10_000)])
def test_numbers_and_labels_read_as_text(tmp_path: Path, window: tuple[int, int]) -> None:
    log = PredictionLogStore(tmp_path)
    log.write("mixed", _rows(1_000, pa.array([1, 0], pa.int64())), ts_ms=1_000)
    log.write("mixed", _rows(2_000, pa.array(["setosa"])), ts_ms=2_000)
    table = log.read("mixed", start_ms=window[0], end_ms=window[1])
    values = table.column("_prediction").to_pylist()
    assert values == (["1", "0", "setosa"] if window[0] == 0 else ["setosa"])
