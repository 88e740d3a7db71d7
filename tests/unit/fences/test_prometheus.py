"""fences/prometheus.py: its check passes on the installed prometheus_client; `add` means what
`observe` means; and without the private names the per-request metrics of several workers are
published through `observe` with the same samples."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from shipyard.fences import prometheus as fence
from shipyard.serving import metrics as m

LATENCIES = (0.0004, 0.003, 0.003, 2.0, 0.001, 30.0)


@pytest.fixture(autouse=True)
def _fresh_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fence, "_usable", None)  # restored after the test


def _break_observe(monkeypatch: pytest.MonkeyPatch) -> None:
    """A prometheus_client whose `observe` no longer goes through `_sum`/`_buckets` (still a
    working `observe`: the public path)."""
    original = Histogram.observe

    def observe(self: Any, amount: float, exemplar: Any = None) -> None:
        original(self, amount, exemplar)

    monkeypatch.setattr(Histogram, "observe", observe)


def test_check_passes_on_the_installed_version(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "shipyard.fences"):
        assert fence.check() is True
    assert caplog.records == []
    assert fence.usable() is True


def test_add_gives_the_samples_observe_gives() -> None:
    registry = CollectorRegistry()
    by_observe = Histogram("a", "a", ["k"], buckets=m.LATENCY_BUCKETS, registry=registry)
    by_add = Histogram("b", "b", ["k"], buckets=m.LATENCY_BUCKETS, registry=registry)
    counts = [0] * (len(m.LATENCY_BUCKETS) + 1)
    for seconds in LATENCIES:
        by_observe.labels("x").observe(seconds)
        counts[m.bisect.bisect_left(m.LATENCY_BUCKETS, seconds)] += 1
    fence.add(by_add.labels("x"), sum(LATENCIES), counts)
    observed, added = _by_suffix(by_observe), _by_suffix(by_add)
    assert len(observed) == len(m.LATENCY_BUCKETS) + 3  # buckets, +Inf, count, sum
    assert added == pytest.approx(observed)


def _by_suffix(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (s.name[1:], s.labels.get("le", "")): s.value
        for family in histogram.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_a_missing_private_name_is_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _break_observe(monkeypatch)
    with caplog.at_level(logging.WARNING, "shipyard.fences"):
        assert fence.check() is False
    assert len(caplog.records) == 1
    assert "Histogram.observe's _sum" in caplog.records[0].getMessage()
    assert fence.FALLBACK in caplog.records[0].getMessage()


def _published(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, replay: bool) -> str:
    """The per-request samples several workers publish (the registry itself: the shared files
    are prometheus_client's concern, switched on at its import)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics = m.ServingMetrics()
    assert metrics.shared
    assert metrics._replay is replay
    for i, seconds in enumerate(LATENCIES):
        metrics.observe("churn", "churn", "3", 200 if i % 3 else 422, seconds, 2)
        if i == 2:
            metrics.publish()  # twice: the second publication adds only what is new
    metrics.publish()
    return generate_latest(metrics.registry).decode()


def _samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("shipyard_") and "_created" not in line
    }


def test_without_the_private_names_several_workers_publish_the_same_samples(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    fast = _samples(_published(monkeypatch, tmp_path / "fast", replay=False))
    _break_observe(monkeypatch)
    monkeypatch.setattr(fence, "_usable", None)
    public = _samples(_published(monkeypatch, tmp_path / "public", replay=True))
    assert fast.keys() == public.keys()
    assert any("latency_seconds_bucket" in k for k in fast)
    for key, value in fast.items():
        assert public[key] == pytest.approx(value), key
