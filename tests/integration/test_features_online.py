"""The online store, on SQLite and on a real Redis: materialize (incremental, latest value per
entity, atomic), push (type-checked, newer wins), lookups with TTL, defaults and on-demand
features computed exactly as in training frames."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError, NotFoundError, StoreUnavailableError
from shipyard.features import Entity, FeatureService, FeatureStore, FeatureView, Source, on_demand
from shipyard.stores.online import RedisOnlineStore, SqliteOnlineStore
from tests.helpers import redis_url

NOW = pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def online(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        store: Any = SqliteOnlineStore(tmp_path / "online.db")
    else:
        import uuid

        store = RedisOnlineStore(redis_url(), prefix=f"test-{uuid.uuid4().hex[:8]}")
    yield store
    if request.param == "redis":
        client = store.client
        for key in client.scan_iter(f"{store.prefix}:*"):
            client.delete(key)
    store.close()


@pytest.fixture
def fs(settings: Settings, online: Any) -> FeatureStore:
    return FeatureStore(settings, online=online)


def history() -> pd.DataFrame:
    rows = []
    for driver in (1, 2, 3):
        for hours_ago in (30, 20, 10, 5):
            rows.append(
                {
                    "driver_id": driver,
                    "event_timestamp": NOW - pd.Timedelta(hours=hours_ago),
                    "trips": driver * 100 + hours_ago,
                    "rating": driver + hours_ago / 100,
                }
            )
    return pd.DataFrame(rows)


def definitions(path: Path, **view_kw: Any) -> tuple[Any, ...]:
    history().to_parquet(path)
    driver = Entity("driver", ["driver_id"])
    stats = FeatureView(
        "driver_stats",
        entity=driver,
        source=Source.parquet(path),
        features={"trips": "long", "rating": "double"},
        ttl=view_kw.pop("ttl", dt.timedelta(days=2)),
        **view_kw,
    )

    @on_demand(sources=[stats], request={"amount": "double"}, features={"per_trip": "double"})
    def per_trip(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"per_trip": df["amount"] / df["trips"].clip(lower=1)})

    return driver, stats, per_trip, FeatureService("churn", features=[stats, per_trip])


def test_materialize_is_incremental_and_keeps_the_latest(fs: FeatureStore, tmp_path: Path) -> None:
    fs.apply(definitions(tmp_path / "stats.parquet"))
    first = fs.materialize(end=NOW - pd.Timedelta(hours=15))
    assert first == {"driver_stats": 3}
    got = fs.get_online_features(["driver_stats:trips"], [{"driver_id": d} for d in (1, 2, 3)])
    assert got == {"trips": [120, 220, 320]}
    seen: list[tuple[str, int, int]] = []
    second = fs.materialize(progress=lambda v, done, total: seen.append((v, done, total)))
    assert second == {"driver_stats": 3} and seen[-1] == ("driver_stats", 3, 3)
    got = fs.get_online_features("churn", [{"driver_id": 2, "amount": 410.0}])
    assert got == {"trips": [205], "rating": [2.05], "per_trip": [2.0]}
    assert fs.materialize() == {"driver_stats": 0}  # nothing new since the last run


def test_online_and_offline_agree_including_on_demand(fs: FeatureStore, tmp_path: Path) -> None:
    fs.apply(definitions(tmp_path / "stats.parquet"))
    fs.materialize()
    rows = [{"driver_id": d, "amount": 50.0 * d} for d in (1, 2, 3)]
    online = fs.get_online_features("churn", rows)
    entity_df = pd.DataFrame(rows).assign(event_timestamp=NOW)
    offline = fs.get_training_frame(entity_df, "churn")
    for col in ("trips", "rating", "per_trip"):
        assert offline[col].tolist() == pytest.approx(online[col])


def test_failed_materialize_leaves_previous_values(fs: FeatureStore, tmp_path: Path) -> None:
    fs.apply(definitions(tmp_path / "stats.parquet"))
    fs.materialize(end=NOW - pd.Timedelta(hours=15))
    before = fs.get_online_features("driver_stats", [{"driver_id": 1}, {"driver_id": 3}])

    def boom(view: str, done: int, total: int) -> None:
        raise RuntimeError("disk on fire")

    # the progress callback fails after the first records were produced
    with pytest.raises(RuntimeError, match="disk on fire"):
        fs.materialize(progress=boom)
    assert fs.get_online_features("driver_stats", [{"driver_id": 1}, {"driver_id": 3}]) == before
    assert fs.materialize() == {"driver_stats": 3}  # the state did not move: it resumes


def test_push_type_checks_and_newer_wins(fs: FeatureStore, tmp_path: Path) -> None:
    fs.apply(definitions(tmp_path / "stats.parquet"))
    fs.materialize()
    assert fs.push("driver_stats", [{"driver_id": 1, "trips": 7, "rating": 4.5}]) == 1
    assert fs.get_online_features("driver_stats", [{"driver_id": 1}]) == {
        "trips": [7],
        "rating": [4.5],
    }
    old = NOW - pd.Timedelta(hours=40)
    stale = [{"driver_id": 1, "trips": 1, "rating": 1.0, "event_timestamp": old}]
    assert fs.push("driver_stats", stale) == 0  # older than what is online: skipped
    with pytest.raises(InvalidArgumentError, match=r"rows\[1\]: feature 'trips' .* is long"):
        fs.push(
            "driver_stats",
            [
                {"driver_id": 9, "trips": 1, "rating": 1.0},
                {"driver_id": 8, "trips": "many", "rating": 1.0},
            ],
        )
    # nothing of the failed push was written
    assert fs.get_online_features("driver_stats", [{"driver_id": 9}])["trips"] == [None]
    with pytest.raises(InvalidArgumentError, match="missing feature 'rating'"):
        fs.push("driver_stats", [{"driver_id": 9, "trips": 1}])
    with pytest.raises(InvalidArgumentError, match="missing join key 'driver_id'"):
        fs.push("driver_stats", [{"trips": 1, "rating": 2.0}])
    with pytest.raises(NotFoundError, match="did you mean 'driver_stats'"):
        fs.push("driver_stat", [{"driver_id": 1, "trips": 1, "rating": 2.0}])


def test_missing_entities_default_error_and_ttl(fs: FeatureStore, tmp_path: Path) -> None:
    driver, stats, *_ = definitions(tmp_path / "stats.parquet", default="error")
    fs.apply([driver, stats])
    fs.materialize()
    with pytest.raises(NotFoundError, match="no online features of view 'driver_stats'") as err:
        fs.get_online_features("driver_stats", [{"driver_id": 1}, {"driver_id": 42}])
    assert err.value.http_status == 404
    fs.push(
        "driver_stats",
        [
            {
                "driver_id": 5,
                "trips": 1,
                "rating": 1.0,
                "event_timestamp": NOW - pd.Timedelta(days=3),
            }
        ],
    )
    with pytest.raises(NotFoundError, match="expired"):
        fs.get_online_features("driver_stats", [{"driver_id": 5}])
    with pytest.raises(InvalidArgumentError, match="join key 'driver_id'"):
        fs.get_online_features("driver_stats", [{"id": 1}])


def test_schema_change_makes_a_new_version_read_separately(
    fs: FeatureStore, tmp_path: Path
) -> None:
    driver, stats, *_ = definitions(tmp_path / "stats.parquet")
    fs.apply([driver, stats])
    fs.materialize()
    applied = fs.apply([FeatureView(**{**_fields(stats), "features": {"trips": "long"}})])
    result = dict(applied)["view"]
    assert result.change == "new version (schema changed)" and result.record.version == 2
    # the new version has nothing online yet: it is not mixed with version 1's records
    assert fs.get_online_features("driver_stats", [{"driver_id": 1}]) == {"trips": [None]}
    fs.materialize()
    assert fs.get_online_features("driver_stats", [{"driver_id": 1}]) == {"trips": [105]}


def test_many_entities_in_one_read(online: Any) -> None:
    records = [(str(i), 1000 + i, f"[{1000 + i},{i}]".encode()) for i in range(1200)]
    assert online.write("t@1", records) == 1200
    keys = [str(i) for i in np.random.default_rng(0).permutation(1300)]
    got = online.read("t@1", keys)
    assert got == [f"[{1000 + int(k)},{k}]".encode() if int(k) < 1200 else None for k in keys]
    assert online.count("t@1") == 1200
    # newer wins, older is ignored
    assert online.write("t@1", [("1", 5, b"old"), ("2", 99999, b"new")]) == 1
    assert online.read_many([("t@1", ["1", "2"]), ("other@1", ["1"])]) == [
        [b"[1001,1]", b"new"],
        [None],
    ]
    online.drop("t@1")
    assert online.count("t@1") == 0


def test_one_write_with_repeated_keys_keeps_the_newest(online: Any) -> None:
    online.write("t@1", [("a", 10, b"[10]")])
    online.write(
        "t@1",
        [
            ("a", 12, b"[12]"),
            ("b", 5, b"[5]"),
            ("a", 11, b"[11]"),
            ("b", 5, b"[5, 1]"),
            ("a", 9, b"[9]"),
        ],
    )
    assert online.read("t@1", ["a", "b"]) == [b"[12]", b"[5, 1]"]  # a tie: the later one
    assert online.write("t@1", [("a", 11, b"[11]"), ("b", 4, b"[4]")]) == 0
    assert online.read("t@1", ["a", "b"]) == [b"[12]", b"[5, 1]"]
    online.drop("t@1")


def test_write_is_atomic(online: Any) -> None:
    online.write("t@1", [("a", 1, b"1"), ("b", 1, b"1")])

    def records() -> Iterator[tuple[str, int, bytes]]:
        yield ("a", 2, b"2")
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError):
        online.write("t@1", records())
    assert online.read("t@1", ["a", "b"]) == [b"1", b"1"]


def test_redis_down_is_a_store_error_not_a_hang() -> None:
    down = RedisOnlineStore("redis://127.0.0.1:1/0", timeout=0.2)
    with pytest.raises(StoreUnavailableError):
        down.read("t@1", ["1"])


def _fields(view: FeatureView) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}


def test_composite_keys_offline_and_online(fs: FeatureStore) -> None:
    store_item = Entity("store_item", ["store", "item"], key_type="string")
    source = pd.DataFrame(
        {
            "store": ["s1", "s1", "s2", "s1"],
            "item": [1, 2, 1, 1],
            "event_timestamp": [NOW - pd.Timedelta(hours=h) for h in (5, 4, 3, 1)],
            "stock": [10, 20, 30, 11],
        }
    )
    view = FeatureView(
        "stock", entity=store_item, source=Source.from_frame(source), features={"stock": "long"}
    )
    fs.apply([view])
    entities = pd.DataFrame(
        {
            "store": ["s1", "s1", "s2", "s2"],
            "item": [1, 2, 1, 2],
            "event_timestamp": [NOW - pd.Timedelta(hours=2)] * 4,
        }
    )
    got = fs.get_training_frame(entities, "stock")["stock"]
    assert [None if pd.isna(v) else v for v in got] == [10, 20, 30, None]
    fs.materialize()
    rows = entities[["store", "item"]].to_dict(orient="records")
    assert fs.get_online_features("stock", rows) == {"stock": [11, 20, 30, None]}


def test_a_slow_redis_times_out_instead_of_hanging() -> None:
    """A server that accepts connections and never answers: the read gives up after the
    timeout with a store error (what serving's circuit breaker counts)."""
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        slow = RedisOnlineStore(f"redis://127.0.0.1:{port}/0", timeout=0.1)
        t0 = time.perf_counter()
        with pytest.raises(StoreUnavailableError, match="unavailable"):
            slow.read("t@1", ["1"])
        assert time.perf_counter() - t0 < 2.0
        slow.close()
    finally:
        listener.close()
