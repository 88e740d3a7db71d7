"""Definitions: validation with clear errors, versioned registration, repository files."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.features import (
    Entity,
    FeatureService,
    FeatureView,
    Source,
    load_definitions,
    on_demand,
)

driver = Entity("driver", ["driver_id"], description="a driver")
source = Source.parquet("stats.parquet")


def view(**kw: Any) -> FeatureView:
    args: dict[str, Any] = {
        "entity": driver,
        "source": source,
        "features": {"trips": "long", "rating": "double"},
    }
    args.update(kw)
    return FeatureView(kw.pop("name", "driver_stats"), **args)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"features": {"trips": "int64"}}, "feature 'trips' has type 'int64'; use one of"),
        ({"features": {}}, "declares no features"),
        ({"ttl": dt.timedelta(0)}, "ttl must be positive"),
        ({"features": {"driver_id": "long"}}, "shadow a key or the timestamp"),
        ({"default": "zero"}, "default must be a dict, None or 'error'"),
        ({"default": {"trip": 0}}, "default names unknown feature"),
    ],
)
def test_bad_views_are_refused_clearly(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        view(**kw)


def test_bad_names_and_entities() -> None:
    with pytest.raises(InvalidArgumentError, match="letters, digits"):
        Entity("dri ver", ["id"])
    with pytest.raises(InvalidArgumentError, match="no join keys"):
        Entity("driver", [])
    assert Entity("driver", "driver_id").join_keys == ["driver_id"]  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="names no features"):
        FeatureService("empty", features=[])


def test_apply_is_versioned(fs: Any) -> None:
    first = dict(fs.apply([view()]))
    assert first["entity"].change == "created" and first["view"].record.version == 1
    again = dict(fs.apply([view()]))
    assert again["view"].change == "unchanged" and again["view"].record.version == 1
    described = dict(fs.apply([view(description="trips and rating")]))
    assert described["view"].change == "new version" and described["view"].record.version == 2
    reshaped = dict(fs.apply([view(features={"trips": "double"})]))
    assert reshaped["view"].change == "new version (schema changed)"
    assert reshaped["view"].record.version == 3
    assert [v.version for v in fs.stores.metadata.features.versions("view", "driver_stats")] == [
        1,
        2,
        3,
    ]
    old, version = fs.get_view("driver_stats", 1)
    assert version == 1 and old.features == {"trips": "long", "rating": "double"}
    audit = fs.stores.metadata.audit.list(limit=10)
    assert any(e.action == "features.view.apply" for e in audit)


def test_services_and_references_are_checked(fs: Any) -> None:
    fs.apply([view(), FeatureService("churn", features=["driver_stats:trips"])])
    assert fs.get_service("churn").references() == ["driver_stats:trips"]
    with pytest.raises(NotFoundError, match="did you mean 'driver_stats:trips'"):
        fs.apply([FeatureService("bad", features=["driver_stats:trip"])])
    with pytest.raises(NotFoundError, match="did you mean 'driver_stats'"):
        fs.get_view("driver_stat")

    @on_demand(sources=["nope"], features={"x": "double"})
    def odv(df: pd.DataFrame) -> pd.DataFrame:
        return df

    with pytest.raises(NotFoundError, match="feature view 'nope' not found"):
        fs.apply([odv])
    with pytest.raises(InvalidArgumentError, match="defined twice"):
        fs.apply([view(), view(description="other")])


def test_definitions_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        textwrap.dedent(
            """
            from shipyard.features import Entity, FeatureView, Source
            driver = Entity("driver", ["driver_id"])
            stats = FeatureView("stats", entity=driver, source=Source.parquet("s.parquet"),
                                features={"trips": "long"})
            """
        )
    )
    (tmp_path / "b.py").write_text("x = 1\n")
    found = load_definitions(tmp_path)
    assert [(base, [o.name for o in objs]) for base, objs in found] == [
        (tmp_path.resolve(), ["driver", "stats"])
    ]
    (tmp_path / "c.py").write_text("raise RuntimeError('oops')\n")
    with pytest.raises(InvalidArgumentError, match=r"c\.py: cannot load definitions"):
        load_definitions(tmp_path)
    with pytest.raises(InvalidArgumentError, match="defines no Entity"):
        load_definitions(tmp_path / "b.py")


def test_on_demand_output_is_checked(fs: Any) -> None:
    from shipyard.features import ondemand

    @on_demand(sources=["driver_stats"], request={"amount": "double"}, features={"y": "long"})
    def broken(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"z": df["amount"]})

    frame = pd.DataFrame({"amount": [1.0]})
    with pytest.raises(InvalidArgumentError, match="did not return its feature 'y'"):
        ondemand.compute(broken, frame)
    with pytest.raises(InvalidArgumentError, match="needs field"):
        ondemand.compute(broken, pd.DataFrame({"other": [1]}))


def test_a_bad_definition_applies_nothing(fs: Any) -> None:
    with pytest.raises(NotFoundError):
        fs.apply([view(), FeatureService("svc", features=["driver_stats:nope"])])
    assert fs.list_definitions() == []
