"""An endpoint's live traffic by model version, from this process's own serving metrics (the
tallies `ServingMetrics.observe` keeps for /metrics): requests, errors, rows and latency
percentiles since the process started, and over the last minute — the request rate and the
latency now, as the web UI's deployment page shows them every few seconds.

The counters are cumulative; "the last minute" is the difference from a copy taken by an
earlier call, so the first call of a quiet server has no recent figures yet (`recent` is None)
and any caller's polling gives every caller a rate. Percentiles come from the latency
histogram's buckets, interpolated inside a bucket as Prometheus' `histogram_quantile` does.
With several workers (`--workers N`), each worker counts what it answered: the figures are
those of the worker that answers the call.

    stats = TrafficStats(metrics)
    stats.of("churn")   # {"endpoint", "at_ms", "versions": [{"version", "total", "recent"}, …]}
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.serving.metrics import LATENCY_BUCKETS

if TYPE_CHECKING:
    from shipyard.serving.metrics import ServingMetrics

RECENT_SECONDS = 60.0  # "now": the rate and latency over at most the last minute
MIN_GAP_SECONDS = 0.5  # a copy younger than this is too close to measure a rate against
MAX_COPIES = 512  # per endpoint, however often it is polled


@dataclass
class Counts:
    """One model version's requests since the process started."""

    model: str
    version: str
    requests: int = 0
    ok: int = 0
    client_errors: int = 0  # 4xx: the callers' bad input, never the model's fault
    server_errors: int = 0  # 5xx: the model failed, timed out or the server was full
    rows: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))

    def minus(self, earlier: Counts | None) -> Counts:
        if earlier is None:
            return self
        return Counts(
            self.model,
            self.version,
            self.requests - earlier.requests,
            self.ok - earlier.ok,
            self.client_errors - earlier.client_errors,
            self.server_errors - earlier.server_errors,
            self.rows - earlier.rows,
            self.seconds - earlier.seconds,
            [a - b for a, b in zip(self.buckets, earlier.buckets, strict=True)],
        )

    def summary(self) -> dict[str, Any]:
        n = self.requests
        return {
            "requests": n,
            "ok": self.ok,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "error_rate": self.server_errors / n if n else None,
            "rows": self.rows,
            "mean_ms": 1000 * self.seconds / n if n else None,
            "p50_ms": quantile_ms(self.buckets, 0.50),
            "p95_ms": quantile_ms(self.buckets, 0.95),
            "p99_ms": quantile_ms(self.buckets, 0.99),
        }


def quantile_ms(buckets: list[int], q: float) -> float | None:
    """The q-quantile of a latency histogram (counts per `LATENCY_BUCKETS` bucket, then +Inf),
    in milliseconds, linear inside the bucket it falls in; the +Inf bucket answers its lower
    bound (nothing is known above it). None without observations."""
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    running = 0
    for i, n in enumerate(buckets):
        if n <= 0:
            continue
        if running + n >= rank:
            if i >= len(LATENCY_BUCKETS):
                return 1000 * LATENCY_BUCKETS[-1]
            lower = LATENCY_BUCKETS[i - 1] if i > 0 else 0.0
            upper = LATENCY_BUCKETS[i]
            return 1000 * (lower + (upper - lower) * max(rank - running, 0.0) / n)
        running += n
    return 1000 * LATENCY_BUCKETS[-1]


class TrafficStats:
    """Live traffic by version of the endpoints one `ServingMetrics` counts (thread-safe: the
    API's handlers run in a thread pool)."""

    def __init__(
        self, metrics: ServingMetrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self._copies: dict[str, deque[tuple[float, dict[tuple[str, str], Counts]]]] = {}
        self._lock = threading.Lock()

    def counts(self, endpoint: str) -> dict[tuple[str, str], Counts]:
        """Every version's counts now, by (model, version)."""
        out: dict[tuple[str, str], Counts] = {}
        for model, version, status, requests, rows, seconds, buckets in self.metrics.tallies(
            endpoint
        ):
            c = out.get((model, version))
            if c is None:
                c = out[(model, version)] = Counts(model, version)
            c.requests += requests
            c.seconds += seconds
            c.buckets = [a + b for a, b in zip(c.buckets, buckets, strict=True)]
            if status < 400:
                c.ok += requests
                c.rows += rows
            elif status < 500:
                c.client_errors += requests
            else:
                c.server_errors += requests
        return out

    def _baseline(self, endpoint: str, now: float, counts: dict[tuple[str, str], Counts]) -> Any:
        """The oldest copy within the last minute (at least `MIN_GAP_SECONDS` old), then keep
        this one for the next call."""
        with self._lock:
            copies = self._copies.setdefault(endpoint, deque(maxlen=MAX_COPIES))
            while copies and copies[0][0] < now - RECENT_SECONDS:
                copies.popleft()
            base = next((c for c in copies if c[0] <= now - MIN_GAP_SECONDS), None)
            if not copies or copies[-1][0] <= now - MIN_GAP_SECONDS:
                copies.append((now, counts))
            return base

    def of(self, endpoint: str) -> dict[str, Any]:
        """`endpoint`'s traffic by version: `total` since the process started, `recent` over
        the time since the oldest copy of the last minute (None until there is one), with the
        request rate per second."""
        now = self.clock()
        counts = self.counts(endpoint)
        base = self._baseline(endpoint, now, counts)
        versions = []
        for key in sorted(counts, key=lambda k: (k[0], _version_order(k[1]))):
            c = counts[key]
            doc: dict[str, Any] = {"model": c.model, "version": c.version}
            doc["total"] = c.summary()
            doc["recent"] = None
            if base is not None:
                seconds = now - base[0]
                recent = c.minus(base[1].get(key)).summary()
                recent["seconds"] = seconds
                recent["rate_per_second"] = recent["requests"] / seconds
                doc["recent"] = recent
            versions.append(doc)
        return {
            "endpoint": endpoint,
            "at_ms": time.time_ns() // 1_000_000,
            "recent_seconds": None if base is None else now - base[0],
            "versions": versions,
        }


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)
