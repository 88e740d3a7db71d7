"""What first users of the feature store hit (issue #15), on SQLite and on a real Redis:
expired values are flagged (and may be refused), the materialization mark is per online
store, and a missing redis package gives the install hint everywhere."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard.config import Settings
from shipyard.errors import MissingDependencyError, NotFoundError
from shipyard.features import FeatureStore
from shipyard.stores.online import RedisOnlineStore, SqliteOnlineStore
from tests.integration.test_features_online import NOW, definitions, fs, online  # noqa: F401

EXPIRED = NOW - pd.Timedelta(days=3)  # the views' ttl is 2 days


def _push_expired(store: FeatureStore, driver: int = 5) -> None:
    row = {"driver_id": driver, "trips": 1, "rating": 1.0, "event_timestamp": EXPIRED}
    store.push("driver_stats", [row])


def test_expired_values_get_the_default_and_are_flagged(fs: FeatureStore, tmp_path: Path) -> None:  # noqa: F811
    driver, stats, *_ = definitions(tmp_path / "s.parquet", default={"trips": 0})
    fs.apply([driver, stats])
    fs.materialize()
    _push_expired(fs)
    rows = [{"driver_id": 1}, {"driver_id": 5}, {"driver_id": 42}]
    got = fs.get_online_features("driver_stats", rows)
    assert got == {"trips": [105, 0, 0], "rating": [1.05, None, None]}
    # per row: which view's value was too old (42 is not expired: it was never there)
    assert got.expired == {"driver_stats": [False, True, False]}
    assert got.expired_rows == [False, True, False]


def test_a_view_may_refuse_expired_values(fs: FeatureStore, tmp_path: Path) -> None:  # noqa: F811
    driver, stats, *_ = definitions(
        tmp_path / "s.parquet", default={"trips": 0}, on_expired="refuse"
    )
    fs.apply([driver, stats])
    fs.materialize()
    _push_expired(fs)
    # a missing entity still gets the default; only an expired value is refused
    assert fs.get_online_features("driver_stats", [{"driver_id": 42}])["trips"] == [0]
    with pytest.raises(NotFoundError) as err:
        fs.get_online_features("driver_stats", [{"driver_id": 1}, {"driver_id": 5}])
    message = str(err.value)
    assert "view 'driver_stats'" in message and "entity '5'" in message and "expired" in message
    assert 400 <= err.value.http_status < 500
    assert err.value.details["view"] == "driver_stats" and err.value.details["entity"] == "5"
    # stored and read back: the choice survives the metadata database
    assert fs.get_view("driver_stats")[0].on_expired == "refuse"


def test_on_expired_is_checked_and_the_default_spec_is_unchanged(tmp_path: Path) -> None:
    from shipyard.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="on_expired"):
        definitions(tmp_path / "s.parquet", on_expired="never")
    _, stats, *_ = definitions(tmp_path / "s.parquet")
    # views defined before on_expired existed keep their digest: no new version on apply
    assert "on_expired" not in stats.to_spec()


def test_switching_online_store_rematerializes(
    settings: Settings,
    online: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    first = FeatureStore(settings, online=SqliteOnlineStore(tmp_path / "first.db"))
    first.apply(definitions(tmp_path / "s.parquet"))
    assert first.materialize() == {"driver_stats": 3}
    assert first.materialize() == {"driver_stats": 0}  # incremental on the same store
    switched = FeatureStore(settings, online=online)  # e.g. SHIPYARD_REDIS_URL set now
    assert switched.materialize() == {"driver_stats": 3}
    assert switched.get_online_features("driver_stats:trips", [{"driver_id": 2}]) == {
        "trips": [205]
    }
    assert switched.materialize() == {"driver_stats": 0}
    assert first.materialize() == {"driver_stats": 0}  # the first store's mark is its own


def test_a_store_identity_has_no_credentials(tmp_path: Path) -> None:
    from shipyard.features.store import online_store_identity

    redis = RedisOnlineStore("redis://user:s3cret@cache.example:6380/2", prefix="p")
    ident = online_store_identity(redis)
    assert "s3cret" not in ident and "cache.example:6380/2" in ident and ident.endswith("p")
    other = online_store_identity(RedisOnlineStore("redis://cache.example:6380/2", prefix="q"))
    assert other != ident
    sqlite = online_store_identity(SqliteOnlineStore(tmp_path / "a.db"))
    assert sqlite == online_store_identity(SqliteOnlineStore(tmp_path / "x" / ".." / "a.db"))


def test_materialize_without_redis_installed_gives_the_install_hint(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` fails as if not installed
    store = FeatureStore(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    store.apply(definitions(tmp_path / "s.parquet"))
    hint = r"pip install 'shipyard\[redis\]'"
    with pytest.raises(MissingDependencyError, match=hint):
        store.materialize()
    with pytest.raises(MissingDependencyError, match=hint):
        store.get_online_features("driver_stats", [{"driver_id": 1}])
    with pytest.raises(MissingDependencyError, match=hint):
        store.online.count("driver_stats@1")
    with pytest.raises(MissingDependencyError, match=hint):
        store.online.drop("driver_stats@1")
