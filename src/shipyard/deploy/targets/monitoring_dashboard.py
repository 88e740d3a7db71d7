"""The Grafana dashboard of the monitoring target: RED by version (rate, 5xx, duration), stable
against canary, latency percentiles, batching and queue wait, drift and the prediction log.

Every query names a metric a shipyard server exports (tests/deploy/test_monitoring_scrape.py
checks them against a real server's /metrics); the JSON type-checks against @grafana/schema's
`Dashboard` (tests/deploy/test_monitoring_dashboard.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.deploy.targets.monitoring import selector

if TYPE_CHECKING:
    from shipyard.deploy.targets import Context
    from shipyard.deploy.targets.monitoring import Slo

RATE = "[$__rate_interval]"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
LATENCY = "shipyard_request_latency_seconds"


def dashboard(context: Context, slo: Slo) -> dict[str, Any]:
    app = context.facts.app
    panels = [
        *_red(context),
        *_stable_vs_canary(context),
        *_batching(context),
        *_health(context, slo),
    ]
    for i, panel in enumerate(panels):  # two columns, rows of 8
        panel["id"] = i + 1
        panel["gridPos"] = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}
    return {
        "title": f"shipyard: {app}",
        "uid": f"shipyard-{app}"[:40],
        "description": f"Serving, rollout and drift of {app} ({context.facts.model.uri} when "
        "rendered), from the metrics of shipyard's /metrics.",
        "tags": ["shipyard", app],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                }
            ]
        },
        "panels": panels,
    }


def _panel(title: str, unit: str, *targets: tuple[str, str], description: str = "") -> dict:  # type: ignore[type-arg]
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _red(context: Context) -> list[dict[str, Any]]:
    sel = selector(context)
    five = selector(context, 'status=~"5.."')
    requests = f"shipyard_requests_total{sel}"
    return [
        _panel(
            "Requests per second by version",
            "reqps",
            (f"sum by (version) (rate({requests}{RATE}))", "v{{version}}"),
        ),
        _panel(
            "5xx share by version",
            "percentunit",
            (
                f"sum by (version) (rate(shipyard_requests_total{five}{RATE}))\n/\n"
                f"sum by (version) (rate({requests}{RATE}))",
                "v{{version}}",
            ),
            description="No traffic shows no line, not zero.",
        ),
        _panel(
            "Errors per second by version and status",
            "reqps",
            (
                f"sum by (version, status) (rate(shipyard_request_errors_total{sel}{RATE}))",
                "v{{version}} {{status}}",
            ),
        ),
        _panel(
            "Latency p50 / p95 / p99 by version",
            "s",
            *(
                (
                    f"histogram_quantile({q}, sum by (version, le) "
                    f"(rate({LATENCY}_bucket{sel}{RATE})))",
                    f"p{round(q * 100)} v{{{{version}}}}",
                )
                for q in (0.5, 0.95, 0.99)
            ),
        ),
    ]


def _stable_vs_canary(context: Context) -> list[dict[str, Any]]:
    """Stable against canary by the version label: named when the render is of an endpoint
    in a rollout, else every version the endpoint served."""
    endpoint = context.facts.endpoint
    sel = selector(context)
    versions: list[tuple[str, str]] = []
    if endpoint is not None and endpoint.candidate is not None:
        versions = [
            (str(endpoint.stable.version), "stable"),
            (str(endpoint.candidate.version), endpoint.policy),
        ]

    def per_version(expr: str) -> list[tuple[str, str]]:
        if not versions:
            return [(expr.format(sel=sel, by="version"), "v{{version}}")]
        return [
            (expr.format(sel=selector(context, f'version="{v}"'), by="version"), f"{role} v{v}")
            for v, role in versions
        ]

    share = "sum by ({by}) (rate(shipyard_requests_total{sel}" + RATE + "))"
    total = f"ignoring(version) group_left sum(rate(shipyard_requests_total{sel}{RATE}))"
    p99 = "histogram_quantile(0.99, sum by ({by}, le) (rate(" + LATENCY + "_bucket{sel}" + RATE
    return [
        _panel(
            "Traffic share: stable vs canary",
            "percentunit",
            *[(f"{expr}\n/ {total}", legend) for expr, legend in per_version(share)],
        ),
        _panel("p99 latency: stable vs canary", "s", *per_version(p99 + ")))")),
    ]


def _batching(context: Context) -> list[dict[str, Any]]:
    sel = selector(context)
    return [
        _panel(
            "Rows per model call (batch size)",
            "short",
            (
                f"sum by (version) (rate(shipyard_batch_rows_sum{sel}{RATE}))\n/\n"
                f"sum by (version) (rate(shipyard_batch_rows_count{sel}{RATE}))",
                "mean v{{version}}",
            ),
            (
                "histogram_quantile(0.95, sum by (version, le) "
                f"(rate(shipyard_batch_rows_bucket{sel}{RATE})))",
                "p95 v{{version}}",
            ),
            description="Model calls of batched endpoints (Python models, or --batching).",
        ),
        _panel(
            "Queue wait and model call, p99",
            "s",
            (
                "histogram_quantile(0.99, sum by (version, le) "
                f"(rate(shipyard_queue_wait_seconds_bucket{sel}{RATE})))",
                "queue wait v{{version}}",
            ),
            (
                "histogram_quantile(0.99, sum by (version, le) "
                f"(rate(shipyard_inference_seconds_bucket{sel}{RATE})))",
                "model call v{{version}}",
            ),
        ),
        _panel(
            "In flight and rows predicted",
            "short",
            (f"sum(shipyard_requests_in_flight{sel})", "requests in flight"),
            (f"sum(rate(shipyard_predicted_rows_total{sel}{RATE}))", "rows per second"),
        ),
    ]


def _health(context: Context, slo: Slo) -> list[dict[str, Any]]:
    sel = selector(context)
    fast = selector(context, f'le="{slo.latency}"')
    return [
        _panel(
            f"Share of requests slower than {slo.latency}s (SLO {slo.target:g})",
            "percentunit",
            (
                f"1 - sum by (version) (rate({LATENCY}_bucket{fast}{RATE}))\n/\n"
                f"sum by (version) (rate({LATENCY}_count{sel}{RATE}))",
                "v{{version}}",
            ),
        ),
        _panel(
            "Drift: share of features drifted",
            "percentunit",
            (f"max(shipyard_drift_share{sel})", "drifted share"),
            description="From the control plane's monitor (shipyard server).",
        ),
        _panel(
            "Drift score by feature",
            "short",
            (f"max by (feature) (shipyard_feature_drift_score{sel})", "{{feature}}"),
        ),
        _panel(
            "Model ready, prediction-log drops",
            "short",
            (f"min by (version) (shipyard_model_ready{sel})", "ready v{{version}}"),
            (f"sum(rate(shipyard_predlog_dropped_total{sel}{RATE}))", "log rows dropped /s"),
        ),
    ]
