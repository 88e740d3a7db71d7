"""Live traffic in O(1) memory: one sketch per minute, counted from the prediction log's part
files as they appear (each file once — they never change), merged into any window on demand
(minute → hour → day). Memory depends on the window's minutes and the reference's bins, not
on traffic volume; each evaluation reads only the files written since the last one.

Windows are whole minutes. Latency percentiles come from a log-spaced histogram (about 2 %
resolution)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.sketches import Profile

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shipyard.stores.predictions import PredictionLogStore

MINUTE_MS = 60_000


def _latency_edges() -> np.ndarray:
    import numpy as np

    return np.geomspace(0.01, 600_000.0, 800)  # 10 µs .. 10 min, ~2.2 % apart


@dataclass
class MinuteSketch:
    profile: Profile
    requests: int = 0
    errors: int = 0
    latency: Any = None  # counts over _latency_edges()

    def merged(self, other: MinuteSketch) -> MinuteSketch:
        return MinuteSketch(
            self.profile.merged(other.profile),
            self.requests + other.requests,
            self.errors + other.errors,
            self.latency + other.latency,
        )


@dataclass
class RollingWindow:
    reference: Profile
    columns: list[str]
    version: int | None
    minutes: dict[int, MinuteSketch] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)  # file → its hour's start (ms)

    def _empty(self) -> MinuteSketch:
        import numpy as np

        sketch_columns = {
            c: s for c, s in self.reference.empty_like().columns.items() if c in self.columns
        }
        return MinuteSketch(
            Profile(sketch_columns), 0, 0, np.zeros(len(_latency_edges()) + 1, dtype=np.int64)
        )

    def update(
        self, store: PredictionLogStore, endpoint: str, *, now_ms: int, window_ms: int
    ) -> int:
        """Count the part files not counted yet; forget minutes older than the window.
        Returns the rows counted."""
        import pyarrow.parquet as pq

        start = now_ms - window_ms
        rows = 0
        for path in store.files(endpoint, start_ms=start, end_ms=now_ms + 1):
            key = str(path)
            if key in self.counted:
                continue
            rows += self._observe(pq.read_table(path).to_pandas())
            self.counted[key] = int(path.stat().st_mtime * 1000)
        oldest = start // MINUTE_MS
        for minute in [m for m in self.minutes if m < oldest]:
            del self.minutes[minute]
        # a file cannot hold rows younger than its write: once written before the window,
        # it holds nothing for it
        for key in [k for k, written in self.counted.items() if written < start - 3_600_000]:
            del self.counted[key]
        return rows

    def _observe(self, df: pd.DataFrame) -> int:
        import numpy as np

        if df.empty:
            return 0
        edges = _latency_edges()
        for minute, group in df.groupby(df["_ts"] // MINUTE_MS):
            bucket = self.minutes.get(int(minute))
            if bucket is None:
                bucket = self.minutes[int(minute)] = self._empty()
            heads = group[group["_row"] == 0] if "_row" in group.columns else group
            bucket.requests += len(heads)
            bucket.errors += int((heads["_status"] >= 400).sum())
            bucket.latency += np.bincount(
                np.searchsorted(edges, heads["_latency_ms"].to_numpy()), minlength=len(edges) + 1
            )
            ok = group[group["_status"] == 200]
            if len(ok):
                bucket.profile.observe(ok)
        return len(df)

    def window(self, *, now_ms: int, window_ms: int) -> tuple[Profile, dict[str, float | None]]:
        """The merged profile and traffic numbers of the minutes inside the window."""
        first = (now_ms - window_ms) // MINUTE_MS
        merged = self._empty()
        for minute, bucket in self.minutes.items():
            if minute >= first:
                merged = merged.merged(bucket)
        return merged.profile, _traffic(merged)


def _traffic(m: MinuteSketch) -> dict[str, float | None]:
    import numpy as np

    if m.requests == 0:
        return {"requests": 0.0, "error_rate": None, "p50_latency_ms": None, "p99_latency_ms": None}
    edges = _latency_edges()
    cum = np.cumsum(m.latency)

    def quantile(q: float) -> float:
        i = int(np.searchsorted(cum, q * cum[-1]))
        return float(edges[min(i, len(edges) - 1)])

    return {
        "requests": float(m.requests),
        "error_rate": m.errors / m.requests,
        "p50_latency_ms": quantile(0.5),
        "p99_latency_ms": quantile(0.99),
    }
