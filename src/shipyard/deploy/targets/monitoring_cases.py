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
    """promtool's unit tests of the rules: silent without traffic, each alert firing."""
    c = _Cases(context, slo, alerts)
    return [*c.quiet(), c.errors(), *c.latency_burn(), c.drift_and_drops()]


class _Cases:
    def __init__(self, context: Context, slo: Slo, alerts: list[dict[str, Any]]) -> None:
        facts = context.facts
        self.app, self.model, self.slo = facts.app, facts.model.name, slo
        self.stable = str(facts.model.version)
        endpoint = facts.endpoint
        candidate = endpoint.candidate if endpoint else None
        self.canary = str(candidate.version) if candidate else self.stable
        self.by_name: dict[str, list[dict[str, Any]]] = {}
        for rule in alerts:
            self.by_name.setdefault(rule["alert"], []).append(rule)

    def series(self, name: str, values: str, **labels: str) -> dict[str, str]:
        inner = ",".join(f'{k}="{v}"' for k, v in {"endpoint": self.app, **labels}.items())
        return {"series": f"{name}{{{inner}}}", "values": values}

    def requests(self, version: str, status: str, values: str) -> dict[str, str]:
        labels = {"model": self.model, "version": version, "status": status}
        return self.series("shipyard_requests_total", values, **labels)

    def latency(self, part: str, values: str) -> dict[str, str]:
        """The stable version's latency histogram: its `le` bucket (the SLO's) or count."""
        labels = {"model": self.model, "version": self.stable}
        if part == "bucket":
            labels["le"] = self.slo.latency
        return self.series(f"shipyard_request_latency_seconds_{part}", values, **labels)

    def expect(self, name: str, severity: str | None = None, **labels: str) -> dict[str, Any]:
        rule = next(r for r in self.by_name[name] if severity in (None, r["labels"]["severity"]))
        notes = {
            k: v.replace("{{ $labels.version }}", labels.get("version", ""))
            for k, v in rule["annotations"].items()
        }
        return {
            "exp_labels": {"endpoint": self.app, **labels, "severity": rule["labels"]["severity"]},
            "exp_annotations": notes,
        }

    @staticmethod
    def silent(*at: str) -> list[dict[str, Any]]:
        return [{"eval_time": t, "alertname": a, "exp_alerts": []} for t in at for a in ALERTS]

    def quiet(self) -> list[dict[str, Any]]:
        stable = self.stable
        return [
            {
                "name": "no shipyard series at all (no request yet): every alert is silent",
                "interval": "1m",
                "input_series": [{"series": 'up{job="prometheus"}', "values": "1+0x240"}],
                "alert_rule_test": self.silent("10m", "1h", "4h"),
            },
            {
                "name": "series that stay flat (traffic stopped, drift low): every alert is silent",
                "interval": "1m",
                "input_series": [
                    self.requests(stable, "200", "1000+0x240"),
                    self.requests(stable, "500", "50+0x240"),
                    self.latency("bucket", "100+0x240"),
                    self.latency("count", "1050+0x240"),
                    self.series("shipyard_predlog_dropped_total", "7+0x240"),
                    self.series("shipyard_drift_share", f"{self.slo.drift / 2:.6g}+0x240"),
                ],
                "alert_rule_test": self.silent("10m", "1h", "4h"),
            },
        ]

    def errors(self) -> dict[str, Any]:
        stable, canary = self.stable, self.canary
        if canary != stable:
            inputs = [
                self.requests(stable, "200", "0+120x40"),
                self.requests(canary, "200", "0+20x40"),
                self.requests(canary, "503", "0+10x40"),
            ]
        else:
            inputs = [
                self.requests(stable, "200", "0+20x40"),
                self.requests(stable, "503", "0+10x40"),
            ]
        firing = [self.expect("ShipyardHighErrorRatio", version=canary)]
        return {
            "name": f"version {canary} answers a third of its requests with 5xx: the error alert "
            "fires for it alone",
            "interval": "1m",
            "input_series": inputs,
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "ShipyardHighErrorRatio", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "ShipyardHighErrorRatio", "exp_alerts": firing},
            ],
        }

    def latency_burn(self) -> list[dict[str, Any]]:
        burn = "ShipyardLatencyBudgetBurn"
        firing = [self.expect(burn, "page"), self.expect(burn, "ticket")]
        return [
            {
                "name": "every request slower than the SLO: the latency burn alerts fire",
                "interval": "1m",
                "input_series": [
                    self.latency("bucket", "0+0x90"),
                    self.latency("count", "0+60x90"),
                ],
                "alert_rule_test": [{"eval_time": "70m", "alertname": burn, "exp_alerts": firing}],
            },
            {
                "name": "every request within the SLO: the latency burn alerts are silent",
                "interval": "1m",
                "input_series": [
                    self.latency("bucket", "0+60x90"),
                    self.latency("count", "0+60x90"),
                ],
                "alert_rule_test": [{"eval_time": "70m", "alertname": burn, "exp_alerts": []}],
            },
        ]

    def drift_and_drops(self) -> dict[str, Any]:
        drift, dropping = "ShipyardFeatureDrift", "ShipyardPredictionLogDropping"
        return {
            "name": "drift above the threshold for 15 minutes, prediction-log rows dropped",
            "interval": "1m",
            "input_series": [
                self.series("shipyard_drift_share", f"{_above(self.slo.drift)}+0x40"),
                self.series("shipyard_predlog_dropped_total", "0+10x40"),
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": drift, "exp_alerts": []},
                {"eval_time": "30m", "alertname": drift, "exp_alerts": [self.expect(drift)]},
                {"eval_time": "30m", "alertname": dropping, "exp_alerts": [self.expect(dropping)]},
            ],
        }


def _above(threshold: float) -> str:
    """A share between the threshold and 1."""
    return f"{(threshold + 1) / 2:.6g}"
