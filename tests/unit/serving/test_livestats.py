"""Live traffic by version from the serving metrics' tallies: totals, the last minute's rate
and latency percentiles from the histogram's buckets."""

from __future__ import annotations

import pytest

from shipyard.serving.livestats import TrafficStats, quantile_ms
from shipyard.serving.metrics import LATENCY_BUCKETS, ServingMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def buckets_with(**at: int) -> list[int]:
    counts = [0] * (len(LATENCY_BUCKETS) + 1)
    for index, n in at.items():
        counts[int(index.lstrip("b"))] = n
    return counts


def test_a_quantile_is_interpolated_inside_its_bucket_and_capped_at_the_last_bound() -> None:
    assert quantile_ms([0] * (len(LATENCY_BUCKETS) + 1), 0.5) is None
    # 10 requests in (1 ms, 2.5 ms]: the median halfway through it
    assert quantile_ms(buckets_with(b2=10), 0.5) == pytest.approx(1.75)
    # all in the first bucket (0, 0.5 ms]
    assert quantile_ms(buckets_with(b0=4), 1.0) == pytest.approx(0.5)
    # beyond the last finite bound nothing is known: its bound
    over = buckets_with(b0=1, **{f"b{len(LATENCY_BUCKETS)}": 99})
    assert quantile_ms(over, 0.95) == pytest.approx(1000 * LATENCY_BUCKETS[-1])


def test_totals_by_version_split_ok_client_and_server_errors() -> None:
    metrics = ServingMetrics()
    for _ in range(8):
        metrics.observe("churn", "churn", "1", 200, 0.002, 5)
    metrics.observe("churn", "churn", "1", 422, 0.001, 0)
    metrics.observe("churn", "churn", "2", 500, 0.004, 0)
    metrics.observe("other", "churn", "1", 200, 0.002, 5)  # another endpoint: not counted
    doc = TrafficStats(metrics).of("churn")
    by = {v["version"]: v for v in doc["versions"]}
    assert list(by) == ["1", "2"]
    one = by["1"]["total"]
    counts = (one["requests"], one["ok"], one["client_errors"], one["server_errors"])
    assert counts == (9, 8, 1, 0)
    assert one["rows"] == 40 and one["error_rate"] == 0
    assert 1.0 < one["p50_ms"] <= 2.5
    assert by["2"]["total"]["error_rate"] == 1.0
    assert by["1"]["recent"] is None and doc["recent_seconds"] is None  # nothing to compare yet


def test_the_recent_rate_and_latency_are_the_difference_from_an_earlier_call() -> None:
    metrics, clock = ServingMetrics(), Clock()
    stats = TrafficStats(metrics, clock)
    metrics.observe("churn", "churn", "1", 200, 0.3, 1)  # slow, before the first look
    stats.of("churn")
    clock.now += 2.0
    for _ in range(10):
        metrics.observe("churn", "churn", "1", 200, 0.0008, 1)
    recent = stats.of("churn")["versions"][0]["recent"]
    assert recent["requests"] == 10 and recent["rate_per_second"] == pytest.approx(5.0)
    assert recent["p95_ms"] < 1.0  # the slow request is history
    clock.now += 0.1  # too soon to be a baseline of its own: still measured from the first
    assert stats.of("churn")["versions"][0]["recent"]["seconds"] == pytest.approx(2.1)
    clock.now += 120  # the copies are older than the minute: measuring starts over
    assert stats.of("churn")["versions"][0]["recent"] is None
