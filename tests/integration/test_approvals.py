"""Approvals: pending -> approved | rejected by a named reviewer, audited; endpoints that
require approval never serve an unapproved version (on SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.rollout import Deployments
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from tests.integration._models import Constant


@pytest.fixture
def registry(settings: Settings) -> Any:
    from shipyard.stores import open_stores

    X = np.zeros((5, 3))
    with sy.start_run(experiment="approvals") as run:
        for label in (0, 1, 0):
            run.log_model(Constant(label), name="m", input_example=X, serialization="pickle")
    return sy.Registry(open_stores(settings))


def test_a_load_that_resolves_to_an_unapproved_version_keeps_the_approved_one(
    registry: Any,
) -> None:
    """The alias may move between the server's approval check and its load: the version that
    was loaded is checked again, and an unapproved one is never swapped in."""
    from shipyard.serving.metrics import ServingMetrics
    from shipyard.serving.runtime import EndpointTable

    registry.approve("m", 1, reviewer="alice")
    registry.set_alias("m", "champion", 1)
    table = EndpointTable(registry, ServingMetrics(), trusted=True)
    config = {"require_approval": True}
    assert table.load("m", "models:/m@champion", 1, config).version == "1"
    registry.set_alias("m", "champion", 3)  # after the check, before the load
    assert table.load("m", "models:/m@champion", 1, config).version == "1"
    assert table.get("m").version == "1"
    registry.approve("m", 3, reviewer="alice")
    assert table.load("m", "models:/m@champion", 1, config).version == "3"


def test_review_flow_and_audit(registry: Any) -> None:
    mv = registry.approve("m", 1, reviewer="alice", comment="gates green")
    assert mv.approval == "approved" and mv.tags["approval_reviewer"] == "alice"
    assert registry.reject("m", 2, reviewer="bob", comment="AUC drop").approval == "rejected"
    events = registry.audit("m")
    assert [e.action for e in events][:2] == ["version.reject", "version.approve"]
    assert (events[1].after["reviewer"], events[1].reason) == ("alice", "gates green")
    before = len(registry.audit("m"))
    for call, error, words in [
        (lambda: registry.approve("m", 1, reviewer="carol"), ConflictError, "already approved"),
        (lambda: registry.approve("m", 3, reviewer="  "), InvalidArgumentError, "reviewer"),
    ]:
        with pytest.raises(error, match=words):
            call()
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.approve("m", 9, reviewer="alice")
    assert len(registry.audit("m")) == before
    assert registry.resolve("models:/m/3").approval == "pending"


def test_an_endpoint_requiring_approval_serves_approved_versions_only(
    settings: Settings, registry: Any
) -> None:
    registry.approve("m", 1, reviewer="alice")
    registry.set_alias("m", "champion", 1)
    stores = registry.stores
    stores.metadata.endpoints.create(
        "m", "models:/m@champion", actor="t", config={"require_approval": True}
    )
    fast = settings.model_copy(
        update={"monitor_interval_seconds": 0.0, "rollout_interval_seconds": 0.0}
    )
    with BackgroundServer(create_server_app(fast, refresh_seconds=0.1, trusted=True)) as srv:
        srv.wait_ready()

        def version() -> int:
            r = httpx.post(f"{srv.url}/endpoints/m/predict", json={"instances": [[0, 0, 0]]})
            return int(r.json()["model_version"])

        assert version() == 1
        registry.set_alias("m", "champion", 3)  # moved to a version nobody approved
        time.sleep(0.8)
        assert version() == 1  # still the approved one
        with pytest.raises(InvalidArgumentError, match="approved versions only"):
            Deployments(stores).canary("m", "m/2")
        registry.approve("m", 3, reviewer="alice")
        deadline = time.monotonic() + 20
        while version() != 3:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    d = Deployments(stores)
    registry.set_alias("m", "champion", 1)
    with pytest.raises(InvalidArgumentError, match=r"rejected|pending"):
        d.canary("m", "m/2")
    d.canary("m", "m/3")
    d.rollback("m", reason="test")
    assert stores.metadata.endpoints.get("m").config["require_approval"] is True
