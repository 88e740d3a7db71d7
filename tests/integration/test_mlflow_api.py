"""MLflow's REST API on `shipyard server` over real HTTP, on SQLite and PostgreSQL: MLflow's
JSON and error shapes (`{error_code, message}` with its statuses), keyset paging, the soft
delete and restore of runs and experiments, and the scopes it asks for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer

API = "/api/2.0/mlflow/"


@pytest.fixture
def server(settings: Settings) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_server_app(settings, refresh_seconds=1.0)) as srv:
        srv.wait_ready()
        yield srv


@pytest.fixture
def client(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + API, timeout=30) as c:
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


def test_errors_have_mlflow_codes_and_statuses(client: httpx.Client) -> None:
    message = _error(
        client.post("runs/search", json={"filter": "metrics.r2 >> 1"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "position" in message
    _error(
        client.post("runs/search", json={"filter": "dataset.name = 'x'"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    _error(client.post("runs/search", json={"max_results": 50_001}), 400, "INVALID_PARAMETER_VALUE")
    _error(
        client.post("runs/search", json={"page_token": "nonsense"}), 400, "INVALID_PARAMETER_VALUE"
    )
    _error(client.get("runs/get", params={"run_id": "f" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")
    missing = {"run_id": "f" * 32, "key": "m", "value": 1, "timestamp": 1}
    _error(client.post("runs/log-metric", json=missing), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(
        client.get("experiments/get", params={"experiment_id": "999"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    _error(
        client.get("experiments/get-by-name", params={"experiment_name": "nope"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    _error(
        client.post("runs/log-metric", json={"run_id": "x", "key": "m"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    _error(client.post("experiments/create", json={}), 400, "INVALID_PARAMETER_VALUE")
    _error(client.post("experiments/create", content=b"{not json"), 400, "MALFORMED_REQUEST")
    assert client.post("experiments/create", json={"name": "dup"}).status_code == 200
    _error(client.post("experiments/create", json={"name": "dup"}), 400, "RESOURCE_ALREADY_EXISTS")
    for path in ("traces", "gateway/secrets/create", "prompts/create", "runs/get-nothing"):
        _error(client.post(path, json={}), 404, "ENDPOINT_NOT_FOUND")
    _error(client.post("registered-models/create", json={}), 400, "INVALID_PARAMETER_VALUE")
    _error(client.get("logged-models/m-nothing"), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(client.delete("runs/get"), 404, "ENDPOINT_NOT_FOUND")  # a known path, another method
    base = str(client.base_url).removesuffix(API)
    info = httpx.get(base + "/api/3.0/mlflow/server-info").json()
    assert info["multipart_uploads_enabled"] is False and info["artifact_serving_enabled"]
    _error(httpx.get(base + "/api/3.0/mlflow/traces/x"), 404, "ENDPOINT_NOT_FOUND")
    _error(httpx.post(base + "/ajax-api/2.0/mlflow/webhooks", json={}), 404, "ENDPOINT_NOT_FOUND")
    assert (
        httpx.get(base + "/health").text == "OK" and httpx.get(base + "/version").status_code == 200
    )


def test_runs_page_by_keyset_tokens_and_ignore_unknown_fields(client: httpx.Client) -> None:
    exp_id = client.post("experiments/create", json={"name": "paging", "x-new-field": 1}).json()[
        "experiment_id"
    ]
    ids = [_run(client, exp_id, f"r{i}", i / 10) for i in range(5)]
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        body: dict[str, Any] = {
            "experiment_ids": [exp_id],
            "filter": "metrics.r2 >= 0.1",
            "order_by": ["metrics.r2 DESC"],
            "max_results": 2,
            "something_newer": True,
        }
        if token:
            body["page_token"] = token
        page = client.post("runs/search", json=body).json()
        pages += 1
        seen += [r["info"]["run_id"] for r in page.get("runs", [])]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == ids[:0:-1] and pages == 2  # r2 0.4 .. 0.1, no duplicate, no gap
    ajax = str(client.base_url).replace("/api/2.0/", "/ajax-api/2.0/")
    same = httpx.get(ajax + "runs/get", params={"run_uuid": ids[0]}).json()["run"]
    assert same["info"]["run_name"] == "r0" and same["info"]["experiment_id"] == exp_id
    assert same["data"]["metrics"] == [{"key": "r2", "value": 0.0, "timestamp": 1, "step": 0}]
    assert {"key": "mlflow.runName", "value": "r0"} in same["data"]["tags"]


def test_delete_and_restore_runs_and_experiments(client: httpx.Client) -> None:
    exp_id = client.post("experiments/create", json={"name": "soft"}).json()["experiment_id"]
    run_id = _run(client, exp_id, "r", 0.5)
    assert client.post("runs/delete", json={"run_id": run_id}).json() == {}
    search = {"experiment_ids": [exp_id]}
    assert client.post("runs/search", json=search).json() == {}
    deleted = client.post("runs/search", json={**search, "run_view_type": "DELETED_ONLY"}).json()
    assert [r["info"]["lifecycle_stage"] for r in deleted["runs"]] == ["deleted"]
    log = {"run_id": run_id, "key": "p", "value": "1"}
    assert "restore" in _error(
        client.post("runs/log-parameter", json=log), 400, "INVALID_PARAMETER_VALUE"
    )
    client.post("runs/restore", json={"run_id": run_id})
    assert client.post("runs/log-parameter", json=log).json() == {}
    assert (
        len(client.post("runs/search", json={**search, "run_view_type": "ALL"}).json()["runs"]) == 1
    )

    assert client.post("experiments/delete", json={"experiment_id": exp_id}).json() == {}
    got = client.get("experiments/get", params={"experiment_id": exp_id}).json()["experiment"]
    assert got["lifecycle_stage"] == "deleted"
    names = [e["name"] for e in client.get("experiments/search").json().get("experiments", [])]
    assert "soft" not in names
    again = client.post("experiments/create", json={"name": "soft"})
    assert "deleted" in _error(again, 400, "RESOURCE_ALREADY_EXISTS")
    _error(
        client.post("runs/create", json={"experiment_id": exp_id}), 400, "INVALID_PARAMETER_VALUE"
    )
    client.post("experiments/restore", json={"experiment_id": exp_id})
    client.post("experiments/update", json={"experiment_id": exp_id, "new_name": "firm"})
    found = client.post("experiments/search", json={"filter": "name LIKE 'fi%'"}).json()
    assert [e["experiment_id"] for e in found["experiments"]] == [exp_id]


def test_reads_need_read_and_writes_need_track(settings: Settings) -> None:
    from shipyard.access import ApiKeys
    from shipyard.stores import open_stores

    settings = settings.model_copy(update={"auth_required": True, "auth_cache_seconds": 0})
    keys = ApiKeys(open_stores(settings))
    reader = keys.create("reader", scopes=["read"])[1]
    trainer = keys.create("trainer", scopes=["track"])[1]
    with BackgroundServer(create_server_app(settings, refresh_seconds=1.0)) as srv:
        srv.wait_ready()

        def call(token: str | None, path: str, body: dict[str, Any]) -> httpx.Response:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            return httpx.post(srv.url + API + path, json=body, headers=headers)

        refused = call(None, "runs/search", {})  # shipyard's fields and MLflow's
        assert refused.json()["type"] == "UnauthorizedError"
        assert refused.status_code == 401 and refused.json()["error_code"] == "UNAUTHENTICATED"
        assert refused.json()["message"] == refused.json()["error"]
        assert call(reader, "runs/search", {}).status_code == 200
        denied = call(reader, "experiments/create", {"name": "e"})
        assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"
        assert "track" in denied.json()["message"]
        assert call(trainer, "experiments/create", {"name": "e"}).status_code == 200
        made = call(trainer, "runs/create", {}).json()["run"]["info"]  # MLflow's default: "0"
        assert made["experiment_id"] == "0" and made["lifecycle_stage"] == "active"
        default = httpx.get(
            srv.url + API + "experiments/get",
            params={"experiment_id": "0"},
            headers={"authorization": f"Bearer {reader}"},
        ).json()["experiment"]
        assert default["name"] == "default" and default["experiment_id"] == "0"


@pytest.mark.slow
def test_2345_runs_come_in_3_pages_without_duplicate_or_gap_while_runs_are_added(
    client: httpx.Client, settings: Settings
) -> None:
    from shipyard.stores import open_stores
    from shipyard.tracking import RemoteRuns

    runs = RemoteRuns(open_stores(settings))
    made = {runs.create("many", start_time=1_000_000 + i // 3).id for i in range(2345)}
    exp_id = client.get("experiments/get-by-name", params={"experiment_name": "many"}).json()[
        "experiment"
    ]["experiment_id"]
    seen: list[str] = []
    token, pages = None, 0
    while True:
        page = client.post(
            "runs/search", json={"experiment_ids": [exp_id], "page_token": token}
        ).json()
        pages += 1
        seen += [r["info"]["run_id"] for r in page["runs"]]
        runs.create("many")  # newer than every run paged so far: not in this listing
        token = page.get("next_page_token")
        if not token:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 2345 and set(seen) == made
