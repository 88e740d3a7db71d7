"""An endpoint whose model version names a FeatureService, over real HTTP: requests carry
only entity keys and request fields; features come from the online store (SQLite, Redis)
with on-demand features computed as in training; missing entities get the default or a 404;
a down Redis answers quickly with defaults, counted."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import shipyard as sy
from shipyard.config import Settings, reset_settings
from shipyard.features import FeatureStore
from shipyard.server.app import create_server_app
from shipyard.serving.features import CircuitBreaker
from shipyard.serving.http import BackgroundServer
from tests.helpers import wait_for

NOW = pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)


DEFINITIONS = """
import datetime as dt
import pandas as pd
from shipyard.features import Entity, FeatureService, FeatureView, Source, on_demand

driver = Entity("driver", ["driver_id"])
stats = FeatureView(
    "driver_stats",
    entity=driver,
    source=Source.parquet("stats.parquet"),
    features={"trips": "long", "rating": "double"},
    ttl=dt.timedelta(days=3),
    default=DEFAULT,
)


@on_demand(sources=[stats], request={"amount": "double"}, features={"per_trip": "double"})
def per_trip(df):
    return pd.DataFrame({"per_trip": df["amount"] / df["trips"].clip(lower=1)})


churn = FeatureService("churn", features=[stats, per_trip])
"""


def setup_features(settings: Settings, tmp_path: Path, default: Any) -> FeatureStore:
    """Definitions in a file, as a user writes them: the server re-imports the on-demand
    function from it."""
    from shipyard.features import load_definitions

    rng = np.random.default_rng(0)
    n = 400
    pd.DataFrame(
        {
            "driver_id": rng.integers(0, 40, n),
            "event_timestamp": NOW - pd.to_timedelta(rng.integers(1, 48 * 3600, n), unit="s"),
            "trips": rng.integers(0, 100, n),
            "rating": rng.random(n) * 5,
        }
    ).to_parquet(tmp_path / "stats.parquet")
    (tmp_path / "defs.py").write_text(DEFINITIONS.replace("DEFAULT", repr(default)))
    store = FeatureStore(settings)
    for base, objects in load_definitions(tmp_path / "defs.py"):
        store.apply(objects, base_path=base)
    return store


def train(store: FeatureStore) -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    events = pd.DataFrame(
        {
            "driver_id": rng.integers(0, 40, 300),
            "event_timestamp": NOW - pd.to_timedelta(rng.integers(0, 24 * 3600, 300), unit="s"),
            "amount": rng.random(300) * 100,
        }
    )
    frame = store.get_training_frame(events, "churn")
    X = frame[["trips", "rating", "per_trip"]].astype("float64").fillna(0.0)
    y = (X["per_trip"] > X["per_trip"].median()).astype(int)
    model = LogisticRegression(max_iter=500).fit(X, y)
    with sy.start_run(experiment="features") as run:
        run.log_model(model, name="churn", input_example=X[:5], tags={"feature_service": "churn"})
    sy.set_alias("churn", "champion", 1)
    return model


def serve(settings: Settings) -> BackgroundServer:
    from shipyard.stores import open_stores

    open_stores(settings).metadata.endpoints.create(
        "churn", "models:/churn@champion", actor="tester"
    )
    srv = BackgroundServer(create_server_app(settings, refresh_seconds=0.2))
    srv.__enter__()
    srv.wait_ready()
    return srv


@pytest.fixture
def sqlite_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    reset_settings()
    return Settings(home=home, user="tester")


def test_endpoint_fetches_features_like_training(sqlite_settings: Settings, tmp_path: Path) -> None:
    store = setup_features(sqlite_settings, tmp_path, default={"trips": 0, "rating": 2.5})
    model = train(store)
    store.materialize()
    srv = serve(sqlite_settings)
    try:
        rows = [{"driver_id": d, "amount": 30.0 + d} for d in (1, 2, 3, 999)]
        body = {"instances": rows, "probabilities": True}
        url = f"{srv.url}/endpoints/churn/predict"
        r = wait_for(lambda: (r := httpx.post(url, json=body)).status_code == 200 and r, 30)
        # the same features training sees for "now", through the same code
        offline = store.get_training_frame(
            pd.DataFrame(rows).assign(event_timestamp=pd.Timestamp.now(tz="UTC")), "churn"
        )
        X = offline[["trips", "rating", "per_trip"]].astype("float64")
        assert X.iloc[3].tolist() == [0.0, 2.5, pytest.approx(1029.0)]  # the default
        want = model.predict_proba(X)[:, 1]
        got = [p[1] for p in r.json()["probabilities"]]
        assert got == pytest.approx(want, rel=1e-5)
        # a request that still sends model features is told what the endpoint takes
        bad = httpx.post(url, json={"instances": [{"driver_id": 1}]})
        assert bad.status_code == 422 and "amount" in bad.json()["error"]
        meta = httpx.get(f"{srv.url}/v2/models/churn").json()
        assert {i["name"] for i in meta["inputs"]} == {"driver_id", "amount"}
        # the V2 protocol, one tensor per input: the features are fetched all the same
        v2 = {
            "inputs": [
                {"name": "driver_id", "shape": [2], "datatype": "INT64", "data": [1, 2]},
                {"name": "amount", "shape": [2], "datatype": "FP64", "data": [31.0, 32.0]},
            ]
        }
        r2 = httpx.post(f"{srv.url}/v2/models/churn/infer", json=v2)
        assert r2.status_code == 200, r2.text
        labels = next(o for o in r2.json()["outputs"] if o["name"] == "predict")["data"]
        assert labels == model.predict(X.iloc[:2]).tolist()
    finally:
        srv.__exit__(None, None, None)


def test_missing_entity_is_a_404_when_the_view_says_error(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    store = setup_features(sqlite_settings, tmp_path, default="error")
    train(store)
    store.materialize()
    srv = serve(sqlite_settings)
    try:
        url = f"{srv.url}/endpoints/churn/predict"
        ok = {"instances": [{"driver_id": 1, "amount": 3.0}]}
        wait_for(lambda: httpx.post(url, json=ok).status_code == 200, 30)
        r = httpx.post(url, json={"instances": [{"driver_id": 12345, "amount": 3.0}]})
        assert r.status_code == 404
        assert "no online features of view 'driver_stats' for entity '12345'" in r.json()["error"]
    finally:
        srv.__exit__(None, None, None)


@pytest.mark.redis
def test_redis_online_store_and_a_down_redis_falls_back_fast(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url_env = os.environ.get("SHIPYARD_TEST_REDIS_URL")
    if not url_env:
        pytest.skip(
            "SHIPYARD_TEST_REDIS_URL is not set (CI sets it; e.g. redis://127.0.0.1:6379/0)"
        )
    home = sqlite_settings.home
    live = Settings(home=home, user="tester", redis_url=url_env)
    store = setup_features(live, tmp_path, default={"trips": 0, "rating": 2.5})
    train(store)
    store.online.drop("driver_stats@1")
    store.materialize()
    body = {"instances": [{"driver_id": 1, "amount": 3.0}]}
    monkeypatch.setenv("SHIPYARD_REDIS_URL", url_env)
    reset_settings()
    srv = serve(live)
    try:
        url = f"{srv.url}/endpoints/churn/predict"
        wait_for(lambda: httpx.post(url, json=body).status_code == 200, 30)
    finally:
        srv.__exit__(None, None, None)
        store.online.drop("driver_stats@1")
    # the same endpoint with Redis down: answered fast with defaults, and counted
    down = Settings(home=home, user="tester", redis_url="redis://127.0.0.1:1/0")
    monkeypatch.setenv("SHIPYARD_REDIS_URL", "redis://127.0.0.1:1/0")
    reset_settings()
    from shipyard.stores import close_all

    close_all()
    with BackgroundServer(create_server_app(down, refresh_seconds=0.2)) as srv2:
        srv2.wait_ready()
        url = f"{srv2.url}/endpoints/churn/predict"
        wait_for(lambda: httpx.post(url, json=body).status_code == 200, 30)
        t0 = time.perf_counter()
        for _ in range(10):
            assert httpx.post(url, json=body).status_code == 200
        assert (time.perf_counter() - t0) / 10 < 0.5
        metrics = httpx.get(f"{srv2.url}/metrics").text
        assert 'shipyard_feature_fallbacks_total{endpoint="churn",reason="circuit_open"}' in metrics
        assert 'reason="unavailable"' in metrics


def test_circuit_breaker_opens_and_half_opens() -> None:
    breaker = CircuitBreaker(failures=2, reset_seconds=0.1)
    assert breaker.allow()
    breaker.failure()
    assert breaker.allow() and breaker.state == "closed"
    breaker.failure()
    assert not breaker.allow() and breaker.state == "open"
    time.sleep(0.12)
    assert breaker.allow()  # one trial
    assert not breaker.allow()
    breaker.success()
    assert breaker.allow() and breaker.state == "closed"


def test_an_endpoint_follows_a_new_view_version_once_it_is_materialized(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    from shipyard.features import FeatureView, load_definitions
    from shipyard.flavors.signature import ColumnSpec, Signature
    from shipyard.serving.features import FeatureFetcher, materialized_plan

    store = setup_features(sqlite_settings, tmp_path, default={"trips": 0})
    store.materialize()
    store.push("driver_stats", [{"driver_id": 1, "trips": 10, "rating": 1.0}])
    model_sig = Signature((ColumnSpec("trips", "double"), ColumnSpec("per_trip", "double")))
    calls: list[int] = []

    def refresh() -> Any:
        calls.append(1)
        return materialized_plan(store, "churn")

    store.registry_ttl_seconds = 0
    fetcher = FeatureFetcher(
        store.online_plan("churn"), store.online, model_sig, refresh=refresh, refresh_seconds=0
    )
    request = {"driver_id": np.array([1]), "amount": np.array([20.0])}
    assert fetcher.enrich(request)["trips"].tolist() == [10.0]
    # a schema change: version 2 of the view, not materialized yet -> still version 1
    (_, objs), *_ = load_definitions(tmp_path / "defs.py")
    stats = next(o for o in objs if isinstance(o, FeatureView))
    import dataclasses

    v2 = FeatureView(
        **{
            **{f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)},
            "features": {"trips": "long", "rating": "double", "extra": "double"},
            "source": source_with_extra(tmp_path),
        }
    )
    store.apply([v2])
    assert fetcher.enrich(request)["trips"].tolist() == [10.0]
    store.materialize()
    store.push("driver_stats", [{"driver_id": 1, "trips": 40, "rating": 1.0, "extra": 0.5}])
    got = fetcher.enrich(request)
    assert got["trips"].tolist() == [40.0] and got["per_trip"].tolist() == [0.5]
    assert len(calls) >= 3


def source_with_extra(tmp_path: Path) -> Any:
    from shipyard.features import Source

    frame = pd.read_parquet(tmp_path / "stats.parquet").assign(extra=1.0)
    frame.to_parquet(tmp_path / "stats2.parquet")
    return Source.parquet(tmp_path / "stats2.parquet")
