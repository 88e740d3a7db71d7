"""Prometheus metrics of the data plane, in a registry of their own (one per app), so two apps
in one process (tests, `server` + `serve`) never share or clash.

With `--workers N`, the parent sets prometheus_client's PROMETHEUS_MULTIPROC_DIR before it
forks: every worker writes its values to files there and `/metrics`, whichever worker answers
the scrape, reports all of them together (counters and histograms summed, gauges as their
multiprocess_mode says)."""

from __future__ import annotations

import contextlib
from typing import Any

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


class ServingMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any, Any, Any]] = {}
        self._in_flight: dict[str, Any] = {}
        labels = ("endpoint", "model", "version")
        self.requests = Counter(
            "shipyard_requests",
            "Prediction requests, by outcome status code.",
            (*labels, "status"),
            registry=self.registry,
        )
        self.errors = Counter(
            "shipyard_request_errors",
            "Prediction requests answered with an error.",
            (*labels, "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "shipyard_request_latency_seconds",
            "Time to answer a prediction request.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "shipyard_predicted_rows", "Rows predicted.", labels, registry=self.registry
        )
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
        self.in_flight = Gauge(
            "shipyard_requests_in_flight",
            "Requests being answered now.",
            ("endpoint",),
            registry=self.registry,
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
        # labelled children are cached: .labels() takes a lock and builds a key per call
        key = (endpoint, model, version, status)
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
        requests.inc()
        if errors is not None:
            errors.inc()
        else:
            rows_counter.inc(rows)
        latency.observe(seconds)

    def in_flight_for(self, endpoint: str) -> Any:
        child = self._in_flight.get(endpoint)
        if child is None:
            child = self._in_flight[endpoint] = self.in_flight.labels(endpoint)
        return child

    def observe_batch(
        self, endpoint: str, model: str, version: str, rows: int, waits: list[float], seconds: float
    ) -> None:
        self.batch_rows.labels(endpoint, model, version).observe(rows)
        self.inference.labels(endpoint, model, version).observe(seconds)
        wait = self.queue_wait.labels(endpoint, model, version)
        for w in waits:
            wait.observe(w)

    def reject(self, endpoint: str, reason: str) -> None:
        self.rejections.labels(endpoint, reason).inc()

    def render(self) -> tuple[bytes, str]:
        import os

        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        # prometheus_client's own switch (set by serve_forever for several workers)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client.multiprocess import MultiProcessCollector

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
