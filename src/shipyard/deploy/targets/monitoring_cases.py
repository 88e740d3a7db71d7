"""The `promtool test rules` cases the monitoring target writes beside its rules: every alert
fires on the traffic it is about, and every alert stays silent with no shipyard series at all
(a replica before its first request) and with series that stopped moving (traffic gone)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.deploy.targets import Context
    from shipyard.deploy.targets.monitoring import Slo

ALERTS = (
    "ShipyardHighErrorRatio",
    "ShipyardLatencyBudgetBurn",
    "ShipyardFeatureDrift",
    "ShipyardPredictionLogDropping",
)


def cases(context: Context, slo: Slo, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    facts = context.facts
    app = facts.app
    stable = str(facts.model.version)
    endpoint = facts.endpoint
    canary = str(endpoint.candidate.version) if endpoint and endpoint.candidate else stable
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in alerts:
        by_name.setdefault(rule["alert"], []).append(rule)

    def series(name: str, values: str, **labels: str) -> dict[str, str]:
        inner = ",".join(f'{k}="{v}"' for k, v in {"endpoint": app, **labels}.items())
        return {"series": f"{name}{{{inner}}}", "values": values}

    def requests(version: str, status: str, values: str) -> dict[str, str]:
        labels = {"model": facts.model.name, "version": version, "status": status}
        return series("shipyard_requests_total", values, **labels)

    def latency(part: str, values: str) -> dict[str, str]:
        """The stable version's latency histogram: its `le` bucket (the SLO's) or count."""
        labels = {"model": facts.model.name, "version": stable}
        if part == "bucket":
            labels["le"] = slo.latency
        return series(f"shipyard_request_latency_seconds_{part}", values, **labels)

    def expect(name: str, severity: str | None = None, **labels: str) -> dict[str, Any]:
        rule = next(r for r in by_name[name] if severity in (None, r["labels"]["severity"]))
        notes = {
            k: v.replace("{{ $labels.version }}", labels.get("version", ""))
            for k, v in rule["annotations"].items()
        }
        return {
            "exp_labels": {"endpoint": app, **labels, "severity": rule["labels"]["severity"]},
            "exp_annotations": notes,
        }

    def silent(*at: str) -> list[dict[str, Any]]:
        return [{"eval_time": t, "alertname": a, "exp_alerts": []} for t in at for a in ALERTS]

    return [
        {
            "name": "no shipyard series at all (no request yet): every alert is silent",
            "interval": "1m",
            "input_series": [{"series": 'up{job="prometheus"}', "values": "1+0x240"}],
            "alert_rule_test": silent("10m", "1h", "4h"),
        },
        {
            "name": "series that stay flat (traffic stopped, drift low): every alert is silent",
            "interval": "1m",
            "input_series": [
                requests(stable, "200", "1000+0x240"),
                requests(stable, "500", "50+0x240"),
                latency("bucket", "100+0x240"),
                latency("count", "1050+0x240"),
                series("shipyard_predlog_dropped_total", "7+0x240"),
                series("shipyard_drift_share", f"{slo.drift / 2:.6g}+0x240"),
            ],
            "alert_rule_test": silent("10m", "1h", "4h"),
        },
        {
            "name": f"version {canary} answers a third of its requests with 5xx: the error alert "
            "fires for it alone",
            "interval": "1m",
            "input_series": [
                requests(stable, "200", "0+120x40"),
                requests(canary, "200", "0+20x40"),
                requests(canary, "503", "0+10x40"),
            ]
            if canary != stable
            else [requests(stable, "200", "0+20x40"), requests(stable, "503", "0+10x40")],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "ShipyardHighErrorRatio", "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": "ShipyardHighErrorRatio",
                    "exp_alerts": [expect("ShipyardHighErrorRatio", version=canary)],
                },
            ],
        },
        {
            "name": "every request slower than the SLO: the latency burn alerts fire",
            "interval": "1m",
            "input_series": [
                latency("bucket", "0+0x90"),
                latency("count", "0+60x90"),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "70m",
                    "alertname": "ShipyardLatencyBudgetBurn",
                    "exp_alerts": [
                        expect("ShipyardLatencyBudgetBurn", "page"),
                        expect("ShipyardLatencyBudgetBurn", "ticket"),
                    ],
                },
            ],
        },
        {
            "name": "every request within the SLO: the latency burn alerts are silent",
            "interval": "1m",
            "input_series": [
                latency("bucket", "0+60x90"),
                latency("count", "0+60x90"),
            ],
            "alert_rule_test": [
                {"eval_time": "70m", "alertname": "ShipyardLatencyBudgetBurn", "exp_alerts": []}
            ],
        },
        {
            "name": "drift above the threshold for 15 minutes, prediction-log rows dropped",
            "interval": "1m",
            "input_series": [
                series("shipyard_drift_share", f"{_above(slo.drift)}+0x40"),
                series("shipyard_predlog_dropped_total", "0+10x40"),
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "ShipyardFeatureDrift", "exp_alerts": []},
                {
                    "eval_time": "30m",
                    "alertname": "ShipyardFeatureDrift",
                    "exp_alerts": [expect("ShipyardFeatureDrift")],
                },
                {
                    "eval_time": "30m",
                    "alertname": "ShipyardPredictionLogDropping",
                    "exp_alerts": [expect("ShipyardPredictionLogDropping")],
                },
            ],
        },
    ]


def _above(threshold: float) -> str:
    """A share between the threshold and 1."""
    return f"{(threshold + 1) / 2:.6g}"
