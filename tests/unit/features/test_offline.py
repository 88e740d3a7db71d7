"""Point-in-time correctness against a brute-force pandas reference, on random data with
duplicate keys, duplicate timestamps, TTLs and mixed timezones."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.features import Entity, FeatureService, FeatureView, Source

T0 = pd.Timestamp("2026-01-01")


def random_source(rng: np.random.Generator, n: int, keys: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "driver_id": rng.integers(0, keys, n),
            # few distinct times: many (key, time) duplicates
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 40, n) * 3600, unit="s"),
            "trips": rng.integers(0, 100, n),
            "rating": rng.random(n).round(3),
        }
    )


def random_entities(rng: np.random.Generator, n: int, keys: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "driver_id": rng.integers(0, keys + 2, n),  # some entities have no history
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(-5, 50, n) * 3600, unit="s"),
            "label": rng.integers(0, 2, n),
        }
    )


def reference(
    entities: pd.DataFrame, source: pd.DataFrame, ttl: dt.timedelta | None, feats: list[str]
) -> pd.DataFrame:
    """Brute force: for each row, the last (in source order) of the rows with the greatest
    event time at or before the row's time, within the TTL."""
    out: dict[str, list[Any]] = {f: [] for f in feats}
    for key, ts in zip(entities["driver_id"], entities["event_timestamp"], strict=True):
        cand = source[(source["driver_id"] == key) & (source["event_timestamp"] <= ts)]
        if ttl is not None:
            cand = cand[cand["event_timestamp"] >= ts - ttl]
        if cand.empty:
            for f in feats:
                out[f].append(None)
            continue
        best = cand[cand["event_timestamp"] == cand["event_timestamp"].max()].iloc[-1]
        for f in feats:
            out[f].append(best[f])
    return pd.DataFrame(out)


def check(got: pd.DataFrame, want: pd.DataFrame, entities: pd.DataFrame) -> None:
    assert len(got) == len(entities)
    assert list(got.index) == list(entities.index)
    pd.testing.assert_frame_equal(
        got[entities.columns], entities, check_dtype=False
    )  # input untouched
    for col in want.columns:
        g = [None if pd.isna(v) else v for v in got[col].tolist()]
        w = [None if pd.isna(v) else v for v in want[col].tolist()]
        assert g == w, col


@pytest.mark.parametrize("ttl_hours", [None, 6])
@pytest.mark.parametrize("seed", [1, 2])
def test_dataframe_source_matches_brute_force(fs: Any, seed: int, ttl_hours: int | None) -> None:
    rng = np.random.default_rng(seed)
    source = random_source(rng, 400, 15)
    entities = random_entities(rng, 300, 15)
    entities.index = pd.RangeIndex(1000, 1300)  # the input's index is kept
    ttl = dt.timedelta(hours=ttl_hours) if ttl_hours else None
    driver = Entity("driver", ["driver_id"])
    view = FeatureView(
        "stats",
        entity=driver,
        source=Source.from_frame(source),
        features={"trips": "long", "rating": "double"},
        ttl=ttl,
    )
    fs.apply([driver, view])
    got = fs.get_training_frame(entities, ["stats:trips", "stats:rating"])
    check(got, reference(entities, source, ttl, ["trips", "rating"]), entities)


def test_parquet_folder_source_ties_resolve_to_the_last_file_row(fs: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    source = random_source(rng, 600, 10)
    folder = tmp_path / "stats"
    folder.mkdir()
    source.iloc[:300].to_parquet(folder / "part-0.parquet")
    source.iloc[300:].to_parquet(folder / "part-1.parquet")
    entities = random_entities(rng, 500, 10)
    entities = pd.concat([entities, entities.iloc[:50]])  # duplicate rows are kept
    driver = Entity("driver", ["driver_id"])
    view = FeatureView(
        "stats",
        entity=driver,
        source=Source.parquet(folder),
        features={"trips": "long", "rating": "double"},
        ttl=dt.timedelta(hours=10),
    )
    fs.apply([view])
    got = fs.get_training_frame(entities, FeatureService("svc", features=[view]))
    check(got, reference(entities, source, dt.timedelta(hours=10), ["trips", "rating"]), entities)


def test_nanosecond_aware_parquet_timestamps(fs: Any, tmp_path: Path) -> None:
    source = pd.DataFrame(
        {
            "driver_id": [1, 1],
            "event_timestamp": pd.to_datetime(["2026-01-01 10:00", "2026-01-01 12:00"])
            .tz_localize("UTC")
            .astype("datetime64[ns, UTC]"),
            "trips": [1, 2],
        }
    )
    source.to_parquet(tmp_path / "ns.parquet")
    view = FeatureView(
        "v",
        entity=Entity("driver", ["driver_id"]),
        source=Source.parquet(tmp_path / "ns.parquet"),
        features={"trips": "long"},
    )
    fs.apply([view])
    entities = pd.DataFrame(
        {
            "driver_id": [1, 1],
            "event_timestamp": pd.to_datetime(["2026-01-01 11:00", "2026-01-02 00:00"]),
        }
    )
    assert fs.get_training_frame(entities, "v")["trips"].tolist() == [1, 2]


def test_two_views_and_csv_source(fs: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a, b = random_source(rng, 200, 8), random_source(rng, 200, 8)
    b = b.rename(columns={"trips": "orders", "rating": "score"})
    b.to_csv(tmp_path / "b.csv", index=False)
    driver = Entity("driver", ["driver_id"])
    va = FeatureView("a", entity=driver, source=Source.from_frame(a), features={"trips": "long"})
    vb = FeatureView(
        "b", entity=driver, source=Source.csv(tmp_path / "b.csv"), features={"score": "double"}
    )
    fs.apply([va, vb])
    entities = random_entities(rng, 150, 8)
    got = fs.get_training_frame(entities, ["a:trips", "b:score"])
    check(got, reference(entities, a, None, ["trips"]), entities)
    check(got, reference(entities, b, None, ["score"]), entities)


def test_timezones_naive_is_utc_and_aware_is_converted(fs: Any) -> None:
    driver = Entity("driver", ["driver_id"])
    source = pd.DataFrame(
        {
            "driver_id": [1, 1],
            # aware source times in UTC+2: 10:00 UTC and 12:00 UTC
            "event_timestamp": pd.to_datetime(["2026-01-01 12:00", "2026-01-01 14:00"]).tz_localize(
                "Etc/GMT-2"
            ),
            "trips": [1, 2],
        }
    )
    view = FeatureView(
        "v", entity=driver, source=Source.from_frame(source), features={"trips": "long"}
    )
    fs.apply([view])
    entities = pd.DataFrame(
        {
            "driver_id": [1, 1, 1],
            "event_timestamp": [
                pd.Timestamp("2026-01-01 11:00"),  # naive = 11:00 UTC -> first value
                pd.Timestamp("2026-01-01 13:30", tz="Etc/GMT-2"),  # 11:30 UTC -> first
                pd.Timestamp("2026-01-01 08:00", tz="America/New_York"),  # 13:00 UTC -> second
            ],
        },
    )
    entities["event_timestamp"] = entities["event_timestamp"].astype(object)
    got = fs.get_training_frame(entities, ["v:trips"])
    assert got["trips"].tolist() == [1, 1, 2]


def test_default_fills_training_gaps_like_online(fs: Any) -> None:
    driver = Entity("driver", ["driver_id"])
    source = pd.DataFrame(
        {"driver_id": [1], "event_timestamp": [T0], "trips": [5], "rating": [4.5]}
    )
    view = FeatureView(
        "v",
        entity=driver,
        source=Source.from_frame(source),
        features={"trips": "long", "rating": "double"},
        default={"trips": 0},
    )
    fs.apply([view])
    entities = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0, T0]})
    got = fs.get_training_frame(entities, "v")
    assert got["trips"].tolist() == [5, 0]
    assert got["rating"].isna().tolist() == [False, True]


def test_bad_input_errors(fs: Any) -> None:
    driver = Entity("driver", ["driver_id"])
    source = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0], "trips": [5]})
    view = FeatureView(
        "stats", entity=driver, source=Source.from_frame(source), features={"trips": "long"}
    )
    fs.apply([view])
    ok = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0]})
    with pytest.raises(NotFoundError, match="did you mean 'stats:trips'"):
        fs.get_training_frame(ok, ["stats:trip"])
    with pytest.raises(NotFoundError, match="'stat:trips' not found; did you mean 'stats:trips'"):
        fs.get_training_frame(ok, ["stat:trips"])
    with pytest.raises(InvalidArgumentError, match="no join key column 'driver_id'"):
        fs.get_training_frame(ok.rename(columns={"driver_id": "id"}), ["stats:trips"])
    with pytest.raises(InvalidArgumentError, match="no timestamp column 'event_timestamp'"):
        fs.get_training_frame(ok.rename(columns={"event_timestamp": "ts"}), ["stats:trips"])
    with pytest.raises(InvalidArgumentError, match="does not hold timestamps"):
        fs.get_training_frame(ok.assign(event_timestamp=["yesterday"]), ["stats:trips"])
    with pytest.raises(InvalidArgumentError, match="stats"):
        fs.get_training_frame(ok.assign(driver_id=["abc"]), ["stats:trips"])
    empty = fs.get_training_frame(ok.iloc[:0], ["stats:trips"])
    assert len(empty) == 0 and "trips" in empty.columns


@pytest.mark.slow
def test_memory_stays_bounded(fs: Any, tmp_path: Path) -> None:
    """A join much larger than the memory limit completes (DuckDB sorts and spills) and the
    process does not grow by more than a bound."""
    import resource

    rng = np.random.default_rng(0)
    n = 2_000_000
    source = pd.DataFrame(
        {
            "driver_id": rng.integers(0, 50_000, n),
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
            **{f"f{i}": rng.random(n) for i in range(4)},
        }
    )
    source.to_parquet(tmp_path / "big.parquet")
    del source
    driver = Entity("driver", ["driver_id"])
    view = FeatureView(
        "big",
        entity=driver,
        source=Source.parquet(tmp_path / "big.parquet"),
        features={f"f{i}": "double" for i in range(4)},
    )
    fs.apply([view])
    fs.memory_limit = "128MB"
    entities = random_entities(rng, 200_000, 50_000)
    entities["event_timestamp"] = T0 + pd.to_timedelta(rng.integers(0, 10**6, 200_000), unit="s")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got = fs.get_training_frame(entities, "big")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert len(got) == 200_000 and got["f0"].notna().mean() > 0.9
    assert (after - before) * 1024 < 400 * 2**20


def test_sql_sources_duckdb_and_sqlalchemy(fs: Any, tmp_path: Path) -> None:
    import sqlite3

    rng = np.random.default_rng(11)
    source = random_source(rng, 150, 6)
    source.to_parquet(tmp_path / "s.parquet")
    db = tmp_path / "warehouse.db"
    with sqlite3.connect(db) as conn:
        source.assign(event_timestamp=source["event_timestamp"].astype(str)).to_sql(
            "stats", conn, index=False
        )
    driver = Entity("driver", ["driver_id"])
    in_duckdb = FeatureView(
        "a",
        entity=driver,
        source=Source.sql(f"SELECT * FROM read_parquet('{tmp_path / 's.parquet'}')"),
        features={"trips": "long"},
    )
    in_sqlite = FeatureView(
        "b",
        entity=driver,
        source=Source.sql("SELECT * FROM stats", url=f"sqlite:///{db}"),
        features={"rating": "double"},
    )
    fs.apply([in_duckdb, in_sqlite])
    entities = random_entities(rng, 100, 6)
    got = fs.get_training_frame(entities, ["a:trips", "b:rating"])
    check(got, reference(entities, source, None, ["trips", "rating"]), entities)


def test_push_to_the_offline_store_is_seen_by_training(fs: Any, tmp_path: Path) -> None:
    folder = tmp_path / "stats"
    folder.mkdir()
    pd.DataFrame(
        {"driver_id": [1], "event_timestamp": [T0], "trips": [5], "rating": [4.0]}
    ).to_parquet(folder / "part-0.parquet")
    view = FeatureView(
        "stats",
        entity=Entity("driver", ["driver_id"]),
        source=Source.parquet(folder),
        features={"trips": "long", "rating": "double"},
    )
    fs.apply([view])
    later = T0 + pd.Timedelta(hours=1)
    pushed = [{"driver_id": 1, "trips": 6, "rating": 4.5, "event_timestamp": later}]
    assert fs.push("stats", pushed, to="online_and_offline") == 1
    entities = pd.DataFrame(
        {"driver_id": [1, 1], "event_timestamp": [T0, later + pd.Timedelta(minutes=1)]}
    )
    assert fs.get_training_frame(entities, "stats")["trips"].tolist() == [5, 6]
    assert fs.get_online_features("stats", [{"driver_id": 1}])["trips"] == [6]
    with pytest.raises(InvalidArgumentError, match="use 'online', 'offline'"):
        fs.push("stats", pushed, to="somewhere")
    csv_view = FeatureView(
        "csv_stats",
        entity=Entity("driver", ["driver_id"]),
        source=Source.csv(tmp_path / "x.csv"),
        features={"trips": "long"},
    )
    fs.apply([csv_view])
    with pytest.raises(InvalidArgumentError, match="needs a Parquet folder source"):
        fs.push("csv_stats", [{"driver_id": 1, "trips": 1}], to="offline")
    assert not list(folder.glob(".*"))  # no temporary file left behind


def test_missing_entity_keys_give_null_features(fs: Any) -> None:
    source = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0], "trips": [5]})
    view = FeatureView(
        "v",
        entity=Entity("driver", ["driver_id"]),
        source=Source.from_frame(source),
        features={"trips": "long"},
    )
    fs.apply([view])
    entities = pd.DataFrame({"driver_id": [1, None], "event_timestamp": [T0, T0]})
    got = fs.get_training_frame(entities, "v")["trips"]
    assert [None if pd.isna(v) else v for v in got] == [5, None]
