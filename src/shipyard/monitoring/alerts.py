"""Alert rules on monitored metrics, with actions: a webhook and/or a command (a retraining
pipeline, typically). A rule fires after its condition held for `for_windows` consecutive
evaluations and resolves when it no longer holds; every firing, resolution and action outcome
is stored and audited.

A command is an argument list (split like a shell would, run without one) and runs only if
the rule carries a MAC of it under this installation's signing key (`stores.secrets`), made
when the rule was added through `add_alert_rule`: a command written straight into a shared
metadata database is refused, not run.

    drift_share > 0.3 for 2 windows      accuracy < 0.85      p99_latency_ms > 100

Metrics: drift_share, drifted_columns, quality_violations, rows, error_rate, p50_latency_ms,
p99_latency_ms, accuracy, f1, auc, mae, rmse, and drift:<feature> (that feature's effect size).

A rule whose metric the last evaluation could not compute (no labels yet, only missing
predictions, a feature no longer monitored, or the evaluation failed: no traffic in the
window, an unreadable log) is "unknown", never "ok" nor still "firing": silence is not health.
An unknown rule that fires afterwards runs its actions again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import subprocess
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError
from shipyard.stores.secrets import sign, verify

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.monitoring.live import Evaluation
    from shipyard.stores import Stores
    from shipyard.stores.alerts import AlertEvent, AlertRule

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


def command_argv(command: str) -> list[str]:
    """`python retrain.py --fast` → ["python", "retrain.py", "--fast"]; no shell runs it."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise InvalidArgumentError(f"--command cannot be split: {exc}", field="command") from exc
    if not argv:
        raise InvalidArgumentError("--command is empty", field="command")
    return argv


def _command_mac(key: bytes, endpoint: str, name: str, command: str) -> str:
    return sign(key, "\0".join((endpoint, name, command)).encode())


def add_alert_rule(
    stores: Stores,
    key: bytes,
    endpoint: str,
    name: str,
    *,
    when: str,
    for_windows: int = 1,
    webhook: str | None = None,
    command: str | None = None,
) -> AlertRule:
    """Check and store a rule; its command is sealed with `key` (see the module docstring)."""
    metric, op, threshold = parse_condition(when)
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise InvalidArgumentError(f"--webhook must be an http(s) URL, not {webhook!r}")
    if command is not None:
        command_argv(command)
    stores.metadata.endpoints.get(endpoint)
    return stores.metadata.alerts.add_rule(
        endpoint,
        name,
        metric=metric,
        op=op,
        threshold=threshold,
        for_windows=for_windows,
        webhook=webhook,
        command=command,
        command_mac=None if command is None else _command_mac(key, endpoint, name, command),
        actor=stores.actor,
    )


class AlertRules:
    """Alert rules and their events, as the edges manage them: rules are added sealed with
    this installation's signing key (so their commands may run), listed, removed.

        rules = AlertRules(settings, open_stores(settings))
        rules.add("churn", "drift", when="drift_share > 0.3", for_windows=2)
    """

    def __init__(self, settings: Settings, stores: Stores) -> None:
        self.settings = settings
        self.stores = stores

    def add(
        self,
        endpoint: str,
        name: str,
        *,
        when: str,
        for_windows: int = 1,
        webhook: str | None = None,
        command: str | None = None,
    ) -> AlertRule:
        from shipyard.stores.secrets import signing_key

        return add_alert_rule(
            self.stores,
            signing_key(self.settings),
            endpoint,
            name,
            when=when,
            for_windows=for_windows,
            webhook=webhook,
            command=command,
        )

    def rules(self, endpoint: str | None = None) -> list[AlertRule]:
        """Every rule (of one endpoint) with its state: ok, pending, firing, or unknown when
        the last evaluation could not compute the rule's metric."""
        return self.stores.metadata.alerts.rules(endpoint)

    def remove(self, endpoint: str, name: str) -> None:
        """Remove a rule and its events (audited)."""
        self.stores.metadata.alerts.remove_rule(endpoint, name, actor=self.stores.actor)

    def events(self, endpoint: str | None = None, limit: int = 100) -> list[AlertEvent]:
        """Fired and resolved alerts, newest first."""
        return self.stores.metadata.alerts.events(endpoint, limit)


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
        overall = ev.accuracy.get("overall") or {}
        for key in ("accuracy", "f1", "auc", "mae", "rmse"):
            v = overall.get(key)
            if v is not None and math.isfinite(v):
                values[key] = float(v)
    return values


class AlertEvaluator:
    def __init__(
        self,
        stores: Stores,
        key: bytes,
        *,
        webhook_timeout: float = 5.0,
        command_timeout: float = 3600.0,
    ) -> None:
        self.stores = stores
        self.key = key
        self.webhook_timeout = webhook_timeout
        self.command_timeout = command_timeout

    def evaluate(self, ev: Evaluation) -> list[tuple[AlertRule, str]]:
        """Update every rule of `ev.endpoint`; returns the (rule, "fired"|"resolved") changes."""
        changes: list[tuple[AlertRule, str]] = []
        # an evaluation that failed (no traffic, a store down) computed nothing: all unknown
        values = metric_values(ev) if ev.error is None else {}
        store = self.stores.metadata.alerts
        for rule in store.rules(ev.endpoint):
            value = values.get(rule.metric)
            if value is None:  # not computable in this window (no labels, no prediction): unknown
                if rule.state != "unknown" or rule.breaches:
                    store.set_state(rule.id, "unknown", 0)
                continue
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
            outcome["command"] = self._run(rule, value, cause)
        return outcome

    def _run(self, rule: AlertRule, value: float, cause: dict[str, Any]) -> dict[str, Any]:
        assert rule.command is not None
        if not verify(
            self.key, "\0".join((rule.endpoint, rule.name, rule.command)).encode(), rule.command_mac
        ):
            log.warning(
                "alert %s/%s: its command is not signed by this installation; not run",
                rule.endpoint,
                rule.name,
            )
            return {
                "refused": "the command was not added by this installation (no valid "
                "signature): re-add the rule with `shipyard monitor alert add`, or share "
                "SHIPYARD_SECRET_KEY with the machine that added it"
            }
        env = {
            **os.environ,
            "SHIPYARD_ALERT": rule.name,
            "SHIPYARD_ALERT_ENDPOINT": rule.endpoint,
            "SHIPYARD_ALERT_VALUE": repr(value),
            "SHIPYARD_ALERT_CAUSE": json.dumps(cause, default=str),
        }
        try:
            done = subprocess.run(
                command_argv(rule.command),
                env=env,
                capture_output=True,
                text=True,
                timeout=self.command_timeout,
                check=False,
            )
            result: dict[str, Any] = {
                "exit_code": done.returncode,
                "output": (done.stdout + done.stderr)[-2000:],
            }
        except subprocess.TimeoutExpired:
            result = {"error": f"timed out after {self.command_timeout:g} s"}
        except (OSError, InvalidArgumentError) as exc:  # no such program, not executable
            result = {"error": f"{type(exc).__name__}: {exc}"}
        log.warning(
            "alert %s/%s fired; command %s",
            rule.endpoint,
            rule.name,
            f"exited {result['exit_code']}" if "exit_code" in result else result["error"],
        )
        return result
