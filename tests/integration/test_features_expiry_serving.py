"""Expired feature values behind a real HTTP endpoint: served with the view's default and
counted (`shipyard_feature_expired_total`), or refused with a 4xx naming entity and view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from shipyard.config import Settings
from shipyard.features import FeatureStore
from tests.integration.test_features_serving import (  # noqa: F401
    DEFINITIONS,
    NOW,
    serve,
    sqlite_settings,
    train,
    wait_for,
)


def setup(settings: Settings, tmp_path: Path, on_expired: str) -> FeatureStore:
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
    text = DEFINITIONS.replace(
        "default=DEFAULT,", f"default={{'trips': 0, 'rating': 2.5}}, on_expired={on_expired!r},"
    )
    (tmp_path / "defs.py").write_text(text)
    store = FeatureStore(settings)
    for base, objects in load_definitions(tmp_path / "defs.py"):
        store.apply(objects, base_path=base)
    train(store)
    store.materialize()
    old = {
        "driver_id": 777,
        "trips": 9,
        "rating": 4.0,
        "event_timestamp": NOW - pd.Timedelta(days=4),
    }
    store.push("driver_stats", [old])  # ttl is 3 days
    return store


def _predict(srv: Any, driver: int) -> httpx.Response:
    url = f"{srv.url}/endpoints/churn/predict"
    body = {"instances": [{"driver_id": driver, "amount": 3.0}]}
    wait_for(
        lambda: (
            httpx.post(url, json={"instances": [{"driver_id": 1, "amount": 1.0}]}).status_code
            == 200
        )
    )
    return httpx.post(url, json=body)


def test_an_expired_value_is_served_as_default_and_counted(
    sqlite_settings: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    setup(sqlite_settings, tmp_path, "default")
    srv = serve(sqlite_settings)
    try:
        r = _predict(srv, 777)
        assert r.status_code == 200 and set(r.json()) >= {"request_id", "model_version"}
        metrics = httpx.get(f"{srv.url}/metrics").text
        assert 'shipyard_feature_expired_total{endpoint="churn",view="driver_stats"} 1.0' in metrics
    finally:
        srv.__exit__(None, None, None)


def test_a_refusing_view_answers_4xx_naming_entity_and_view(
    sqlite_settings: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    setup(sqlite_settings, tmp_path, "refuse")
    srv = serve(sqlite_settings)
    try:
        r = _predict(srv, 777)
        assert 400 <= r.status_code < 500
        error = r.json()["error"]
        assert "view 'driver_stats'" in error and "entity '777'" in error and "expired" in error
        assert _predict(srv, 12345).status_code == 200  # missing, not expired: the default
    finally:
        srv.__exit__(None, None, None)


def test_an_answer_that_used_expired_values_says_which_rows_in_headers(
    sqlite_settings: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Rows 0 and 2 are the expired entity, row 1 a fresh one: the answer names rows 0 and 2
    of view driver_stats, the same on the direct path, the ASGI way and V2; an answer that
    used no expired value has neither header."""
    setup(sqlite_settings, tmp_path, "default")
    srv = serve(sqlite_settings)
    try:
        _predict(srv, 1)  # waits until the endpoint answers
        drivers, amounts = [777, 1, 777], [3.0, 4.0, 5.0]
        rows = [{"driver_id": d, "amount": a} for d, a in zip(drivers, amounts, strict=True)]
        plain = {"instances": rows}
        per_tensor = {
            "inputs": [
                {"name": "driver_id", "shape": [3], "datatype": "INT64", "data": drivers},
                {"name": "amount", "shape": [3], "datatype": "FP64", "data": amounts},
            ]
        }
        asked = {
            "direct": ("/endpoints/churn/predict", plain),
            "asgi": ("/endpoints/churn/predict?via=asgi", plain),
            "v2": ("/v2/models/churn/infer", per_tensor),
            "v2 asgi": ("/v2/models/churn/infer?via=asgi", per_tensor),
        }
        for way, (path, body) in asked.items():
            r = httpx.post(f"{srv.url}{path}", json=body)
            assert r.status_code == 200, (way, r.text)
            assert r.headers.get("x-shipyard-expired-rows") == "2", way
            assert r.headers.get("x-shipyard-expired-features") == "driver_stats=0,2", way
        fresh = httpx.post(
            f"{srv.url}/endpoints/churn/predict",
            json={"instances": [{"driver_id": 1, "amount": 3.0}]},
        )
        assert fresh.status_code == 200
        assert "x-shipyard-expired-rows" not in fresh.headers
        assert "x-shipyard-expired-features" not in fresh.headers
    finally:
        srv.__exit__(None, None, None)
