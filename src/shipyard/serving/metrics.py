"""Prometheus metrics of the data plane, in a registry of their own (one per app), so two apps
in one process (tests, `server` + `serve`) never share or clash.

With `--workers N`, the parent sets prometheus_client's PROMETHEUS_MULTIPROC_DIR before it
forks: every worker writes its values to files there and `/metrics`, whichever worker answers
the scrape, reports all of them together (counters and histograms summed, gauges as their
multiprocess_mode says).

The per-request figures (requests, errors, rows, latency, in-flight) are plain counters the
event loop bumps: a request then takes none of prometheus_client's locks (nor, with several
workers, writes to its memory-mapped files), which would cost more than the bookkeeping itself.
In one process they are turned into Prometheus samples when /metrics is scraped. With several
workers each one publishes what it counted into the shared files at most `PUBLISH_SECONDS`
after a request, and before it answers a scrape itself: a scrape shows another worker's last
second late, never wrong. A histogram takes many observations at once only through
prometheus_client's private names (fences/prometheus.py); when those are gone, each latency is
kept until the next publication and replayed through `observe`."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shipyard.fences import prometheus as prometheus_fence

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

# prometheus_client's documented switch for its multiprocess mode: the one environment variable
# shipyard sets, here only, and read only by prometheus_client and `shared_between_workers`
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def share_between_workers(directory: str) -> None:
    """Switch prometheus_client to multiprocess mode, writing to `directory`: in the parent,
    before it forks workers (they must see it before they import prometheus_client)."""
    os.environ[MULTIPROC_ENV] = directory


def shared_between_workers() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


PUBLISH_SECONDS = 1.0  # several workers: how late a worker's counts may reach the files


class _Tally:
    """One (endpoint, model, version, status)'s requests since start; `published` is the
    part of them already in prometheus_client's shared files (several workers)."""

    __slots__ = ("buckets", "count", "latencies", "published", "rows", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.rows = 0
        self.sum = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.published: tuple[int, int, float, list[int]] = (0, 0, 0.0, [0] * len(self.buckets))
        self.latencies: list[float] = []  # not yet published (only without the fence)


class _Live:
    """An in-flight gauge child as a plain number; `changed` (several workers) is called when
    a request starts, so that the shared files learn of it."""

    __slots__ = ("changed", "value")

    def __init__(self, changed: Any = None) -> None:
        self.value = 0
        self.changed = changed

    def inc(self) -> None:
        self.value += 1
        if self.changed is not None:
            self.changed()

    def dec(self) -> None:
        self.value -= 1


# help texts of the per-request metrics, shared by both ways of exporting them
HELP = {
    "requests": "Prediction requests, by outcome status code.",
    "errors": "Prediction requests answered with an error.",
    "latency": "Time to answer a prediction request.",
    "rows": "Rows predicted.",
    "in_flight": "Requests being answered now.",
}


class _TallyCollector:
    """The per-request figures of one process, as Prometheus samples at scrape time."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        labels = ["endpoint", "model", "version"]
        requests = CounterMetricFamily(
            "shipyard_requests", HELP["requests"], labels=[*labels, "status"]
        )
        errors = CounterMetricFamily(
            "shipyard_request_errors", HELP["errors"], labels=[*labels, "status"]
        )
        rows = CounterMetricFamily("shipyard_predicted_rows", HELP["rows"], labels=labels)
        latency = HistogramMetricFamily(
            "shipyard_request_latency_seconds", HELP["latency"], labels=labels
        )
        per_version: dict[tuple[str, str, str], tuple[list[int], float, int]] = {}
        for (endpoint, model, version, status), t in list(self.metrics._tallies.items()):
            requests.add_metric([endpoint, model, version, str(status)], t.count)
            if status >= 400:
                errors.add_metric([endpoint, model, version, str(status)], t.count)
            key = (endpoint, model, version)
            buckets, total, rows_sum = per_version.get(key, ([0] * len(t.buckets), 0.0, 0))
            buckets = [a + b for a, b in zip(buckets, t.buckets, strict=True)]
            per_version[key] = (buckets, total + t.sum, rows_sum + t.rows)
        for key, (buckets, total, rows_sum) in per_version.items():
            rows.add_metric(list(key), rows_sum)
            cumulative, running = [], 0
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), buckets, strict=True):
                running += n
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
            latency.add_metric(list(key), cumulative, sum_value=total)
        live = GaugeMetricFamily(
            "shipyard_requests_in_flight", HELP["in_flight"], labels=["endpoint"]
        )
        for endpoint, child in list(self.metrics._in_flight.items()):
            live.add_metric([endpoint], child.value)
        yield from (requests, errors, latency, rows, live)


class ServingMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry()
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any, Any, Any]] = {}
        self._in_flight: dict[str, Any] = {}
        # several workers share prometheus_client's files; one process keeps plain tallies
        self.shared = shared_between_workers()
        self._tallies: dict[tuple[str, str, str, int], _Tally] = {}
        self._publishing = False
        # several workers without prometheus_client's histogram internals: replay latencies
        self._replay = self.shared and not prometheus_fence.usable()
        # the per-request metrics live in the registry only when shared; else the collector
        # exports the tallies under the same names
        per_request = self.registry if self.shared else None
        self._add_request_metrics(per_request)
        self._add_endpoint_metrics(per_request)
        if not self.shared:
            self.registry.register(_TallyCollector(self))  # type: ignore[arg-type]

    def _add_request_metrics(self, per_request: CollectorRegistry | None) -> None:
        """Per request (requests, errors, latency, rows) and per model call (queue wait,
        inference time, batch size)."""
        from prometheus_client import Counter, Histogram

        labels = ("endpoint", "model", "version")
        self.requests = Counter(
            "shipyard_requests",
            HELP["requests"],
            (*labels, "status"),
            registry=per_request,
        )
        self.errors = Counter(
            "shipyard_request_errors",
            HELP["errors"],
            (*labels, "status"),
            registry=per_request,
        )
        self.latency = Histogram(
            "shipyard_request_latency_seconds",
            HELP["latency"],
            labels,
            buckets=LATENCY_BUCKETS,
            registry=per_request,
        )
        self.rows = Counter("shipyard_predicted_rows", HELP["rows"], labels, registry=per_request)
        self.queue_wait = Histogram(
            "shipyard_queue_wait_seconds",
            "Time a request waited for a batch slot.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "shipyard_inference_seconds",
            "Time of one model call (one batch).",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "shipyard_batch_rows",
            "Rows per model call.",
            labels,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )

    def _add_endpoint_metrics(self, per_request: CollectorRegistry | None) -> None:
        """Per endpoint: requests in flight, refusals, the prediction log, readiness."""
        from prometheus_client import Counter, Gauge

        self.in_flight = Gauge(
            "shipyard_requests_in_flight",
            HELP["in_flight"],
            ("endpoint",),
            registry=per_request,
            multiprocess_mode="livesum",
        )
        self.rejections = Counter(
            "shipyard_rejections",
            "Requests refused before prediction, by reason.",
            ("endpoint", "reason"),
            registry=self.registry,
        )
        self.predlog_dropped = Counter(
            "shipyard_predlog_dropped",
            "Prediction-log rows dropped because the buffer was full.",
            ("endpoint",),
            registry=self.registry,
        )
        self.predlog_written = Counter(
            "shipyard_predlog_written",
            "Prediction-log rows written to Parquet.",
            ("endpoint",),
            registry=self.registry,
        )
        self.ready = Gauge(
            "shipyard_model_ready",
            "1 when the endpoint's model is loaded and warmed up.",
            ("endpoint", "model", "version"),
            registry=self.registry,
            multiprocess_mode="livemin",
        )

    def observe(
        self, endpoint: str, model: str, version: str, status: int, seconds: float, rows: int
    ) -> None:
        """One request answered (on the event loop's thread: plain numbers suffice)."""
        key = (endpoint, model, version, status)
        t = self._tallies.get(key)
        if t is None:
            t = self._tallies[key] = _Tally()
        t.count += 1
        if status < 400:
            t.rows += rows
        t.sum += seconds
        t.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        if self._replay:
            t.latencies.append(seconds)
        if self.shared and not self._publishing:
            self._schedule()

    def tallies(self, endpoint: str) -> list[tuple[str, str, int, int, int, float, list[int]]]:
        """What this process answered for `endpoint` since it started, one tuple per (model,
        version, status): (model, version, status, requests, rows, latency seconds summed,
        requests per `LATENCY_BUCKETS` bucket, the last one +Inf). Read from another thread
        (the control plane's stats route): a copy, taken without stopping the event loop."""
        return [
            (model, version, status, t.count, t.rows, t.sum, list(t.buckets))
            for (name, model, version, status), t in list(self._tallies.items())
            if name == endpoint
        ]

    def _schedule(self) -> None:
        """Several workers: publish within `PUBLISH_SECONDS` (once, however many requests)."""
        if self._publishing:
            return
        self._publishing = True
        try:
            asyncio.get_running_loop().call_later(PUBLISH_SECONDS, self._publish_due)
        except RuntimeError:  # no event loop here: at once
            self._publishing = False
            self.publish()

    def _publish_due(self) -> None:
        """The one pending timer: publish, and again a second later while requests are in
        flight (so that the in-flight gauge follows long requests)."""
        self._publishing = False
        if self.publish():
            self._schedule()

    def publish(self) -> bool:
        """Several workers: add what this one counted since the last time to the shared
        files (on the event loop's thread, like `observe`). True if requests are in flight."""
        if not self.shared:
            return False
        for key, t in list(self._tallies.items()):
            count, rows, total, buckets = t.published
            if t.count == count:
                continue
            endpoint, model, version, status = key
            # labelled children are cached: .labels() takes a lock and builds a key per call
            children = self._children.get(key)
            if children is None:
                labels = (endpoint, model, version)
                children = self._children[key] = (
                    self.requests.labels(*labels, str(status)),
                    self.errors.labels(*labels, str(status)) if status >= 400 else None,
                    self.rows.labels(*labels),
                    self.latency.labels(*labels),
                )
            requests, errors, rows_counter, latency = children
            requests.inc(t.count - count)
            if errors is not None:
                errors.inc(t.count - count)
            if t.rows != rows:
                rows_counter.inc(t.rows - rows)
            if self._replay:
                for seconds in t.latencies:
                    latency.observe(seconds)
                t.latencies.clear()
            else:
                counts = [a - b for a, b in zip(t.buckets, buckets, strict=True)]
                prometheus_fence.add(latency, t.sum - total, counts)
            t.published = (t.count, t.rows, t.sum, list(t.buckets))
        busy = False
        for endpoint, live in list(self._in_flight.items()):
            self.in_flight.labels(endpoint).set(live.value)
            busy = busy or live.value > 0
        return busy

    def in_flight_for(self, endpoint: str) -> _Live:
        child = self._in_flight.get(endpoint)
        if child is None:
            child = self._in_flight[endpoint] = _Live(self._schedule if self.shared else None)
        return child

    def observe_batch(
        self, endpoint: str, model: str, version: str, rows: int, waits: list[float], seconds: float
    ) -> None:
        self.batch_rows.labels(endpoint, model, version).observe(rows)
        self.inference.labels(endpoint, model, version).observe(seconds)
        wait = self.queue_wait.labels(endpoint, model, version)
        for w in waits:
            wait.observe(w)

    def counter(self, name: str, doc: str, labels: tuple[str, ...]) -> Any:
        """A counter of this registry made once by name (models loaded later share it)."""
        # made on first use; dict.setdefault is atomic, so two loading threads share one lock
        lock = self.__dict__.setdefault("_counters_lock", threading.Lock())
        with lock:
            counters: dict[str, Any] = self.__dict__.setdefault("_counters", {})
            found = counters.get(name)
            if found is None:
                from prometheus_client import Counter

                found = counters[name] = Counter(name, doc, labels, registry=self.registry)
        return found

    def reject(self, endpoint: str, reason: str) -> None:
        self.rejections.labels(endpoint, reason).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.shared:  # prometheus_client's own switch, set by serve_forever for several workers
            from prometheus_client.multiprocess import MultiProcessCollector

            self.publish()  # this worker's counts up to now; the others' at most a second late
            combined = CollectorRegistry()
            MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
            return generate_latest(combined), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def set_ready(self, endpoint: str, model: str, version: str, ready: bool) -> None:
        self.ready.labels(endpoint, model, version).set(1 if ready else 0)

    def forget(self, endpoint: str, model: str, version: str) -> None:
        with contextlib.suppress(KeyError):
            self.ready.remove(endpoint, model, version)

    def __getstate__(self) -> dict[str, Any]:  # not picklable on purpose: one per process
        raise TypeError("ServingMetrics is per process")
