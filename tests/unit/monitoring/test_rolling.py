"""Minute sketches built incrementally from the prediction log equal the profile of the raw
window, read each file once, and forget minutes that left the window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from shipyard.monitoring.rolling import MINUTE_MS, RollingWindow
from shipyard.sketches import Profile
from shipyard.stores.predictions import PredictionLogStore

T0 = 1_795_000_000_000 - 1_795_000_000_000 % 3_600_000  # an hour boundary


def log_rows(
    store: PredictionLogStore, start_ms: int, n: int, rng: np.random.Generator, shift: float = 0.0
) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "_request_id": [f"r{start_ms}-{i}" for i in range(n)],
            "_row": np.zeros(n, dtype=np.int32),
            "_ts": start_ms + np.arange(n) * 100,
            "_status": np.where(np.arange(n) % 10 == 0, 500, 200).astype(np.int32),
            "_latency_ms": rng.uniform(1, 3, n),
            "x": rng.normal(shift, 1, n),
            "_prediction": rng.integers(0, 2, n),
        }
    )
    store.write("ep", pa.Table.from_pandas(df, preserve_index=False), ts_ms=start_ms)
    return df


def test_rolling_equals_raw_and_reads_each_file_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store = PredictionLogStore(tmp_path)
    reference = Profile.from_frame(
        pd.DataFrame({"x": rng.normal(0, 1, 5000), "_prediction": rng.integers(0, 2, 5000)})
    )
    rolling = RollingWindow(reference, ["x", "_prediction"], 1)
    frames = [log_rows(store, T0 + k * MINUTE_MS, 300, rng) for k in range(3)]
    now, window = T0 + 3 * MINUTE_MS, 10 * MINUTE_MS
    assert rolling.update(store, "ep", now_ms=now, window_ms=window) == 900
    assert rolling.update(store, "ep", now_ms=now, window_ms=window) == 0  # nothing new
    frames.append(log_rows(store, T0 + 3 * MINUTE_MS, 300, rng))
    assert rolling.update(store, "ep", now_ms=now + MINUTE_MS, window_ms=window) == 300
    profile, traffic = rolling.window(now_ms=now + MINUTE_MS, window_ms=window)
    raw = pd.concat(frames)
    expected = reference.empty_like()
    expected.observe(raw[raw["_status"] == 200])
    assert profile.columns["x"].counts == expected.columns["x"].counts
    assert profile.rows == expected.rows
    assert traffic["requests"] == 1200 and abs(traffic["error_rate"] - 0.1) < 1e-9  # type: ignore[operator]
    assert 1 <= traffic["p50_latency_ms"] <= 3.1  # type: ignore[operator]


def test_minutes_leave_the_window(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = PredictionLogStore(tmp_path)
    reference = Profile.from_frame(pd.DataFrame({"x": rng.normal(0, 1, 1000)}))
    rolling = RollingWindow(reference, ["x"], 1)
    for k in range(30):
        log_rows(store, T0 + k * MINUTE_MS, 50, rng)
    now = T0 + 30 * MINUTE_MS
    rolling.update(store, "ep", now_ms=now, window_ms=5 * MINUTE_MS)
    assert len(rolling.minutes) <= 6  # memory: minutes of the window, not all the traffic
    profile, traffic = rolling.window(now_ms=now, window_ms=5 * MINUTE_MS)
    assert traffic["requests"] == 5 * 50
    assert profile.rows == 5 * 45
