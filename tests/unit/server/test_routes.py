"""The /api handlers and the control plane's services, called as functions: no server, no
socket. Each handler takes its request parameters and a `ControlPlane`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from shipyard.config import get_settings
from shipyard.errors import ForbiddenError, NotFoundError
from shipyard.registry import Registry
from shipyard.server.plane import ControlPlane, bind, control_plane
from shipyard.server.routes import deployments, endpoints, keys, models, runs
from shipyard.serving.auth import Principal
from shipyard.stores import Stores, open_stores
from shipyard.stores.records import MetricPoint


@pytest.fixture
def plane(tmp_home: Path) -> ControlPlane:
    settings = get_settings()
    stores = open_stores(settings)
    # the table and the monitor are not used by the handlers these tests call
    return ControlPlane(settings, stores, Registry(stores), None, None)  # type: ignore[arg-type]


def body(response: Response) -> Any:
    return orjson.loads(bytes(response.body))


def request(endpoints: frozenset[str] | None) -> Request:
    principal = Principal("k1", "ci", frozenset({"admin"}), endpoints)
    return Request(
        {"type": "http", "method": "POST", "headers": [], "state": {"principal": principal}}
    )


def make_run(stores: Stores) -> str:
    store = stores.metadata.runs
    run_id = store.create_run(experiment="churn", name="first", user="tester")
    store.log_batch(
        run_id, [MetricPoint("loss", v, step, 1000 + step) for step, v in enumerate((0.9, 0.5))]
    )
    return run_id


def test_run_handlers_answer_what_the_tracking_queries_say(plane: ControlPlane) -> None:
    run_id = make_run(plane.stores)
    assert body(runs.list_experiments(plane)) == {"experiments": ["churn"]}
    assert body(runs.get_run(run_id[:8], plane))["id"] == run_id
    found = body(
        runs.search(plane, filter="metrics.loss < 0.6", order_by=None, experiment=None, limit=10)
    )
    assert [r["id"] for r in found["runs"]] == [run_id]
    history = body(runs.metric_history(run_id[:8], "loss", plane))
    assert history["run_id"] == run_id
    assert [(p["step"], p["value"]) for p in history["points"]] == [(0, 0.9), (1, 0.5)]


def test_experiment_handlers_show_rename_and_delete(plane: ControlPlane) -> None:
    run_id = make_run(plane.stores)
    plane.stores.metadata.runs.end_run(run_id, "FINISHED")
    shown = body(runs.get_experiment("churn", plane, limit=5))
    assert shown["runs"] == 1 and shown["recent_runs"][0]["id"] == run_id
    renamed = runs.rename_experiment("churn", runs.RenameBody(name="churn-old"), plane)
    assert body(renamed)["name"] == "churn-old"
    assert body(runs.delete_experiment("churn-old", plane)) == {
        "name": "churn-old",
        "deleted": True,
        "runs": 1,
    }
    with pytest.raises(NotFoundError):
        runs.get_run(run_id, plane)


def test_an_unknown_run_is_a_not_found(plane: ControlPlane) -> None:
    with pytest.raises(NotFoundError):
        runs.get_run("feedface", plane)


def test_deleting_an_endpoint_goes_through_deployments_and_is_audited(plane: ControlPlane) -> None:
    plane.stores.metadata.endpoints.create("churn", "models:/churn@champion", actor="tester")
    assert body(endpoints.delete_endpoint("churn", plane, reason="replaced")) == {
        "name": "churn",
        "deleted": True,
    }
    assert plane.deployments.list() == []
    events = body(models.audit(plane, limit=10))["events"]
    assert any(e["subject"] == "churn" and e["reason"] == "replaced" for e in events)
    with pytest.raises(NotFoundError):
        endpoints.get_endpoint("churn", plane)


def test_revoking_a_key_through_the_handler(plane: ControlPlane) -> None:
    record, secret = plane.keys.create("ci", scopes=["predict"])
    assert plane.stores.metadata.keys.verify(secret) is not None
    assert body(keys.revoke_key(record.id, plane, reason="leaked")) == {
        "id": record.id,
        "revoked": True,
    }
    assert plane.stores.metadata.keys.verify(secret) is None
    assert [k.revoked for k in plane.keys.list()] == [True]


def test_a_limited_caller_may_not_move_an_alias_other_endpoints_follow(
    plane: ControlPlane,
) -> None:
    plane.stores.metadata.endpoints.create("churn", "models:/churn@champion", actor="tester")
    plane.stores.metadata.endpoints.create("pinned", "models:/churn/3", actor="tester")
    deployments.may_move_alias(request(None), plane.deployments, "churn")  # unlimited: fine
    deployments.may_move_alias(request(frozenset({"pinned"})), plane.deployments, "pinned")
    with pytest.raises(ForbiddenError, match="follows churn@champion"):
        deployments.may_move_alias(request(frozenset({"churn"})), plane.deployments, "churn")


def test_the_plane_dependency_is_bound_per_app(plane: ControlPlane) -> None:
    with pytest.raises(RuntimeError, match="mount_api"):
        asyncio.run(control_plane())
    app = FastAPI()
    bind(app, plane)
    assert asyncio.run(app.dependency_overrides[control_plane]()) is plane


def test_run_page_handlers_downsample_and_answer_artifacts_and_models(
    plane: ControlPlane, tmp_path: Path
) -> None:
    from shipyard.errors import InvalidArgumentError
    from shipyard.stores.records import ArtifactRecord

    run_id = make_run(plane.stores)
    store = plane.stores.metadata.runs
    store.log_batch(run_id, [MetricPoint("x", float(s % 7), s, s) for s in range(1000)])
    doc = body(runs.metric_history(run_id, "x", plane, max_points=100, min_step=100))
    assert doc["downsampled"] is True and len(doc["points"]) <= 100
    assert (doc["total"], doc["min_step"], doc["max_step"]) == (900, 100, 999)
    digest, size = plane.stores.artifacts.put_bytes(b"<script>alert(1)</script>")
    store.log_artifact(run_id, ArtifactRecord("out/page.html", digest, size))
    answer = runs.get_artifact(run_id[:8], "out/page.html", plane, inline=True)
    assert answer.headers["content-security-policy"].startswith("sandbox;")
    assert answer.headers["content-disposition"].startswith("inline;")
    with pytest.raises(InvalidArgumentError) as bad:
        runs.get_artifact(run_id, "out/../page.html", plane)
    assert bad.value.to_dict()["field"] == "path"
    with pytest.raises(NotFoundError):
        runs.get_artifact(run_id, "out/other.html", plane)
    assert body(runs.run_models(run_id, plane)) == {"run_id": run_id, "versions": []}
