"""The /api routes the registry's pages read, called as functions: the models' summary, a
version's gate reports, lineage (datasets → run → version → endpoints, optimization parent and
children) and environment lock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.responses import Response

import shipyard as sy
from shipyard.config import get_settings
from shipyard.errors import NotFoundError
from shipyard.registry import Registry
from shipyard.server.plane import ControlPlane
from shipyard.server.routes import models
from shipyard.stores import open_stores


@pytest.fixture
def plane(tmp_home: Path) -> ControlPlane:
    settings = get_settings()
    stores = open_stores(settings)
    return ControlPlane(settings, stores, Registry(stores), None, None)  # type: ignore[arg-type]


def body(response: Response) -> Any:
    return orjson.loads(bytes(response.body))


@pytest.fixture
def churn(plane: ControlPlane) -> str:
    """Model churn: version 1 from a run that logged a dataset, version 2 tagged as optimized
    from 1 (as `models optimize` tags it), version 1 approved."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    y = (X["a"] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    with sy.start_run(experiment="churn") as run:
        run.log_dataset(X, name="train")
        run.log_model(model, name="churn", input_example=X[:5], onnx=False)
    plane.registry.register("churn", model, input_example=X[:5], onnx=False)
    edits = plane.stores.metadata.models
    for key, value in (("optimize_parent", "1"), ("optimize_technique", "prune")):
        edits.set_version_tag("churn", 2, key, value, actor="tester")
    edits.set_version_tag("churn", 2, "optimize_source_run", run.id, actor="tester")
    plane.registry.approve("churn", 1, reviewer="ann")
    return run.id


def test_the_summary_gives_each_model_its_latest_version_and_approvals(
    plane: ControlPlane, churn: str
) -> None:
    plain = body(models.list_models(plane, summary=False))["models"]
    assert "latest" not in plain[0]
    (doc,) = body(models.list_models(plane, summary=True))["models"]
    assert doc["name"] == "churn"
    assert doc["latest"]["version"] == 2
    assert doc["latest"]["approval"] == "pending"
    assert doc["approvals"] == {"approved": 1, "pending": 1}


def test_lineage_goes_from_the_dataset_to_the_endpoints(plane: ControlPlane, churn: str) -> None:
    plane.registry.set_alias("churn", "champion", 1)
    plane.deployments.create("live", "models:/churn@champion")
    plane.deployments.create("pinned", "models:/churn/1")
    plane.deployments.create("newest", "models:/churn/latest")
    one = body(models.version_lineage("churn", 1, plane))
    assert one["run"]["id"] == churn and one["run"]["experiment"] == "churn"
    assert one["run_via"] is None
    assert [(d["name"], d["role"], d["rows"]) for d in one["datasets"]] == [("train", "train", 60)]
    assert one["parent"] is None
    assert one["children"] == [{"version": 2, "technique": "prune"}]
    assert {e["name"]: e["roles"] for e in one["endpoints"]} == {
        "live": ["serves via @champion"],
        "pinned": ["serves"],
    }
    two = body(models.version_lineage("churn", 2, plane))
    assert two["run"]["id"] == churn and two["run_via"] == "parent"
    assert two["parent"] == {
        "version": 1,
        "technique": "prune",
        "exists": True,
        "approval": "approved",
    }
    assert [e["name"] for e in two["endpoints"]] == ["newest"]
    with pytest.raises(NotFoundError):
        models.version_lineage("churn", 9, plane)


def test_gate_reports_are_listed_newest_first_and_empty_before_any(
    plane: ControlPlane, churn: str
) -> None:
    assert body(models.list_gate_reports("churn", 1, plane)) == {"reports": []}
    plane.registry.record_gate_report("churn", 1, {"gates": []}, passed=False)
    plane.registry.record_gate_report("churn", 1, {"gates": []}, passed=True)
    reports = body(models.list_gate_reports("churn", 1, plane))["reports"]
    assert [r["passed"] for r in reports] == [True, False]
    with pytest.raises(NotFoundError):
        models.list_gate_reports("nope", 1, plane)


def test_the_environment_is_the_lock_and_its_differences_here(
    plane: ControlPlane, churn: str
) -> None:
    doc = body(models.version_environment("churn", 1, plane))
    assert "scikit-learn" in doc["packages"]
    assert "scikit-learn" in doc["framework"]
    assert doc["differences"] == []  # saved by this very environment


def test_the_model_summary_gives_each_version_its_latest_gate_result(
    plane: ControlPlane, churn: str
) -> None:
    plane.registry.record_gate_report("churn", 1, {"gates": []}, passed=True)
    plane.registry.record_gate_report("churn", 1, {"gates": []}, passed=False)
    plain = body(models.get_model("churn", plane, summary=False))["versions"]
    assert "gate" not in plain[0]
    versions = body(models.get_model("churn", plane, summary=True))["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["gate"]["passed"] is False  # the latest report decides
    assert versions[1]["gate"] is None
