"""Alert rules as Prometheus alerting rules over the gauges shipyard exports, so a team with
Prometheus and Alertmanager can alert without shipyard's own evaluator."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.stores.alerts import AlertRule


def _q(value: str) -> str:
    """Escape for a double-quoted YAML scalar and a PromQL string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def promql(rule: AlertRule) -> str:
    ep = f'endpoint="{_q(rule.endpoint)}"'
    cond = f"{rule.op} {rule.threshold:g}"
    metric = rule.metric
    if metric.startswith("drift:"):
        return f'shipyard_feature_drift_score{{{ep},feature="{_q(metric[6:])}"}} {cond}'
    simple = {
        "drift_share": f"shipyard_drift_share{{{ep}}}",
        "drifted_columns": f"sum(shipyard_feature_drifted{{{ep}}})",
        "quality_violations": f"sum(shipyard_data_quality_violations{{{ep}}})",
        "rows": f"shipyard_monitored_rows{{{ep}}}",
        "accuracy": f"max(shipyard_model_accuracy{{{ep}}})",
    }
    if metric in simple:
        return f"{simple[metric]} {cond}"
    if metric in ("p50_latency_ms", "p99_latency_ms"):
        q = 0.5 if metric.startswith("p50") else 0.99
        return (
            f"1000 * histogram_quantile({q}, sum by (le) "
            f"(rate(shipyard_request_latency_seconds_bucket{{{ep}}}[5m]))) {cond}"
        )
    if metric == "error_rate":
        return (
            f"sum(rate(shipyard_request_errors_total{{{ep}}}[5m])) / "
            f"sum(rate(shipyard_requests_total{{{ep}}}[5m])) {cond}"
        )
    return f'max(shipyard_model_metric{{{ep},metric="{metric}"}}) {cond}'  # f1, auc, mae, rmse


def rules_yaml(rules: list[AlertRule], interval_seconds: float) -> str:
    """A rules file `promtool check rules` accepts (YAML written by hand: no new dependency)."""
    lines = ["groups:", "  - name: shipyard", "    rules:"]
    if not rules:
        lines[-1] = "    rules: []"
    for r in rules:
        wait = max(math.ceil(r.for_windows * max(interval_seconds, 1.0)), 1)
        lines += [
            f'      - alert: "{_q(r.endpoint)}_{_q(r.name)}"',
            f'        expr: "{_q(promql(r))}"',
            f"        for: {wait}s",
            "        labels:",
            f'          endpoint: "{_q(r.endpoint)}"',
            '          severity: "warning"',
            "        annotations:",
            f'          summary: "{_q(r.endpoint)}: {_q(r.condition)} '
            f'for {r.for_windows} window(s)"',
        ]
    return "\n".join(lines) + "\n"
