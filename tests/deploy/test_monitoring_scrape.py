"""Every metric the monitoring target's rules and dashboard name is on the /metrics of a real
server: `shipyard server` (data plane and the control plane's monitor, whose drift gauges the
drift alert reads) and `shipyard serve` (a replica: everything but the monitor's gauges),
each started on a loopback port for the churn model, after a few predictions and a bad request.

Series that exist only after traffic: a request counter or histogram child appears with its
first request (the rules never alert on absence, see test_monitoring.py), the batching
histograms with the first batched model call, the drift gauges with the monitor's first
evaluation, the prediction-log drop counter with its first drop. Every family is declared
(# TYPE) from the start."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import httpx
import pytest

from shipyard.deploy import Deploy
from tests.helpers import SHIPYARD, free_port, wait_for, wait_ready

# the control plane's monitor exports these (shipyard server), a `shipyard serve` replica not
MONITOR_ONLY = {"shipyard_drift_share", "shipyard_feature_drift_score"}
# with samples once the requests below were answered
AFTER_TRAFFIC = {
    "shipyard_requests_total",
    "shipyard_request_errors_total",
    "shipyard_request_latency_seconds_bucket",
    "shipyard_request_latency_seconds_count",
    "shipyard_predicted_rows_total",
    "shipyard_model_ready",
    "shipyard_requests_in_flight",
}


def _names_used(files: dict[str, str | bytes]) -> tuple[set[str], set[str], set[str]]:
    """(metric names the rules and dashboard read, recording rules read, recording rules
    written)."""
    import yaml

    rules = yaml.safe_load(str(files["rules.yml"]))
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    board = json.loads(files["grafana-dashboard.json"])
    exprs += [t["expr"] for p in board["panels"] for t in p["targets"]]
    text = "\n".join(exprs)
    return (
        set(re.findall(r"\bshipyard_[a-z0-9_]+", text)),
        set(re.findall(r"\bshipyard:[a-z0-9_:]+", text)),
        recorded,
    )


def _exposed(text: str) -> tuple[set[str], set[str]]:
    """(sample names the declared families can have, sample names with a sample now)."""
    from prometheus_client.parser import text_string_to_metric_families

    declared: set[str] = set()
    present: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    for family in text_string_to_metric_families(text):
        declared.update(family.name + s for s in suffixes.get(family.type, ("",)))
        present.update(s.name for s in family.samples)
    return declared, present


def _scrape(command: list[str], predict: str, ready: str, X: Any) -> tuple[str, str]:
    """(/metrics before any request, /metrics after three predictions and a bad request)."""
    port = free_port()
    proc = subprocess.Popen(
        [*SHIPYARD, *command, "--port", str(port), "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, timeout=120)
        wait_for(lambda: httpx.get(url + ready).status_code == 200, timeout=120)
        before = httpx.get(url + "/metrics").text
        for i in range(3):
            rows = X[i : i + 2].to_dict("records")
            answer = httpx.post(url + predict, json={"instances": rows}, timeout=30)
            assert answer.status_code == 200, answer.text
        bad = httpx.post(url + predict, json={"instances": [{"no_such_column": 1}]}, timeout=30)
        assert 400 <= bad.status_code < 500, bad.text
        return before, httpx.get(url + "/metrics").text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("server", ["server", "serve"])
def test_every_metric_the_rules_and_dashboard_name_is_on_a_real_servers_metrics(
    churn: Any, stores: Any, breast_cancer: Any, server: str
) -> None:
    from shipyard.rollout import Deployments

    X, _ = breast_cancer
    if server == "server":
        Deployments(stores).create("churn", "models:/churn@champion")
        command = ["server"]
    else:
        command = ["serve", "models:/churn@champion", "--name", "churn"]
    rendered = Deploy(stores).render("monitoring", model_uri="models:/churn@champion")
    used, reads, recorded = _names_used(rendered.files)
    assert reads <= recorded, reads - recorded
    assert "shipyard_request_latency_seconds_bucket" in used and "shipyard_drift_share" in used

    before, after = _scrape(command, "/endpoints/churn/predict", "/v2/models/churn/ready", X)
    declared, present = _exposed(after)
    expected = used if server == "server" else used - MONITOR_ONLY
    assert expected - declared == set(), f"named but not on /metrics: {expected - declared}"
    assert AFTER_TRAFFIC - present == set(), AFTER_TRAFFIC - present
    assert 'status="200"' in after and re.search(r'shipyard_requests_total\{[^}]*status="4', after)
    declared_before, present_before = _exposed(before)
    assert expected - declared_before == set()  # declared from the start
    # a replica that answered nothing has no request series: why no rule uses absent()
    assert "shipyard_requests_total" not in present_before
