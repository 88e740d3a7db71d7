"""Live quality over time by version (the monitoring page's chart), and each column's
histograms as data (its overlays)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring.charts import distribution
from shipyard.monitoring.performance import accuracy_over_time
from shipyard.sketches import Profile


def logged(n: int, start: int, step: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "_request_id": [f"r{i}" for i in range(n)],
            "_row": 0,
            "_ts": [start + i * step for i in range(n)],
            "_model_version": ["1" if i % 2 == 0 else "2" for i in range(n)],
            "_prediction": [1] * n,
        }
    )


def labels_for(ids: list[str], values: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"_request_id": ids, "_row": 0, "_label": values, "_ts": 5})


def test_each_interval_scores_the_labelled_predictions_of_each_version() -> None:
    predictions = logged(8, start=0, step=250)  # 0 .. 1750 ms, 2 intervals of 1000 ms
    # version 1 (even ids) is right before 1000 ms and wrong after; version 2 always right
    labels = labels_for([f"r{i}" for i in range(8)], [1, 1, 1, 1, 0, 1, 0, 1])
    doc = accuracy_over_time(predictions, labels, start_ms=0, end_ms=2000, buckets=2)
    assert doc["metric"] == "accuracy" and doc["bucket_ms"] == 1000
    assert doc["not_computable"] is None
    assert doc["versions"]["1"] == [
        {"t": 0, "n": 2, "value": 1.0},
        {"t": 1000, "n": 2, "value": 0.0},
    ]
    assert [p["value"] for p in doc["versions"]["2"]] == [1.0, 1.0]


def test_no_label_says_why_and_a_bad_interval_count_is_refused() -> None:
    predictions = logged(4, start=0, step=10)
    none = accuracy_over_time(predictions, labels_for([], []), start_ms=0, end_ms=100)
    assert none["versions"] == {} and "no label was sent back" in none["not_computable"]
    other = accuracy_over_time(predictions, labels_for(["x"], [1]), start_ms=0, end_ms=100)
    assert "none for a prediction in this window" in other["not_computable"]
    with pytest.raises(InvalidArgumentError) as err:
        accuracy_over_time(predictions, labels_for([], []), start_ms=0, end_ms=100, buckets=0)
    assert err.value.details["field"] == "buckets"


def test_a_columns_distribution_is_the_report_charts_bars_as_shares() -> None:
    rng = np.random.default_rng(0)
    ref = Profile.from_frame(pd.DataFrame({"x": rng.normal(size=2000), "c": ["a", "b"] * 1000}))
    cur = ref.empty_like()
    cur.observe(pd.DataFrame({"x": rng.normal(1.0, size=500), "c": ["a"] * 500}))
    numeric = distribution(ref.columns["x"], cur.columns["x"])
    assert numeric is not None and numeric["kind"] == "numeric"
    assert len(numeric["labels"]) == len(numeric["reference"]) == len(numeric["current"]) <= 40
    assert sum(numeric["reference"]) == pytest.approx(1.0)
    assert numeric["current_rows"] == 500
    categorical = distribution(ref.columns["c"], cur.columns["c"])
    assert categorical is not None and categorical["labels"] == ["a", "b"]
    assert categorical["current"] == [1.0, 0.0]
    assert distribution(ref.columns["x"], cur.columns["c"]) is None
