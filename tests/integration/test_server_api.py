"""`shipyard server` over real HTTP, on SQLite and PostgreSQL: the control-plane API and the
endpoints it serves from the metadata store, picked up without restart."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from tests.helpers import wait_for


@pytest.fixture
def two_versions(settings: Settings, breast_cancer, logreg, forest) -> list[Any]:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    versions = []
    for model, auc in ((logreg, 0.99), (forest, 0.97)):
        with sy.start_run(experiment="api", params={"kind": type(model).__name__}) as run:
            run.log_metrics({"auc": auc})
            versions.append(run.log_model(model, name="churn", input_example=X[:5]))
    sy.set_alias("churn", "champion", 1, reason="first")
    return versions


@pytest.fixture
def server(settings: Settings, two_versions: list[Any]) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_server_app(settings, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        yield srv


def test_runs_api(server: BackgroundServer) -> None:
    runs = httpx.get(
        f"{server.url}/api/runs",
        params={"filter": "metrics.auc > 0.98", "order_by": "metrics.auc DESC"},
    ).json()["runs"]
    assert [r["metrics"]["auc"] for r in runs] == [0.99]
    one = httpx.get(f"{server.url}/api/runs/{runs[0]['id']}").json()
    assert one["params"] == {"kind": "Pipeline"}
    bad = httpx.get(f"{server.url}/api/runs", params={"filter": "metrics.auc >> 1"})
    assert bad.status_code == 400
    assert bad.json()["position"] == 13 and "expected a number" in bad.json()["error"]
    assert httpx.get(f"{server.url}/api/runs/{'f' * 32}").status_code == 404
    assert httpx.get(f"{server.url}/api/experiments").json()["experiments"] == ["api"]


def test_a_filter_too_large_is_a_400_naming_the_limit(server: BackgroundServer) -> None:
    for clauses, limit in ((1100, 10_000), (101, 100)):  # the issue's: too long already
        huge = " and ".join(f"metrics.m{i} > 0" for i in range(clauses))
        answer = httpx.get(f"{server.url}/api/runs", params={"filter": huge})
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "filter" and answer.json()["limit"] == limit
    answer = httpx.get(f"{server.url}/api/runs", params={"order_by": ["start_time"] * 1000})
    assert answer.status_code == 400 and answer.json()["field"] == "order_by", answer.text


def test_an_unreachable_database_is_a_503_that_names_neither_its_host_nor_its_user(
    tmp_path: Any,
) -> None:
    url = "postgresql+psycopg://dbuser:hunter2@127.0.0.1:1/secretdb"
    settings = Settings(home=tmp_path / "home", db_url=url, user="tester")
    with BackgroundServer(create_server_app(settings, refresh_seconds=0.2)) as srv:
        answer = httpx.get(f"{srv.url}/api/runs")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"].startswith("the metadata database is unavailable")
    for secret in ("dbuser", "hunter2", "127.0.0.1", "secretdb", "postgresql"):
        assert secret not in answer.text


def test_models_api_and_audited_alias_moves(server: BackgroundServer) -> None:
    model = httpx.get(f"{server.url}/api/models/churn").json()
    assert [v["version"] for v in model["versions"]] == [1, 2]
    assert model["aliases"] == {"champion": 1}
    r = httpx.put(
        f"{server.url}/api/models/churn/aliases/challenger",
        json={"version": 2, "reason": "try the forest"},
    )
    assert r.status_code == 200
    audit = httpx.get(f"{server.url}/api/models/churn/audit").json()["events"]
    assert audit[0]["action"] == "alias.set" and audit[0]["reason"] == "try the forest"
    assert audit[0]["actor"] == "anonymous@127.0.0.1"  # over HTTP: the caller, not the OS user
    bad = httpx.put(f"{server.url}/api/models/churn/aliases/challenger", json={"version": "two"})
    assert bad.status_code == 422 and bad.json()["field"] == "version"
    bad = httpx.put(f"{server.url}/api/models/churn/aliases/challenger", json={"version": 9})
    assert bad.status_code == 404 and "no version 9" in bad.json()["error"]
    assert (
        httpx.get(f"{server.url}/api/models/chrun")
        .json()["error"]
        .endswith("did you mean 'churn'?")
    )
    assert len(httpx.get(f"{server.url}/api/models/churn/audit").json()["events"]) == len(audit)


@pytest.mark.parametrize("version", [2**63, 2**31, 10**30, 0])
def test_a_version_out_of_range_is_a_4xx_naming_it_on_both_databases(
    server: BackgroundServer, settings: Settings, version: int
) -> None:
    from shipyard.errors import InvalidArgumentError
    from shipyard.stores import open_stores

    url = server.url
    for answer in (
        httpx.get(f"{url}/api/models/churn/versions/{version}"),
        httpx.get(f"{url}/api/models/churn/versions/{version}/gate-report"),
        httpx.post(
            f"{url}/api/models/churn/versions/{version}/approval",
            json={"state": "approved", "reviewer": "ann"},
        ),
        httpx.put(f"{url}/api/models/churn/aliases/challenger", json={"version": version}),
    ):
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "version"
    answer = httpx.post(
        f"{url}/api/endpoints", json={"name": "churn", "model_uri": f"models:/churn/{version}"}
    )
    assert answer.status_code == 400 and answer.json()["field"] == "model_uri", answer.text
    # and below the API, whoever asks (the CLI, the Python API): the same rule
    with pytest.raises(InvalidArgumentError, match="out of range") as info:
        open_stores(settings).metadata.models.get_version("churn", version)
    assert info.value.details["field"] == "version"
    assert httpx.get(f"{url}/api/models/churn").json()["aliases"] == {"champion": 1}


def test_endpoints_are_picked_up_and_follow_their_alias(
    server: BackgroundServer, breast_cancer
) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    body = {"instances": X.iloc[:3].to_dict(orient="records")}
    assert httpx.post(f"{server.url}/endpoints/churn/predict", json=body).status_code == 404
    created = httpx.post(
        f"{server.url}/api/endpoints", json={"name": "churn", "model_uri": "models:/churn@champion"}
    )
    assert created.status_code == 201, created.text
    answer = wait_for(
        lambda: (
            (r := httpx.post(f"{server.url}/endpoints/churn/predict", json=body)).status_code == 200
            and r
        )
    )
    assert answer.json()["model_version"] == 1
    httpx.put(f"{server.url}/api/models/churn/aliases/champion", json={"version": 2})
    wait_for(
        lambda: (
            httpx.post(f"{server.url}/endpoints/churn/predict", json=body)
            .json()
            .get("model_version")
            == 2
        )
    )
    listed = httpx.get(f"{server.url}/api/endpoints").json()["endpoints"]
    assert listed[0]["serving"]["version"] == 2
    bad = httpx.post(f"{server.url}/api/endpoints", json={"name": "x", "model_uri": "churn@nope"})
    assert bad.status_code == 404
    bad = httpx.post(
        f"{server.url}/api/endpoints", json={"name": "bad name", "model_uri": "churn/1"}
    )
    assert bad.status_code == 422 and bad.json()["field"] == "name"
    assert httpx.delete(f"{server.url}/api/endpoints/churn").status_code == 200
    wait_for(
        lambda: httpx.post(f"{server.url}/endpoints/churn/predict", json=body).status_code == 404
    )


def test_hot_swap_under_load_fails_no_request(
    server: BackgroundServer, settings: Settings, breast_cancer
) -> None:  # type: ignore[no-untyped-def]
    import threading

    X, _ = breast_cancer
    body = {"instances": X.iloc[:4].to_dict(orient="records")}
    httpx.post(
        f"{server.url}/api/endpoints", json={"name": "churn", "model_uri": "models:/churn@champion"}
    )
    wait_for(
        lambda: httpx.post(f"{server.url}/endpoints/churn/predict", json=body).status_code == 200
    )
    results: list[tuple[int, int | None]] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                r = client.post("/endpoints/churn/predict", json=body)
                results.append((r.status_code, r.json().get("model_version")))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        httpx.put(f"{server.url}/api/models/churn/aliases/champion", json={"version": 2})
        wait_for(lambda: any(v == 2 for _, v in results[-20:]))
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(results) > 50
    assert {code for code, _ in results} == {200}
    versions = [v for _, v in results]
    switch = versions.index(2)
    assert set(versions[:switch]) == {1}
    assert versions[-1] == 2


def test_one_broken_model_leaves_the_others_serving(
    settings: Settings, two_versions: list[Any], breast_cancer
) -> None:  # type: ignore[no-untyped-def]
    import os

    from shipyard.stores import open_stores

    X, _ = breast_cancer
    stores = open_stores(settings)
    store = stores.artifacts
    path = store._path(two_versions[1].artifact_digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"{}")
    stores.metadata.endpoints.create("good", "models:/churn/1", actor="t")
    stores.metadata.endpoints.create("broken", "models:/churn/2", actor="t")
    body = {"instances": X.iloc[:2].to_dict(orient="records")}
    with BackgroundServer(create_server_app(settings, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        assert httpx.post(f"{srv.url}/endpoints/good/predict", json=body).status_code == 200
        r = httpx.post(f"{srv.url}/endpoints/broken/predict", json=body)
        assert r.status_code == 503 and "corrupted" in r.json()["error"]
        assert httpx.get(f"{srv.url}/v2/models/broken/ready").status_code == 503
        assert httpx.get(f"{srv.url}/v2/models/good/ready").status_code == 200
        meta = httpx.get(f"{srv.url}/v2/models/good").json()
        # what loading the model added to this process's memory (the server runs on a
        # thread of it): measured where /proc is, between nothing and the peak
        if Path("/proc/self/statm").exists():
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            assert type(meta["memory_bytes"]) is int and 0 <= meta["memory_bytes"] <= peak
        else:
            assert meta["memory_bytes"] is None
        ready = httpx.get(f"{srv.url}/health/ready").json()
        assert ready["endpoints"] == {"broken": "failed", "good": "ready"}


def test_an_endpoint_still_loading_is_a_503_not_a_404(settings: Settings) -> None:
    """Between start-up and the end of an endpoint's first load — here, while the endpoint
    before it loads — a request to it is answered 'loading' with Retry-After (the endpoint
    exists); an unknown name stays a 404."""
    from shipyard.stores import open_stores
    from tests.integration._models import Sleeper

    with sy.start_run(experiment="slow") as run:
        run.log_model(
            Sleeper(2.0), name="slow", input_example=np.ones((2, 1)), serialization="pickle"
        )
    endpoints = open_stores(settings).metadata.endpoints
    for name in ("a-first", "b-second"):
        endpoints.create(name, "models:/slow/1", actor="t")
    with BackgroundServer(create_server_app(settings, trusted=True)) as srv:
        srv.wait_ready("/health/live")
        r = httpx.post(f"{srv.url}/endpoints/b-second/predict", json={"instances": [[1.0]]})
        assert r.status_code == 503, r.text
        assert "loading" in r.json()["error"] and r.headers["retry-after"] == "1"
        assert httpx.post(f"{srv.url}/endpoints/b-secnod/predict", json={}).status_code == 404
        srv.wait_ready()
        r = httpx.post(f"{srv.url}/endpoints/b-second/predict", json={"instances": [[1.0]]})
        assert r.status_code == 200, r.text


def test_an_over_long_alias_is_a_400_naming_it(server: BackgroundServer) -> None:
    r = httpx.put(f"{server.url}/api/models/churn/aliases/{'a' * 5000}", json={"version": 1})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "alias" and "limit is 128" in r.json()["error"]
    assert "a" * 200 not in httpx.get(f"{server.url}/api/models/churn").text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"model": "churn/2", "thresholds": {"max_p99_ratio": NaN}}', "max_p99_ratio"),
        ('{"model": "churn/2", "thresholds": {"max_p99_ratio": Infinity}}', "max_p99_ratio"),
        ('{"model": "churn/2", "thresholds": {"p99_slack_ms": 1e400}}', "p99_slack_ms"),
        ('{"model": "churn/2", "thresholds": {"max_p99_ratio": -3}}', "max_p99_ratio"),
        ('{"model": "churn/2", "min_requests": 99999999999999999999999999}', "min_requests"),
        ('{"model": "churn/2", "min_seconds": Infinity}', "min_seconds"),
    ],
)
def test_a_rollout_setting_that_is_not_a_finite_number_in_range_is_refused_and_not_stored(
    server: BackgroundServer, body: str, field: str
) -> None:
    """NaN, infinities and integers past 64 bits were stored (NaN as null) and left the
    endpoint with no status and no rollback; a huge integer was a 500 on every list."""
    created = httpx.post(
        f"{server.url}/api/endpoints", json={"name": "ep", "model_uri": "models:/churn@champion"}
    )
    assert created.status_code in (200, 201), created.text
    r = httpx.post(
        f"{server.url}/api/deployments/ep/canary",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500, r.text
    assert field in r.text
    status = httpx.get(f"{server.url}/api/deployments/ep")
    assert status.status_code == 200 and status.json()["policy"] == "single", status.text
    assert httpx.get(f"{server.url}/api/endpoints").status_code == 200
    assert httpx.post(
        f"{server.url}/api/deployments/ep/canary", json={"model": "churn/2"}
    ).is_success
    rolled = httpx.post(f"{server.url}/api/deployments/ep/rollback", json={"reason": "t"})
    assert rolled.status_code == 200, rolled.text


def test_one_unreadable_stored_policy_hides_neither_the_others_nor_itself(
    server: BackgroundServer, settings: Settings
) -> None:
    import sqlalchemy as sa

    from shipyard.stores import open_stores

    for name in ("good", "bad"):
        httpx.post(
            f"{server.url}/api/endpoints", json={"name": name, "model_uri": "models:/churn/1"}
        ).raise_for_status()
    from shipyard.stores import schema

    engine = sa.create_engine(settings.db_url)
    with engine.begin() as conn:  # a row written by hand, or by a version before policies
        conn.execute(
            schema.endpoints.update()
            .where(schema.endpoints.c.name == "bad")
            .values(policy="canary", config={"steps": "abc"})
        )
    engine.dispose()
    open_stores(settings).metadata.endpoints.list()  # the store still reads it
    r = httpx.get(f"{server.url}/api/deployments")
    assert r.status_code == 200, r.text
    listed = {d["endpoint"]: d for d in r.json()["deployments"]}
    assert {"good", "bad"} <= set(listed)
    assert "invalid" in listed["bad"] and "invalid" not in listed["good"]


def test_models_are_described_tagged_and_deleted_over_http_as_on_the_cli(
    server: BackgroundServer,
) -> None:
    """#15: the CLI's new model edits exist on the API too, with the same refusals."""
    api = f"{server.url}/api/models/churn"
    with httpx.Client(timeout=30) as client:
        assert client.patch(api, json={"description": "monthly churn"}).status_code == 200
        assert client.put(f"{api}/tags/team", json={"value": "growth"}).status_code == 200
        assert client.put(f"{api}/versions/2/tags/data", json={"value": "march"}).is_success
        assert client.patch(f"{api}/versions/2", json={"description": "forest"}).is_success
        model = client.get(api).json()
        assert (model["description"], model["tags"]) == ("monthly churn", {"team": "growth"})
        v2 = model["versions"][1]
        assert v2["description"] == "forest" and v2["tags"]["data"] == "march"
        assert client.delete(f"{api}/tags/team").json()["deleted"] is True
        missing = client.delete(f"{api}/tags/team")
        assert missing.status_code == 404 and "tag of model 'churn'" in missing.json()["error"]
        reserved = client.put(f"{api}/versions/1/tags/approval_reviewer", json={"value": "me"})
        assert reserved.status_code == 400 and reserved.json()["field"] == "key"
        assert client.patch(api, json={}).status_code == 422

        in_use = client.delete(f"{api}/versions/1")
        assert in_use.status_code == 409 and "alias 'champion'" in in_use.json()["error"]
        assert client.delete(api).status_code == 409
        assert client.delete(f"{api}/versions/2", params={"reason": "worse"}).is_success
        assert [v["version"] for v in client.get(api).json()["versions"]] == [1]
        events = client.get(f"{api}/audit").json()["events"]
        assert events[0]["action"] == "version.delete" and events[0]["reason"] == "worse"


def test_experiments_are_shown_renamed_and_deleted_over_http(server: BackgroundServer) -> None:
    api = f"{server.url}/api/experiments"
    with httpx.Client(timeout=30) as client:
        shown = client.get(f"{api}/api").json()
        assert shown["runs"] == 2 and len(shown["recent_runs"]) == 2
        renamed = client.patch(f"{api}/api", json={"name": "churn-2026"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "churn-2026"
        assert client.get(f"{api}/api").status_code == 404
        bad = client.patch(f"{api}/churn-2026", json={"name": ""})
        assert bad.status_code == 422 and bad.json()["field"] == "name", bad.text
        refused = client.delete(f"{api}/churn-2026")
        assert refused.status_code == 409
        assert "model version churn/1" in refused.json()["error"]
        assert client.get(f"{api}/churn-2026").json()["runs"] == 2  # nothing removed
