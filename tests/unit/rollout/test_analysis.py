"""The rollout evidence counts only what the model itself did."""

from __future__ import annotations

import pandas as pd

from shipyard.rollout.analysis import _stats


def log(statuses: list[int], latency_ms: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "_request_id": [f"r{latency_ms}-{i}" for i in range(len(statuses))],
            "_status": statuses,
            "_latency_ms": [latency_ms] * len(statuses),
            "_row": [0] * len(statuses),
        }
    )


def test_callers_errors_count_neither_as_requests_nor_as_failures() -> None:
    model = log([200] * 8 + [500, 504], 50.0)
    callers = log([400, 413, 422, 404, 499, 503] * 50, 1.0)  # fast, and many
    stats = _stats(pd.concat([model, callers]))
    assert (stats.requests, stats.errors, stats.error_rate) == (10, 2, 0.2)
    assert stats.p50_ms == stats.p99_ms == 50.0  # bad requests do not make a model look fast
