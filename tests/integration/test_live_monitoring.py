"""`shipyard server` watches its endpoints: live traffic from the prediction log against the
training profile of the served version, as JSON and as Prometheus gauges."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer


@pytest.fixture
def db_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'meta.db'}"


def test_drifted_traffic_shows_up_in_the_api_and_the_metrics(
    settings: Settings, breast_cancer, logreg
) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    with sy.start_run(experiment="live") as run:
        run.log_dataset(X, name="train")
        mv = run.log_model(logreg, name="churn", input_example=X[:5])
    sy.set_alias("churn", "champion", mv.version)
    from shipyard.stores import open_stores

    open_stores(settings).metadata.endpoints.create("churn", "models:/churn@champion", actor="t")
    fast = settings.model_copy(
        update={"predlog_flush_seconds": 0.1, "monitor_interval_seconds": 0.0}
    )
    rng = np.random.default_rng(0)
    live = X.sample(400, replace=True, random_state=0).reset_index(drop=True)
    live["mean radius"] = live["mean radius"] * 1.3  # drift in one feature
    live["worst area"] = live["worst area"] + rng.normal(0, 1, len(live))  # noise, no drift
    with BackgroundServer(create_server_app(fast, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        for start in range(0, 400, 40):
            r = httpx.post(
                f"{srv.url}/endpoints/churn/predict",
                json={"instances": live.iloc[start : start + 40].to_dict(orient="records")},
            )
            assert r.status_code == 200
        time.sleep(0.5)  # the prediction log flushes every 0.1 s
        doc = httpx.post(f"{srv.url}/api/monitoring/churn/evaluate").json()
        metrics = httpx.get(f"{srv.url}/metrics").text
    assert doc["error"] is None and doc["rows"] == 400 and doc["model_version"] == 1
    assert "mean radius" in doc["drift"]["drifted_columns"]
    assert "worst area" not in doc["drift"]["drifted_columns"]
    assert doc["quality"]["columns"]["mean radius"]["out_of_range"] > 0
    assert 'shipyard_feature_drifted{endpoint="churn",feature="mean radius"} 1.0' in metrics
    assert 'shipyard_feature_drift_score{endpoint="churn",feature="mean radius"}' in metrics
    assert 'shipyard_data_quality_violations{endpoint="churn",feature="mean radius"}' in metrics
    assert 'shipyard_monitored_rows{endpoint="churn"} 400.0' in metrics


def test_prediction_and_label_drift_against_the_recorded_reference(
    settings: Settings,
    breast_cancer,
    logreg,  # type: ignore[no-untyped-def]
) -> None:
    X, y = breast_cancer
    with sy.start_run(experiment="live") as run:
        mv = run.log_model(
            logreg, name="churn", input_example=X[:5], reference_data=X, reference_target=y
        )
    assert mv.tags["reference_profile"]
    sy.set_alias("churn", "champion", mv.version)
    from shipyard.stores import open_stores

    open_stores(settings).metadata.endpoints.create("churn", "models:/churn@champion", actor="t")
    fast = settings.model_copy(
        update={"predlog_flush_seconds": 0.1, "monitor_interval_seconds": 0.0}
    )
    # traffic from one class only: the features shift a little, the predictions a lot
    malignant = X[y == 0].sample(300, replace=True, random_state=1)
    with BackgroundServer(create_server_app(fast, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        for start in range(0, 300, 30):
            r = httpx.post(
                f"{srv.url}/endpoints/churn/predict",
                json={"instances": malignant.iloc[start : start + 30].to_dict(orient="records")},
            )
            rid = r.json()["request_id"]
            httpx.post(
                f"{srv.url}/endpoints/churn/feedback", json={"request_id": rid, "labels": [0] * 30}
            )
        time.sleep(0.5)
        doc = httpx.post(f"{srv.url}/api/monitoring/churn/evaluate").json()
    assert doc["error"] is None
    columns = doc["drift"]["columns"]
    assert columns["_prediction"]["drifted"] and columns["_label"]["drifted"]
    assert columns["_label"]["current_rows"] == 300
    assert doc["accuracy"]["overall"]["n"] == 300
