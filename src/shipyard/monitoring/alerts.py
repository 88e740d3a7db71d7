"""Alert rules on monitored metrics, with actions: a webhook and/or a command (a retraining
pipeline, typically). A rule fires after its condition held for `for_windows` consecutive
evaluations and resolves when it no longer holds; every firing, resolution and action outcome
is stored and audited.

    drift_share > 0.3 for 2 windows      accuracy < 0.85      p99_latency_ms > 100

Metrics: drift_share, drifted_columns, quality_violations, rows, error_rate, p50_latency_ms,
p99_latency_ms, accuracy, f1, auc, mae, rmse, and drift:<feature> (that feature's effect size).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.monitoring.live import Evaluation
    from shipyard.stores import Stores
    from shipyard.stores.alerts import AlertRule

log = logging.getLogger("shipyard.alerts")

METRICS = (
    "drift_share",
    "drifted_columns",
    "quality_violations",
    "rows",
    "error_rate",
    "p50_latency_ms",
    "p99_latency_ms",
    "accuracy",
    "f1",
    "auc",
    "mae",
    "rmse",
)
OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
_CONDITION = re.compile(
    r"^\s*([A-Za-z_][\w]*(?::[^\s<>=]+)?)\s*(>=|<=|>|<)\s*"
    r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$"
)


def parse_condition(text: str) -> tuple[str, str, float]:
    """`drift_share > 0.3` → ("drift_share", ">", 0.3)."""
    m = _CONDITION.match(text or "")
    if m is None:
        raise InvalidArgumentError(
            f"condition {text!r} is not like 'drift_share > 0.3' (metric, one of > >= < <=, "
            "a number)",
            field="when",
        )
    metric, op, value = m.group(1), m.group(2), float(m.group(3))
    if metric not in METRICS and not metric.startswith("drift:"):
        raise InvalidArgumentError(
            f"unknown metric '{metric}'; use one of {', '.join(METRICS)} or drift:<feature>",
            field="when",
        )
    return metric, op, value


def metric_values(ev: Evaluation) -> dict[str, float]:
    """The numbers rules look at, from one evaluation (absent when there is no data)."""
    values: dict[str, float] = {"rows": float(ev.rows)}
    values.update({k: float(v) for k, v in ev.traffic.items() if v is not None})
    if ev.drift is not None:
        values["drift_share"] = float(ev.drift["share_drifted"])
        values["drifted_columns"] = float(len(ev.drift["drifted_columns"]))
        for name, col in ev.drift["columns"].items():
            if col.get("effect_size") is not None:
                values[f"drift:{name}"] = float(col["effect_size"])
    if ev.quality is not None:
        values["quality_violations"] = float(ev.quality["violations"])
    if ev.accuracy is not None:
        for key, v in (ev.accuracy.get("overall") or {}).items():
            if key != "n" and v is not None:
                values[key] = float(v)
    return values


class AlertEvaluator:
    def __init__(
        self, stores: Stores, *, webhook_timeout: float = 5.0, command_timeout: float = 3600.0
    ) -> None:
        self.stores = stores
        self.webhook_timeout = webhook_timeout
        self.command_timeout = command_timeout

    def evaluate(self, ev: Evaluation) -> list[tuple[AlertRule, str]]:
        """Update every rule of `ev.endpoint`; returns the (rule, "fired"|"resolved") changes."""
        changes: list[tuple[AlertRule, str]] = []
        if ev.error is not None:
            return changes
        values = metric_values(ev)
        store = self.stores.metadata.alerts
        for rule in store.rules(ev.endpoint):
            value = values.get(rule.metric)
            if value is None:
                continue  # no data for this metric in this window: leave the state alone
            breached = OPS[rule.op](value, rule.threshold)
            if breached:
                breaches = rule.breaches + 1
                if breaches >= rule.for_windows and rule.state != "firing":
                    cause = {
                        "metric": rule.metric,
                        "value": value,
                        "threshold": rule.threshold,
                        "windows": breaches,
                        "model_version": ev.model_version,
                        "drifted_columns": (ev.drift or {}).get("drifted_columns"),
                    }
                    action = self._act(rule, value, cause)
                    store.set_state(rule.id, "firing", breaches)
                    store.record(
                        rule,
                        "fired",
                        value=value,
                        cause=cause,
                        action=action,
                        actor=self.stores.actor,
                    )
                    changes.append((rule, "fired"))
                else:
                    store.set_state(
                        rule.id, "firing" if rule.state == "firing" else "pending", breaches
                    )
            else:
                if rule.state == "firing":
                    store.record(
                        rule,
                        "resolved",
                        value=value,
                        cause={"value": value},
                        action=None,
                        actor=self.stores.actor,
                    )
                    changes.append((rule, "resolved"))
                if rule.state != "ok" or rule.breaches:
                    store.set_state(rule.id, "ok", 0)
        return changes

    def _act(self, rule: AlertRule, value: float, cause: dict[str, Any]) -> dict[str, Any]:
        """Run the rule's actions; their outcome is returned for the record, never raised."""
        outcome: dict[str, Any] = {}
        payload = {
            "alert": rule.name,
            "endpoint": rule.endpoint,
            "condition": rule.condition,
            "value": value,
            "state": "firing",
            "cause": cause,
        }
        if rule.webhook:
            import httpx

            try:
                r = httpx.post(rule.webhook, json=payload, timeout=self.webhook_timeout)
                outcome["webhook"] = {"status": r.status_code}
            except httpx.HTTPError as exc:
                outcome["webhook"] = {"error": f"{type(exc).__name__}: {exc}"}
        if rule.command:
            env = {
                **os.environ,
                "SHIPYARD_ALERT": rule.name,
                "SHIPYARD_ALERT_ENDPOINT": rule.endpoint,
                "SHIPYARD_ALERT_VALUE": repr(value),
                "SHIPYARD_ALERT_CAUSE": json.dumps(cause, default=str),
            }
            try:
                done = subprocess.run(
                    rule.command,
                    shell=True,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=self.command_timeout,
                    check=False,
                )
                outcome["command"] = {
                    "exit_code": done.returncode,
                    "output": (done.stdout + done.stderr)[-2000:],
                }
            except subprocess.TimeoutExpired:
                outcome["command"] = {"error": f"timed out after {self.command_timeout:g} s"}
            log.warning(
                "alert %s/%s fired; command exited %s",
                rule.endpoint,
                rule.name,
                outcome["command"].get("exit_code"),
            )
        return outcome
