"""The routes behind the web UI's deployment and monitoring pages, over real HTTP on SQLite
and PostgreSQL: live traffic by version from the server's own counters, the monitoring
overview, an evaluation over a window of the caller's choosing with each column's
histograms, live accuracy over time, alert rules and their history."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from shipyard.stores import open_stores
from tests.helpers import wait_for


@pytest.fixture
def server(settings: Settings, breast_cancer: Any, logreg: Any) -> Iterator[BackgroundServer]:
    X, _ = breast_cancer
    with sy.start_run(experiment="views") as run:
        run.log_dataset(X, name="train")
        run.log_model(logreg, name="churn", input_example=X[:5])
    sy.set_alias("churn", "champion", 1, reason="first")
    open_stores(settings).metadata.endpoints.create("churn", "models:/churn@champion", actor="t")
    fast = settings.model_copy(
        update={"predlog_flush_seconds": 0.1, "monitor_interval_seconds": 0.0}
    )
    with BackgroundServer(create_server_app(fast, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        wait_for(lambda: httpx.get(f"{srv.url}/api/endpoints/churn").json()["serving"])
        yield srv


def predict(url: str, rows: Any) -> dict[str, Any]:
    body = {"instances": rows.to_dict(orient="records")}
    r = httpx.post(f"{url}/endpoints/churn/predict", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def test_stats_count_requests_errors_and_the_recent_rate_by_version(
    server: BackgroundServer, breast_cancer: Any
) -> None:
    X, _ = breast_cancer
    url = server.url
    for _ in range(5):
        predict(url, X.iloc[:4])
    bad = httpx.post(f"{url}/endpoints/churn/predict", json={"instances": [{"nope": 1}]})
    assert bad.status_code == 422
    first = httpx.get(f"{url}/api/endpoints/churn/stats").json()
    assert first["serving"]["version"] == 1 and first["candidate"] is None
    (v1,) = first["versions"]
    assert v1["version"] == "1" and v1["model"] == "churn"
    assert (v1["total"]["ok"], v1["total"]["client_errors"], v1["total"]["rows"]) == (5, 1, 20)
    assert v1["total"]["p50_ms"] > 0 and v1["total"]["p95_ms"] >= v1["total"]["p50_ms"]
    assert v1["recent"] is None  # the first look: nothing to take a rate against
    time.sleep(0.6)
    for _ in range(3):
        predict(url, X.iloc[:1])
    recent = httpx.get(f"{url}/api/endpoints/churn/stats").json()["versions"][0]["recent"]
    assert recent["requests"] == 3 and recent["rate_per_second"] > 0
    missing = httpx.get(f"{url}/api/endpoints/chrun/stats")
    assert missing.status_code == 404 and "did you mean 'churn'" in missing.json()["error"]


def test_monitoring_overview_windows_histograms_and_accuracy(
    server: BackgroundServer, breast_cancer: Any
) -> None:
    X, y = breast_cancer
    url = server.url
    live = X.sample(200, replace=True, random_state=0).reset_index(drop=True)
    truth = y.sample(200, replace=True, random_state=0).reset_index(drop=True)
    live["mean radius"] = live["mean radius"] * 1.3
    for start in range(0, 200, 20):
        rid = predict(url, live.iloc[start : start + 20])["request_id"]
        labels = truth.iloc[start : start + 20].tolist()
        feedback = {"request_id": rid, "labels": labels}
        assert httpx.post(f"{url}/endpoints/churn/feedback", json=feedback).status_code == 202
    time.sleep(0.5)  # the logs flush every 0.1 s
    overview = httpx.get(f"{url}/api/monitoring").json()
    (row,) = overview["endpoints"]
    assert row["endpoint"] == "churn" and row["latest"] is None and row["alerts"] == []
    doc = httpx.get(
        f"{url}/api/monitoring/churn", params={"window": "30m", "distributions": "true"}
    ).json()
    assert doc["window_seconds"] == 1800 and doc["rows"] == 200
    assert doc["drift"]["drifted_columns"] == ["mean radius"]
    hist = doc["distributions"]["mean radius"]
    assert hist["kind"] == "numeric" and hist["current_rows"] == 200
    assert sum(hist["current"]) == pytest.approx(1.0)
    # a window of the caller's choosing changes nothing the monitor keeps
    assert httpx.get(f"{url}/api/monitoring").json()["endpoints"][0]["latest"] is None
    assert "distributions" not in httpx.get(f"{url}/api/monitoring/churn").json()
    # … nor does a look at the monitor's own window: only its pass (POST) keeps one
    assert httpx.get(f"{url}/api/monitoring").json()["endpoints"][0]["latest"] is None
    assert httpx.post(f"{url}/api/monitoring/churn/evaluate").is_success
    latest = httpx.get(f"{url}/api/monitoring").json()["endpoints"][0]["latest"]
    assert latest["drifted_columns"] == ["mean radius"] and latest["rows"] == 200
    bad = httpx.get(f"{url}/api/monitoring/churn", params={"window": "soon"})
    assert bad.status_code == 400 and bad.json()["field"] == "window"
    acc = httpx.get(
        f"{url}/api/monitoring/churn/accuracy", params={"window": "1h", "buckets": 6}
    ).json()
    assert acc["metric"] == "accuracy" and acc["not_computable"] is None
    points = acc["versions"]["1"]
    assert sum(p["n"] for p in points) == 200 and all(0 <= p["value"] <= 1 for p in points)
    assert acc["bucket_ms"] == 600_000


def test_alert_rules_show_their_state_and_history_without_their_targets(
    server: BackgroundServer, settings: Settings, breast_cancer: Any
) -> None:
    from shipyard.monitoring.alerts import AlertRules

    X, _ = breast_cancer
    AlertRules(settings, open_stores(settings)).add(
        "churn", "drift", when="drift_share > 0.01", webhook="http://127.0.0.1:9/hook?t=s3cret"
    )
    shifted = X.iloc[:100].assign(**{"mean radius": X["mean radius"].iloc[:100] * 2})
    predict(server.url, shifted)
    time.sleep(0.5)
    # a look (GET, even with evaluate) acts on no rule; the monitor's pass (POST, admin) does
    assert httpx.get(f"{server.url}/api/monitoring/churn", params={"evaluate": True}).is_success
    quiet = httpx.get(f"{server.url}/api/monitoring/churn/alerts").json()
    assert quiet["events"] == [] and quiet["rules"][0]["state"] != "firing"
    assert httpx.post(f"{server.url}/api/monitoring/churn/evaluate").is_success
    doc = httpx.get(f"{server.url}/api/monitoring/churn/alerts").json()
    (rule,) = doc["rules"]
    assert rule["state"] == "firing" and rule["condition"] == "drift_share > 0.01"
    assert rule["actions"] == ["webhook"] and "webhook" not in rule and "command" not in rule
    (event,) = doc["events"]
    assert event["kind"] == "fired" and event["cause"]["metric"] == "drift_share"
    overview = httpx.get(f"{server.url}/api/monitoring").json()["endpoints"][0]
    assert overview["firing"] == 1 and overview["alerts"][0]["name"] == "drift"
    assert "s3cret" not in httpx.get(f"{server.url}/api/monitoring").text
