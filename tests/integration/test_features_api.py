"""`POST /api/features/{view}/push` and `/api/features/online` over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from shipyard.config import Settings
from shipyard.features import Entity, FeatureStore, FeatureView, Source
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer


@pytest.fixture
def server(settings: Settings, tmp_path) -> Iterator[BackgroundServer]:  # type: ignore[no-untyped-def]
    pd.DataFrame(
        {"driver_id": [1], "event_timestamp": [pd.Timestamp("2026-01-01")], "trips": [1]}
    ).to_parquet(tmp_path / "s.parquet")
    driver = Entity("driver", ["driver_id"])
    view = FeatureView(
        "driver_stats",
        entity=driver,
        source=Source.parquet(tmp_path / "s.parquet"),
        features={"trips": "long"},
        ttl=dt.timedelta(days=1),
        default="error",
    )
    FeatureStore(settings).apply([driver, view])
    with BackgroundServer(create_server_app(settings, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        yield srv


def test_push_then_lookup_over_http(server: BackgroundServer) -> None:
    url = f"{server.url}/api/features"
    r = httpx.post(f"{url}/driver_stats/push", json={"rows": [{"driver_id": 7, "trips": 3}]})
    assert r.status_code == 200, r.text
    assert r.json() == {"view": "driver_stats", "rows": 1, "written": 1}
    r = httpx.post(
        f"{url}/online", json={"features": "driver_stats", "entities": [{"driver_id": 7}]}
    )
    assert r.json() == {"trips": [3]}
    listed = httpx.get(url).json()["definitions"]
    assert {d["name"] for d in listed} == {"driver", "driver_stats"}

    bad = httpx.post(f"{url}/driver_stats/push", json={"rows": [{"driver_id": 7, "trips": "x"}]})
    assert bad.status_code == 400 and bad.json()["field"] == "trips"
    assert "is long, got str" in bad.json()["error"]
    bad = httpx.post(f"{url}/driver_stat/push", json={"rows": [{"driver_id": 7, "trips": 1}]})
    assert bad.status_code == 404 and "did you mean 'driver_stats'" in bad.json()["error"]
    bad = httpx.post(f"{url}/driver_stats/push", json={"rows": []})
    assert bad.status_code == 422
    missing = httpx.post(
        f"{url}/online", json={"features": "driver_stats", "entities": [{"driver_id": 8}]}
    )
    assert missing.status_code == 404 and missing.json()["entity"] == "8"
    old = {"driver_id": 7, "trips": 9, "event_timestamp": "2020-01-01T00:00:00Z"}
    assert httpx.post(f"{url}/driver_stats/push", json={"rows": [old]}).json()["written"] == 0
