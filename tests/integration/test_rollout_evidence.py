"""What a rollout's verdict rests on, over real HTTP with real scikit-learn regressors
(issue #15): a candidate that predicts differently is not rolled back for it, no verdict comes
before a step's minimums, a shadow agrees within a numeric tolerance and is held to the
canary's thresholds, and A/B outcomes and late labels travel side by side through /feedback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.rollout import Controller, Deployments
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from tests.helpers import wait_for


@pytest.fixture(scope="module")
def diabetes() -> Any:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture
def stores(settings: Settings, diabetes: Any) -> Any:  # type: ignore[override]
    """Endpoint `d` on version 1 (Ridge); 2 a genuinely different model (its predictions sit
    far from stable's), 3 nearly the same model (within 1 % of stable's answers)."""
    from sklearn.linear_model import Ridge

    from shipyard.stores import open_stores

    X, y = diabetes
    stable = Ridge(alpha=0.1).fit(X, y)
    different = Ridge(alpha=0.1).fit(X, 1.6 * y + 80)
    close = Ridge(alpha=0.1).fit(X, y * 1.005)
    for model in (stable, different, close):
        sy.Registry(open_stores(settings)).register("d", model, input_example=X[:5], onnx=False)
    sy.set_alias("d", "champion", 1)
    stores = open_stores(settings)
    stores.metadata.endpoints.create("d", "models:/d@champion", actor="t")
    return stores


def fast(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "predlog_flush_seconds": 0.05,
            "monitor_interval_seconds": 0.0,
            "rollout_interval_seconds": 0.0,
        }
    )


@pytest.fixture
def server(settings: Settings, stores: Any) -> Iterator[BackgroundServer]:
    app = create_server_app(fast(settings), refresh_seconds=0.1, trusted=True)
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        yield srv


def rows(diabetes: Any, i: int, n: int = 5) -> list[dict[str, float]]:
    X, _ = diabetes
    start = (i * n) % (len(X) - n)
    return list(X.iloc[start : start + n].to_dict(orient="records"))


def serves(srv: BackgroundServer, diabetes: Any, version: int, variant_of: str = "d") -> bool:
    return any(
        httpx.post(
            f"{srv.url}/endpoints/{variant_of}/predict", json={"instances": rows(diabetes, i)}
        )
        .json()
        .get("model_version")
        == version
        for i in range(20)
    )


def deploy(*args: str) -> str:
    """`shipyard deploy …` in this process (on the settings' database, from the environment)."""
    from typer.testing import CliRunner

    from shipyard.cli.deploy import app

    out = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert out.exit_code == 0, out.output
    return out.output


def test_a_different_canary_is_judged_after_its_minimums_not_rolled_back_for_differing(
    server: BackgroundServer, settings: Settings, stores: Any, diabetes: Any
) -> None:
    """Before: the default prediction-shift check (wasserstein_std 0.2 vs stable) rolled the
    candidate back as soon as 20 rows of each were logged, long before the step's minimum
    requests and seconds. Now: no verdict before them; then the step passes on errors and
    latency, and the shift is a warning in the evidence."""
    Deployments(stores).canary(
        "d", "d/2", steps=[50, 100], min_requests=30, min_seconds=6, auto=True
    )
    started = time.monotonic()
    wait_for(lambda: serves(server, diabetes, 2))
    controller = Controller(fast(settings), stores)
    with httpx.Client(base_url=server.url) as client:
        for i in range(40):
            assert (
                client.post(
                    "/endpoints/d/predict", json={"instances": rows(diabetes, i)}
                ).status_code
                == 200
            )
        early = wait_for(
            lambda: (
                (v := controller.tick("d")) is not None
                and v.evidence.get("prediction_test") is not None
                and v
            )
        )
        assert time.monotonic() - started < 6, "too slow to see the step before its minimums"
        assert early.action == "hold", early.reason  # before: rollback, "predictions differ"
        assert early.evidence["prediction_test"]["effect_size"] > 0.2  # it does differ
        assert stores.metadata.endpoints.get("d").policy == "canary"
        assert "warning: candidate predictions differ from stable" in deploy("status", "d")
        while controller.tick("d").action == "hold":  # type: ignore[union-attr]
            client.post("/endpoints/d/predict", json={"instances": rows(diabetes, 7)})
            time.sleep(0.2)
    after = stores.metadata.endpoints.get("d")
    assert after.policy == "canary" and after.config["weight"] == 100  # the step passed
    step = next(e for e in Deployments(stores).history("d") if e.action == "rollout.step")
    (warning,) = step.after["evidence"]["warnings"]
    assert "candidate predictions differ from stable" in warning and "reported only" in warning


def test_a_canary_opting_in_to_the_shift_check_rolls_back_after_its_minimums(
    server: BackgroundServer, settings: Settings, stores: Any, diabetes: Any
) -> None:
    deploy(
        "canary", "d", "--model", "d/2", "--steps", "50,100", "--min-requests", "10",
        "--min-seconds", "0", "--max-prediction-shift", "0.3", "--auto",
    )  # fmt: skip
    assert stores.metadata.endpoints.get("d").config["thresholds"]["max_prediction_shift"] == 0.3
    wait_for(lambda: serves(server, diabetes, 2))
    controller = Controller(fast(settings), stores)
    with httpx.Client(base_url=server.url) as client:
        for i in range(40):
            client.post("/endpoints/d/predict", json={"instances": rows(diabetes, i)})
        verdict = wait_for(
            lambda: (v := controller.tick("d")) is not None and v.action != "hold" and v
        )
    assert verdict.action == "rollback" and "predictions differ" in verdict.reason


def test_a_regression_shadow_agrees_within_a_tolerance_and_is_promoted(
    server: BackgroundServer, settings: Settings, stores: Any, diabetes: Any
) -> None:
    """Before: agreement was exact string equality, 0.0 for any regression model, so a shadow
    within 1 % of stable was never promoted."""
    deploy("shadow", "d", "--model", "d/3", "--min-requests", "30", "--auto")
    table = server.app.dataplane.table
    wait_for(lambda: (c := table.candidate("d")) is not None and c.ready)
    time.sleep(0.3)  # the server applies the shadow policy
    with httpx.Client(base_url=server.url) as client:
        for i in range(40):
            client.post("/endpoints/d/predict", json={"instances": rows(diabetes, i)})
        verdict = wait_for(
            lambda: (
                (v := Controller(fast(settings), stores).tick("d")) is not None
                and v.action != "hold"
                and v
            )
        )
    assert verdict.evidence["agreement"] == 1.0
    assert verdict.action == "promote", verdict.reason
    assert stores.metadata.models.resolve_alias("d", "champion") == 3


def test_deploy_shadow_takes_the_canarys_thresholds_and_the_controller_applies_them(
    server: BackgroundServer, settings: Settings, stores: Any, diabetes: Any
) -> None:
    """Before: `deploy shadow` had no --threshold, --min-seconds or tolerance options."""
    deploy(
        "shadow", "d", "--model", "d/2", "--min-requests", "20", "--min-seconds", "0",
        "--rtol", "0.5", "--atol", "5", "-t", "max_error_rate_delta=0.01",
        "--max-prediction-shift", "0.3", "--auto",
    )  # fmt: skip
    config = stores.metadata.endpoints.get("d").config
    assert config["thresholds"]["max_error_rate_delta"] == 0.01
    assert (config["agreement_rtol"], config["agreement_atol"]) == (0.5, 5.0)
    table = server.app.dataplane.table
    wait_for(lambda: (c := table.candidate("d")) is not None and c.ready)
    time.sleep(0.3)
    with httpx.Client(base_url=server.url) as client:
        for i in range(30):
            client.post("/endpoints/d/predict", json={"instances": rows(diabetes, i)})
        verdict = wait_for(
            lambda: (
                (v := Controller(fast(settings), stores).tick("d")) is not None
                and v.action != "hold"
                and v
            )
        )
    assert verdict.action == "rollback" and "shadow predictions differ" in verdict.reason
    assert stores.metadata.models.resolve_alias("d", "champion") == 1


def test_one_endpoint_has_live_accuracy_from_labels_and_an_ab_test_on_outcomes(
    server: BackgroundServer, settings: Settings, stores: Any, diabetes: Any
) -> None:
    """Before: A/B outcomes and late labels shared `label`: an endpoint whose callers sent
    both could have one or the other. Now `outcome` has its own field and store."""
    from shipyard.monitoring.performance import join_labels, score
    from shipyard.monitoring.sources import endpoint_labels, endpoint_window

    Deployments(stores).ab("d", "d/2", split=50, min_samples=40, auto=True)
    wait_for(
        lambda: any(
            httpx.post(
                f"{server.url}/endpoints/d/predict",
                json={"instances": rows(diabetes, i, 1), "key": f"k{i}"},
            )
            .json()
            .get("model_version")
            == 2
            for i in range(40)
        )
    )
    _, y = diabetes
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=server.url) as client:
        for i in range(200):
            r = client.post(
                "/endpoints/d/predict", json={"instances": rows(diabetes, i, 1), "key": f"u{i}"}
            ).json()
            rate = 0.7 if r["model_version"] == 2 else 0.2  # the candidate's users convert more
            label = float(y.iloc[i % (len(y) - 1)])  # the true target of that row
            sent = client.post(
                "/endpoints/d/feedback",
                json={
                    "request_id": r["request_id"],
                    "label": label,
                    "outcome": int(rng.random() < rate),
                },
            )
            assert sent.status_code == 202, sent.text
        bad = client.post(
            "/endpoints/d/feedback", json={"request_id": r["request_id"], "outcome": "yes"}
        )
        assert bad.status_code == 400 and bad.json()["field"] == "outcome"
        verdict = wait_for(
            lambda: (
                (v := Controller(fast(settings), stores).tick("d")) is not None
                and v.action != "hold"
                and v
            )
        )
    assert verdict.action == "promote", verdict.reason
    assert verdict.evidence["ab_test"]["test"] == "two_proportion_z"
    labels = endpoint_labels(settings, "d")
    accuracy = score(join_labels(endpoint_window(settings, "d", 3600), labels))
    assert accuracy["task"] == "regression" and accuracy["labelled_rows"] >= 200
    assert accuracy["overall"]["mae"] > 1  # real targets, not the 0/1 outcomes
    assert set(labels["_label"]) - {"0", "1"}
