"""What older and newer MLflow clients send besides the routes of `test_mlflow_api.py`, over
real HTTP on SQLite and PostgreSQL: MLflow 2's runs/log-model and MLflow 3's model-linked
metric points (found by running each client version in `tests/e2e/test_mlflow_client.py`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer

API = "/api/2.0/mlflow/"


@pytest.fixture
def client(settings: Settings) -> Iterator[httpx.Client]:
    with BackgroundServer(create_server_app(settings, refresh_seconds=1.0)) as srv:
        srv.wait_ready()
        with httpx.Client(base_url=srv.url + API, timeout=30) as c:
            yield c


def _error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    return str(body["message"])


def _run(client: httpx.Client, exp_id: str, name: str, r2: float) -> str:
    run = client.post("runs/create", json={"experiment_id": exp_id, "run_name": name}).json()
    run_id = str(run["run"]["info"]["run_id"])
    metric = {"run_id": run_id, "key": "r2", "value": r2, "timestamp": 1, "step": 0}
    assert client.post("runs/log-metric", json=metric).json() == {}
    return run_id


def test_a_model_linked_metric_is_not_logged_twice(client: httpx.Client) -> None:
    """MLflow 3's log_model re-logs a step's metrics with the model's id: the run's history
    keeps each point once (as MLflow does); a new point with a model id is still logged."""
    exp_id = client.post("experiments/create", json={"name": "linked"}).json()["experiment_id"]
    run_id = _run(client, exp_id, "r", 0.5)
    same = {"key": "r2", "value": 0.5, "timestamp": 1, "step": 0, "model_id": "m-1"}
    new = {"key": "r2", "value": 0.7, "timestamp": 2, "step": 1, "model_id": "m-1"}
    body = {"run_id": run_id, "metrics": [same, new]}
    assert client.post("runs/log-batch", json=body).json() == {}
    history = client.get("metrics/get-history", params={"run_id": run_id, "metric_key": "r2"})
    assert [(m["step"], m["value"]) for m in history.json()["metrics"]] == [(0, 0.5), (1, 0.7)]


def test_mlflow_2_log_model_records_the_run_s_model_history(client: httpx.Client) -> None:
    """MLflow 2's log_model posts runs/log-model: kept in the run's mlflow.log-model.history
    tag, one entry per model, as MLflow's server does."""
    exp_id = client.post("experiments/create", json={"name": "models"}).json()["experiment_id"]
    run_id = _run(client, exp_id, "r", 0.5)
    for path in ("model", "other"):
        model = {
            "run_id": run_id,
            "artifact_path": path,
            "utc_time_created": "2026-12-07 23:00:00.000000",
            "flavors": {"sklearn": {"sklearn_version": "1.7.2", "config": {"x": 1}}},
            "signature": {"inputs": "[]"},
        }
        body = {"run_id": run_id, "model_json": json.dumps(model)}
        assert client.post("runs/log-model", json=body).json() == {}
    run = client.get("runs/get", params={"run_id": run_id}).json()["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    history = json.loads(tags["mlflow.log-model.history"])
    assert [h["artifact_path"] for h in history] == ["model", "other"]
    assert history[0]["flavors"] == {"sklearn": {"sklearn_version": "1.7.2"}}
    assert "signature" not in history[0]
    bad = {"run_id": run_id, "model_json": json.dumps({"run_id": run_id})}
    assert "artifact_path" in _error(
        client.post("runs/log-model", json=bad), 400, "INVALID_PARAMETER_VALUE"
    )
