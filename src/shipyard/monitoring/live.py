"""Monitoring an endpoint's live traffic: evaluate the last window (drift against the
training profile, data quality, accuracy from late labels) and export it as Prometheus gauges.

`shipyard server` runs `LiveMonitor.evaluate_all` every `SHIPYARD_MONITOR_INTERVAL_SECONDS`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import NotFoundError, ShipyardError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from shipyard.config import Settings
    from shipyard.monitoring.rolling import RollingWindow
    from shipyard.sketches import Profile
    from shipyard.stores import Stores

log = logging.getLogger("shipyard.monitoring")


@dataclass
class Evaluation:
    endpoint: str
    at_ms: int
    window_seconds: float
    model_version: int | None = None
    rows: int = 0
    drift: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    accuracy: dict[str, Any] | None = None
    error: str | None = None
    traffic: dict[str, float | None] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    # per monitored column, the reference's and the window's histograms (charts.distribution)
    distributions: dict[str, Any] | None = None

    def to_dict(self, *, distributions: bool = False) -> dict[str, Any]:
        doc = {
            "endpoint": self.endpoint,
            "at_ms": self.at_ms,
            "window_seconds": self.window_seconds,
            "model_version": self.model_version,
            "rows": self.rows,
            "drift": self.drift,
            "quality": self.quality,
            "accuracy": self.accuracy,
            "error": self.error,
        }
        if distributions:
            doc["distributions"] = self.distributions or {}
        return doc

    def summary(self) -> dict[str, Any]:
        """The headline numbers (a list of endpoints shows them)."""
        drift, quality = self.drift or {}, self.quality or {}
        return {
            "at_ms": self.at_ms,
            "window_seconds": self.window_seconds,
            "model_version": self.model_version,
            "rows": self.rows,
            "error": self.error,
            "share_drifted": drift.get("share_drifted"),
            "drifted_columns": drift.get("drifted_columns"),
            "quality_violations": quality.get("violations"),
            "accuracy": ((self.accuracy or {}).get("overall") or {}) or None,
            "traffic": self.traffic,
        }


def evaluate_rolling(
    settings: Settings,
    stores: Stores,
    endpoint: str,
    window_seconds: float,
    windows: dict[str, RollingWindow],
    *,
    now_ms: int | None = None,
) -> Evaluation:
    """One window of one endpoint, from minute sketches kept between calls (see
    monitoring.rolling): only new prediction-log files are read. Accuracy and label drift
    still join the window's predictions with the labels that came back, when there are any."""
    from shipyard.monitoring.drift import detect_drift
    from shipyard.monitoring.performance import join_labels, live_accuracy
    from shipyard.monitoring.quality import check_quality
    from shipyard.monitoring.rolling import RollingWindow
    from shipyard.monitoring.sources import endpoint_labels, endpoint_reference, endpoint_window
    from shipyard.stores.predictions import PredictionLogStore

    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    window_ms = int(window_seconds * 1000)
    reference, columns, version = endpoint_reference(stores, endpoint)
    feature_columns = [c for c in columns if c != "_label"]
    rolling = windows.get(endpoint)
    if rolling is None or rolling.version != version or rolling.columns != feature_columns:
        rolling = windows[endpoint] = RollingWindow(reference, feature_columns, version)
    rolling.update(
        PredictionLogStore(settings.predictions_dir), endpoint, now_ms=now, window_ms=window_ms
    )
    current, traffic = rolling.window(now_ms=now, window_ms=window_ms)
    if current.rows == 0:
        raise NotFoundError(f"endpoint '{endpoint}' served no successful prediction in the window")
    drift = detect_drift(reference, current, columns=feature_columns, alpha=settings.monitor_alpha)
    quality = check_quality(reference, current, [*current.columns])
    labels = endpoint_labels(settings, endpoint)
    accuracy = None
    if not labels.empty:
        raw = endpoint_window(settings, endpoint, window_seconds, now_ms=now)
        joined = join_labels(raw, labels)
        # with the reason for each metric that cannot be computed (AUC without probabilities)
        accuracy = live_accuracy(raw, labels, endpoint=endpoint)
        if "_label" in columns and not joined.empty:
            label_drift = detect_drift(
                reference, joined[["_label"]], columns=["_label"], alpha=settings.monitor_alpha
            )
            drift.columns["_label"] = label_drift.columns["_label"]
            # the family of tests grew by one: adjust the p-values over all of them again
            from shipyard.monitoring.drift import judge

            drift = judge(
                list(drift.columns.values()),
                drift.alpha,
                drift.correction,  # type: ignore[arg-type]
                drift.min_effect,
            )
    return Evaluation(
        endpoint,
        now,
        window_seconds,
        version,
        current.rows,
        drift.to_dict(),
        quality.to_dict(),
        accuracy,
        traffic=traffic,
        distributions=_distributions(reference, current, feature_columns),
    )


def _distributions(reference: Profile, current: Profile, columns: list[str]) -> dict[str, Any]:
    from shipyard.monitoring.charts import distribution

    out = {}
    for c in columns:
        if c in reference.columns and c in current.columns:
            found = distribution(reference.columns[c], current.columns[c])
            if found is not None:
                out[c] = found
    return out


class MonitoringGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Gauge

        self.drift_score = Gauge(
            "shipyard_feature_drift_score",
            "Effect size of the latest drift test per feature (Wasserstein in reference sds "
            "for numbers, Jensen-Shannon distance for categories).",
            ("endpoint", "feature"),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.drift_p = Gauge(
            "shipyard_feature_drift_p_value",
            "Adjusted p-value of the latest drift test.",
            ("endpoint", "feature"),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.drifted = Gauge(
            "shipyard_feature_drifted",
            "1 when the latest test found drift in the feature.",
            ("endpoint", "feature"),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.drift_share = Gauge(
            "shipyard_drift_share",
            "Share of monitored features that drifted in the last window.",
            ("endpoint",),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.quality = Gauge(
            "shipyard_data_quality_violations",
            "Values in the last window outside the training range, unseen or of the wrong type.",
            ("endpoint", "feature"),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.accuracy = Gauge(
            "shipyard_model_accuracy",
            "Accuracy from late labels over the last window.",
            ("endpoint", "version"),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.model_metric = Gauge(
            "shipyard_model_metric",
            "Quality from late labels (accuracy, f1, auc, mae, rmse).",
            ("endpoint", "version", "metric"),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.rows = Gauge(
            "shipyard_monitored_rows",
            "Rows in the last evaluated window.",
            ("endpoint",),
            registry=registry,
            multiprocess_mode="mostrecent",
        )

    def update(self, ev: Evaluation) -> None:
        from shipyard.monitoring.performance import METRICS

        if ev.drift is not None:
            for name, col in ev.drift["columns"].items():
                self.drift_score.labels(ev.endpoint, name).set(col["effect_size"] or 0.0)
                self.drift_p.labels(ev.endpoint, name).set(
                    1.0 if col["p_adjusted"] is None else col["p_adjusted"]
                )
                self.drifted.labels(ev.endpoint, name).set(1 if col["drifted"] else 0)
            self.drift_share.labels(ev.endpoint).set(ev.drift["share_drifted"])
        if ev.quality is not None:
            for name, col in ev.quality["columns"].items():
                self.quality.labels(ev.endpoint, name).set(col["violations"])
        if ev.accuracy is not None:
            for version, m in ev.accuracy.get("by_version", {}).items():
                if m.get("accuracy") is not None:
                    self.accuracy.labels(ev.endpoint, version).set(m["accuracy"])
                for key in (*METRICS["classification"], *METRICS["regression"]):
                    if m.get(key) is not None:  # a metric that cannot be computed: no sample
                        self.model_metric.labels(ev.endpoint, version, key).set(m[key])
        self.rows.labels(ev.endpoint).set(ev.rows)


class LiveMonitor:
    """Evaluates every endpoint's last window; keeps the latest evaluation of each."""

    def __init__(self, settings: Settings, stores: Stores, gauges: MonitoringGauges | None) -> None:
        from shipyard.monitoring.alerts import AlertEvaluator
        from shipyard.stores.secrets import signing_key

        self.settings = settings
        self.stores = stores
        self.gauges = gauges
        self.alerts = AlertEvaluator(stores, signing_key(settings))
        self.latest: dict[str, Evaluation] = {}
        self.windows: dict[str, RollingWindow] = {}

    def evaluate_all(self, endpoints: list[str]) -> list[Evaluation]:
        done = []
        for name in endpoints:
            ev = self._evaluate(name, self.settings.monitor_window_seconds, self.windows)
            if self.gauges is not None and ev.error is None:
                self.gauges.update(ev)
            try:  # every evaluation, a failed one too: its rules are then "unknown"
                ev.alerts = [
                    {"alert": rule.name, "change": change}
                    for rule, change in self.alerts.evaluate(ev)
                ]
            except Exception:  # a broken rule must not stop the monitoring of the rest
                log.exception("alert rules of %s failed", name)
            self.latest[name] = ev
            done.append(ev)
        return done

    def _evaluate(
        self, name: str, window_seconds: float, windows: dict[str, RollingWindow]
    ) -> Evaluation:
        """One endpoint's window; a failure is the evaluation's `error`, never raised."""
        try:
            return evaluate_rolling(self.settings, self.stores, name, window_seconds, windows)
        except ShipyardError as exc:  # no traffic or no reference yet: nothing to say
            error = exc.message
        except Exception as exc:  # keep monitoring the other endpoints
            log.exception("monitoring %s failed", name)
            error = f"{type(exc).__name__}: {exc}"
        return Evaluation(name, time.time_ns() // 1_000_000, window_seconds, error=error)

    def inspect(
        self, name: str, window_seconds: float | None = None, *, fresh: bool = False
    ) -> Evaluation:
        """An endpoint's evaluation to look at: the monitor's latest over its own window, or
        (`fresh`, none yet, or another `window_seconds`) one made now that changes nothing —
        neither the monitor's windows, nor its gauges, nor any alert rule. Only the monitor's
        own pass acts on alerts: a reader looking cannot fire one."""
        own = self.settings.monitor_window_seconds
        if window_seconds is None or window_seconds == own:
            if not fresh and name in self.latest:
                return self.latest[name]
            return self._evaluate(name, own, {})
        return self._evaluate(name, window_seconds, {})

    def accuracy_series(
        self, name: str, window_seconds: float, buckets: int = 24
    ) -> dict[str, Any]:
        """Live quality over time by model version: the last `window_seconds` of predictions
        that got a label back, in `buckets` intervals (performance.accuracy_over_time)."""
        from shipyard.monitoring.performance import accuracy_over_time
        from shipyard.monitoring.sources import endpoint_labels, endpoint_window

        now = time.time_ns() // 1_000_000
        start = now - int(window_seconds * 1000)
        try:
            raw = endpoint_window(self.settings, name, window_seconds, now_ms=now)
        except NotFoundError as exc:
            return {"start_ms": start, "end_ms": now, "versions": {}, "not_computable": exc.message}
        labels = endpoint_labels(self.settings, name)
        return accuracy_over_time(
            raw, labels, start_ms=start, end_ms=now, buckets=buckets, endpoint=name
        )
