"""Target `monitoring`: Prometheus rules (a PrometheusRule and the same groups as a plain rules
file), a `promtool test rules` file that pins their behaviour, and a Grafana dashboard, all over
the metrics a shipyard server exports on /metrics.

    shipyard deploy render models:/churn@champion -t monitoring -o deploy/monitoring \\
        --set latency_slo_seconds=0.1 --set latency_slo_target=0.995
    promtool check rules deploy/monitoring/rules.yml
    promtool test rules deploy/monitoring/rules.test.yaml

The rules alert on rates and ratios only, never on a series being absent: a replica that has
not answered a request yet exports no request series at all (a counter or histogram child
appears with its first request), and a ratio over no traffic is 0/0, which compares false.
So no traffic, and traffic that stopped, are silent; the test file proves both.

- error ratio: the share of a version's requests answered 5xx over 5 minutes (per version, so
  a canary with a small share of traffic still alerts on its own errors);
- latency SLO: multiwindow, multi-burn-rate alerts (the Google SRE workbook's chapter 5) on
  the share of requests slower than `latency_slo_seconds`, which must be a bucket bound of
  `shipyard_request_latency_seconds` (the histogram can only count at its bounds);
- drift: the share of monitored features that drifted (`shipyard_drift_share`, exported by
  the control plane's monitor, `shipyard server`);
- prediction log: rows dropped because the log's buffer was full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shipyard.deploy.manifests import dump_yaml
from shipyard.deploy.targets import Context
from shipyard.errors import InvalidArgumentError

SETTINGS = {
    "latency_slo_seconds": "requests slower than this spend the latency SLO's error budget; a "
    "bucket bound of shipyard_request_latency_seconds (default 0.25)",
    "latency_slo_target": "share of requests that must be faster, 0.95 to 0.9999 (default 0.99)",
    "error_ratio": "5xx share of a version's requests over 5 minutes that alerts (default 0.05)",
    "drift_share": "share of drifted features that alerts after 15 minutes (default 0.3)",
}

# (severity, long window, short window, burn rate): the SRE workbook's table 5-8
BURN_ALERTS = (
    ("page", "1h", "5m", 14.4),
    ("page", "6h", "30m", 6.0),
    ("ticket", "1d", "2h", 3.0),
    ("ticket", "3d", "6h", 1.0),
)
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
RULES_FILE = "rules.yml"


def render(context: Context) -> dict[str, str | bytes]:
    from shipyard.deploy.targets.monitoring_dashboard import dashboard

    slo = _slo(context)
    groups = rule_groups(context, slo)
    return {
        RULES_FILE: dump_yaml({"groups": groups}),
        "prometheus-rule.yaml": dump_yaml(_prometheus_rule(context, groups)),
        "rules.test.yaml": dump_yaml(rules_test(context, slo)),
        "grafana-dashboard.json": json.dumps(dashboard(context, slo), indent=2, sort_keys=True)
        + "\n",
    }


@dataclass(frozen=True)
class Slo:
    """The thresholds of one render, checked."""

    latency: str  # the bucket bound as the histogram's `le` label writes it
    target: float
    error_ratio: float
    drift: float

    def burn_threshold(self, rate: float) -> str:
        """The bad-request share that spends the budget `rate` times as fast as allowed."""
        return _num(rate * (1 - self.target))


def _slo(context: Context) -> Slo:
    from shipyard.serving.metrics import LATENCY_BUCKETS

    options = context.options
    raw = options.setting("latency_slo_seconds", "0.25")
    bounds = {float(b): repr(float(b)) for b in LATENCY_BUCKETS}
    seconds = _float(raw, "latency_slo_seconds")
    if seconds not in bounds:
        listed = ", ".join(bounds.values())
        raise InvalidArgumentError(
            f"--set latency_slo_seconds={raw}: the latency histogram counts only at its bucket "
            f"bounds; choose one of {listed}",
            field="latency_slo_seconds",
        )
    target = _float(options.setting("latency_slo_target", "0.99"), "latency_slo_target")
    if not 0.95 <= target <= 0.9999:
        raise InvalidArgumentError(
            f"--set latency_slo_target={target:g}: give 0.95 to 0.9999 (below 0.95 the fast "
            "burn-rate alert, 14.4 times the budget, could never fire)",
            field="latency_slo_target",
        )
    ratio = _share(options.setting("error_ratio", "0.05"), "error_ratio")
    drift = _share(options.setting("drift_share", "0.3"), "drift_share")
    return Slo(bounds[seconds], target, ratio, drift)


def _float(raw: str, key: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidArgumentError(f"--set {key}={raw} is not a number", field=key)
    return value


def _share(raw: str, key: str) -> float:
    value = _float(raw, key)
    if not 0 < value < 1:
        raise InvalidArgumentError(
            f"--set {key}={raw}: a share is above 0 and below 1 (e.g. 0.05)", field=key
        )
    return value


def _num(x: float) -> str:
    return f"{x:.6g}"


def selector(context: Context, extra: str = "") -> str:
    """The label matchers of the rendered endpoint's series (its replicas are served with
    `--name <app>`, the endpoint label of every shipyard_* series)."""
    inner = f'endpoint="{context.facts.app}"'
    return "{" + inner + (f",{extra}" if extra else "") + "}"


def rule_groups(context: Context, slo: Slo) -> list[dict[str, Any]]:
    app = context.facts.app
    return [
        {"name": f"shipyard-{app}-recording", "rules": _recording(context, slo)},
        {"name": f"shipyard-{app}-alerts", "rules": _alerts(context, slo)},
    ]


def _recording(context: Context, slo: Slo) -> list[dict[str, Any]]:
    sel = selector(context)
    requests = f"shipyard_requests_total{sel}"
    five_xx = selector(context, 'status=~"5.."')
    five = f"shipyard_requests_total{five_xx}"
    rules: list[dict[str, Any]] = [
        {
            "record": "shipyard:requests_5xx:ratio_rate5m",
            "expr": f"sum by (endpoint, version) (rate({five}[5m]))\n"
            f"/\nsum by (endpoint, version) (rate({requests}[5m]))",
        },
    ]
    fast = selector(context, 'le="' + slo.latency + '"')
    good = f"shipyard_request_latency_seconds_bucket{fast}"
    count = f"shipyard_request_latency_seconds_count{sel}"
    for window in WINDOWS:
        rules.append(
            {
                "record": f"shipyard:latency_slo_miss:ratio_rate{window}",
                "expr": f"1 - (\n  sum by (endpoint) (rate({good}[{window}]))\n/\n"
                f"  sum by (endpoint) (rate({count}[{window}]))\n)",
            }
        )
    return rules


def _alerts(context: Context, slo: Slo) -> list[dict[str, Any]]:
    app = context.facts.app
    sel = selector(context)
    rules = [
        {
            "alert": "ShipyardHighErrorRatio",
            "expr": f"shipyard:requests_5xx:ratio_rate5m{sel} > {_num(slo.error_ratio)}",
            "for": "5m",
            "labels": {"severity": "page"},
            "annotations": {
                "summary": f"{app} version {{{{ $labels.version }}}} answers more than "
                f"{slo.error_ratio:.0%} of its requests with 5xx",
                "description": "The share of 5xx answers over 5 minutes stayed above "
                f"{_num(slo.error_ratio)} for 5 minutes (no traffic is not an error).",
            },
        }
    ]
    for severity in ("page", "ticket"):
        pairs = [b for b in BURN_ALERTS if b[0] == severity]
        expr = "\nor\n".join(
            f"(\n  shipyard:latency_slo_miss:ratio_rate{long}{sel} > {slo.burn_threshold(rate)}\n"
            f"and\n  shipyard:latency_slo_miss:ratio_rate{short}{sel} > "
            f"{slo.burn_threshold(rate)}\n)"
            for _, long, short, rate in pairs
        )
        windows = " and ".join(f"{long}/{short} at {rate:g}x" for _, long, short, rate in pairs)
        rules.append(
            {
                "alert": "ShipyardLatencyBudgetBurn",
                "expr": expr,
                "labels": {"severity": severity},
                "annotations": {
                    "summary": f"{app} spends its latency error budget too fast ({severity})",
                    "description": f"More than {_num(1 - slo.target)} of requests slower than "
                    f"{slo.latency}s is the budget of a {_num(slo.target)} SLO; burn-rate "
                    f"windows {windows}.",
                },
            }
        )
    rules += [
        {
            "alert": "ShipyardFeatureDrift",
            "expr": f"max by (endpoint) (shipyard_drift_share{sel}) > {_num(slo.drift)}",
            "for": "15m",
            "labels": {"severity": "ticket"},
            "annotations": {
                "summary": f"{app}: more than {slo.drift:.0%} of the monitored features drifted",
                "description": "shipyard's monitor found drift against the training profile "
                f"(shipyard monitor drift --endpoint {app} --window 1h says which features).",
            },
        },
        {
            "alert": "ShipyardPredictionLogDropping",
            "expr": f"sum by (endpoint) (increase(shipyard_predlog_dropped_total{sel}[10m])) > 0",
            "for": "5m",
            "labels": {"severity": "ticket"},
            "annotations": {
                "summary": f"{app} drops prediction-log rows (its buffer is full)",
                "description": "Monitoring and drift see less than the traffic: raise "
                "SHIPYARD_PREDLOG_CAPACITY_ROWS or check the log's storage.",
            },
        },
    ]
    return rules


def _prometheus_rule(context: Context, groups: list[dict[str, Any]]) -> dict[str, Any]:
    app = context.facts.app
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": f"{app}-shipyard",
            "namespace": context.options.namespace,
            "labels": {
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/part-of": "shipyard",
                "app.kubernetes.io/managed-by": "shipyard",
            },
        },
        "spec": {"groups": groups},
    }


def rules_test(context: Context, slo: Slo) -> dict[str, Any]:
    """`promtool test rules` cases: each alert fires on traffic that should wake someone up,
    and stays silent with no series at all and with series that stopped moving."""
    from shipyard.deploy.targets.monitoring_cases import cases

    return {
        "rule_files": [RULES_FILE],
        "evaluation_interval": "1m",
        "tests": cases(context, slo, _alerts(context, slo)),
    }
