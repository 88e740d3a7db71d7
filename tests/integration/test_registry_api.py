"""What the registry's pages read, over HTTP on a server that requires credentials: the models'
summary, a model's versions with their gate results, a version's lineage, gate reports and
environment — read with the `read` scope, refused without credentials; the review they send
needs `admin` and is audited under the key's name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import shipyard as sy
from shipyard.access import ApiKeys
from shipyard.config import Settings
from shipyard.rollout import Deployments
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from shipyard.stores import open_stores

READS = [
    "/api/models?summary=1",
    "/api/models/churn?summary=1",
    "/api/models/churn/versions/1/lineage",
    "/api/models/churn/versions/1/gate-reports",
    "/api/models/churn/versions/1/environment",
]


@pytest.fixture
def server(
    settings: Settings, breast_cancer: Any, logreg: Any
) -> Iterator[tuple[str, dict[str, str]]]:
    X, _ = breast_cancer
    with sy.start_run(experiment="churn") as run:
        run.log_dataset(X, name="train")
        run.log_model(logreg, name="churn", input_example=X[:5], onnx=False)
    stores = open_stores(settings)
    Deployments(stores).create("live", "models:/churn/1")
    keys = {
        s: ApiKeys(stores).create(n, scopes=[s])[1] for s, n in (("read", "eve"), ("admin", "ops"))
    }
    strict = settings.model_copy(
        update={"auth_required": True, "monitor_interval_seconds": 0, "rollout_interval_seconds": 0}
    )
    with BackgroundServer(create_server_app(strict, refresh_seconds=0.5)) as srv:
        srv.wait_ready("/health/live")
        yield srv.url, {s: f"Bearer {k}" for s, k in keys.items()}


def test_the_pages_reads_need_credentials_and_the_read_scope_is_enough(
    server: tuple[str, dict[str, str]],
) -> None:
    url, keys = server
    with httpx.Client(base_url=url) as client:
        for path in READS:
            assert client.get(path).status_code == 401, path
            answer = client.get(path, headers={"authorization": keys["read"]})
            assert answer.status_code == 200, (path, answer.text)
        lineage = client.get(READS[2], headers={"authorization": keys["read"]}).json()
        assert [e["name"] for e in lineage["endpoints"]] == ["live"]
        assert [(d["name"], d["rows"]) for d in lineage["datasets"]] == [("train", 569)]
        (model,) = client.get(READS[0], headers={"authorization": keys["read"]}).json()["models"]
        assert model["latest"]["version"] == 1 and model["approvals"] == {"pending": 1}


def test_the_review_needs_admin_and_is_audited_under_the_key(
    server: tuple[str, dict[str, str]],
) -> None:
    url, keys = server
    path = "/api/models/churn/versions/1/approval"
    review = {"state": "approved", "reviewer": "ops", "comment": "fine"}
    with httpx.Client(base_url=url) as client:
        refused = client.post(path, json=review, headers={"authorization": keys["read"]})
        assert refused.status_code == 403 and "admin" in refused.text
        done = client.post(path, json=review, headers={"authorization": keys["admin"]})
        assert done.status_code == 200 and done.json()["approval"] == "approved"
        events = client.get(
            "/api/models/churn/audit", headers={"authorization": keys["read"]}
        ).json()["events"]
    (event,) = [e for e in events if e["action"] == "version.approve"]
    assert event["actor"].startswith("key:") and event["actor"].endswith("/ops")
