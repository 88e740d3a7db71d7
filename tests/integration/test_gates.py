"""Quality gates: evaluated on held-out data against the champion, stored with the version,
and enforced on aliases and deployments unless overridden with an audited reason."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import GateBlockedError, InvalidArgumentError
from shipyard.pipelines import gates
from shipyard.rollout import Deployments
from shipyard.stores import open_stores


@pytest.fixture
def holdout(breast_cancer) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    X, y = breast_cancer
    df = X.copy()
    df["label"] = y
    df["group"] = np.where(np.arange(len(df)) % 2 == 0, "a", "b")
    return df


@pytest.fixture
def registry(settings: Settings, breast_cancer, logreg) -> Any:  # type: ignore[no-untyped-def]
    """v1 = good (champion), v2 = a model trained on shuffled labels (bad), v3 = good."""
    from sklearn.base import clone

    X, y = breast_cancer
    bad = clone(logreg).fit(X, np.random.default_rng(0).permutation(y.to_numpy()))
    reg = sy.Registry(open_stores(settings))
    for model in (logreg, bad, logreg):
        reg.register("bc", model, input_example=X[:5], onnx=False)
    reg.set_alias("bc", "champion", 1)
    gates.configure(
        "bc",
        [
            gates.MetricGate("roc_auc", max_drop=0.01),
            gates.MinSamples(100),
            gates.LatencyGate(p99_ms=1000.0),
            gates.FairnessGate("group", "demographic_parity_ratio", min_ratio=0.5),
        ],
        settings=settings,
    )
    return reg


def test_a_worse_version_fails_and_cannot_get_an_alias_without_an_override(
    settings: Settings, registry: Any, holdout: pd.DataFrame
) -> None:
    report = gates.check("bc", 2, holdout, target="label", settings=settings)
    assert not report.passed and report.champion == 1
    failed = {g.name: g for g in report.failed}
    assert list(failed) == ["roc_auc vs champion"]
    gate = failed["roc_auc vs champion"]
    assert gate.value < 0.8 and gate.threshold == pytest.approx(
        report.metrics["champion@champion"]["roc_auc"] - 0.01
    )
    stored = registry.gate_report("bc", 2)
    assert stored is not None and not stored.passed
    assert stored.report["gates"][0]["name"] == "roc_auc vs champion"

    with pytest.raises(GateBlockedError, match=r"failed its quality gates \(roc_auc vs champion\)"):
        registry.set_alias("bc", "champion", 2)
    assert registry.resolve("models:/bc@champion").version == 1  # untouched
    registry.set_alias("bc", "champion", 2, override_gates="incident 42: roll forward anyway")
    assert registry.resolve("models:/bc@champion").version == 2
    events = registry.stores.metadata.audit.list(limit=50)
    override = next(e for e in events if e.action == "gate.override")
    assert override.subject == "bc/2" and override.reason == "incident 42: roll forward anyway"


def test_a_passing_version_gets_its_alias_and_a_version_without_a_report_is_blocked(
    settings: Settings, registry: Any, holdout: pd.DataFrame
) -> None:
    with pytest.raises(GateBlockedError, match="has no gate report"):
        registry.set_alias("bc", "challenger", 3)
    report = gates.check("bc", 3, holdout, target="label", settings=settings)
    assert report.passed, report.to_dict()
    assert report.latency_ms["p99"] > 0 and report.rows == len(holdout)
    fairness = next(g for g in report.gates if g.kind == "fairness")
    assert 0.5 <= fairness.value <= 1.0
    registry.set_alias("bc", "challenger", 3)
    assert registry.resolve("models:/bc@challenger").version == 3
    # a later failing report wins: the latest report counts
    strict = [gates.LatencyGate(p99_ms=1e-6)]
    assert not gates.check("bc", 3, holdout, target="label", gates=strict, settings=settings).passed
    with pytest.raises(GateBlockedError, match="latency p99"):
        registry.set_alias("bc", "other", 3)


def test_deployments_respect_gates_and_an_override_carries_to_promotion(
    settings: Settings, registry: Any, holdout: pd.DataFrame
) -> None:
    deployments = Deployments(registry.stores)
    deployments.create("bc", "models:/bc@champion")  # v1 is the champion (set before gates)
    with pytest.raises(GateBlockedError, match="no gate report"):
        deployments.create("pinned", "models:/bc/2")
    gates.check("bc", 2, holdout, target="label", settings=settings)
    with pytest.raises(GateBlockedError, match="canary on 'bc' refused"):
        deployments.canary("bc", "models:/bc/2")
    assert registry.stores.metadata.endpoints.get("bc").policy == "single"
    deployments.canary("bc", "models:/bc/2", override_gates="hotfix")
    deployments.promote("bc", reason="looks fine")
    assert registry.resolve("models:/bc@champion").version == 2


def test_gate_definitions_are_validated(settings: Settings, registry: Any, holdout) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match="unknown metric 'auc'"):
        gates.MetricGate("auc")
    with pytest.raises(InvalidArgumentError, match="unknown gate kind 'speed'"):
        gates.configure("bc", [{"kind": "speed"}], settings=settings)
    with pytest.raises(InvalidArgumentError, match="target column 'churn' is not in the data"):
        gates.check("bc", 3, holdout, target="churn", settings=settings)
    with pytest.raises(InvalidArgumentError, match="sensitive column 'sex'"):
        gates.check(
            "bc",
            3,
            holdout,
            target="label",
            gates=[gates.FairnessGate("sex")],
            settings=settings,
        )
    assert len(registry.gates("bc")) == 4  # nothing half-written


def test_gates_over_the_control_plane_api(
    settings: Settings, registry: Any, holdout: pd.DataFrame
) -> None:
    import httpx

    from shipyard.server.app import create_server_app
    from shipyard.serving.http import BackgroundServer

    gates.check("bc", 2, holdout, target="label", settings=settings)
    with BackgroundServer(create_server_app(settings, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            assert len(http.get("/api/models/bc/gates").json()["gates"]) == 4
            report = http.get("/api/models/bc/versions/2/gate-report").json()
            assert report["passed"] is False and report["version"] == 2
            missing = http.get("/api/models/bc/versions/3/gate-report")
            assert missing.status_code == 404 and "no gate report" in missing.json()["error"]
            blocked = http.put("/api/models/bc/aliases/champion", json={"version": 2})
            assert blocked.status_code == 409
            assert "roc_auc vs champion" in blocked.json()["error"]
            assert registry.resolve("models:/bc@champion").version == 1
            forced = http.put(
                "/api/models/bc/aliases/champion",
                json={"version": 2, "override_gates": "known regression, accepted"},
            )
            assert forced.status_code == 200, forced.text
            bad = http.put(
                "/api/models/bc/gates", json={"gates": [{"kind": "metric", "metric": "x"}]}
            )
            assert bad.status_code == 400 and "unknown metric 'x'" in bad.json()["error"]
            assert len(registry.gates("bc")) == 4
            cleared = http.put("/api/models/bc/gates", json={"gates": []})
            assert cleared.json()["gates"] == [] and registry.gates("bc") == []
