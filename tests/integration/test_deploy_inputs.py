"""Inputs every caller of the rollout capability gets checked, the CLI as much as the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.rollout import Deployments


@pytest.mark.parametrize("name", ["bad/name", "", "../x", "-lead", "a" * 257])
def test_an_endpoint_name_outside_the_api_rule_is_refused(stores: Any, name: str) -> None:
    """`shipyard deploy create 'bad/name'` used to create an endpoint no URL could reach,
    reported ready, with a prediction-log folder built from its name."""
    with pytest.raises(InvalidArgumentError) as info:
        Deployments(stores).create(name, "models:/churn/1")
    assert info.value.details["field"] == "name"
    assert Deployments(stores).list() == []


@pytest.mark.parametrize("kind", [pa.int64(), pa.float64(), pa.bool_()])
def test_a_numeric_event_time_column_is_refused_before_scoring(
    tmp_path: Path, kind: pa.DataType
) -> None:
    """Integers were read as nanoseconds since 1970: every feature joined to nothing and the
    job exited 0 with wrong predictions."""
    from shipyard.batch.features import FeatureJoin, check_inputs

    path = tmp_path / "in.parquet"
    values = [True, False] if kind == pa.bool_() else [0, 1]
    pq.write_table(pa.table({"driver_id": [1, 2], "event_timestamp": pa.array(values, kind)}), path)
    with pytest.raises(InvalidArgumentError, match="not timestamps") as info:
        check_inputs(FeatureJoin("churn"), [path], "churn@champion")
    assert info.value.details["field"] == "timestamp"
    ok = tmp_path / "ok.parquet"
    stamps = pa.array([0, 1], pa.timestamp("s"))
    pq.write_table(pa.table({"driver_id": [1, 2], "event_timestamp": stamps}), ok)
    check_inputs(FeatureJoin("churn"), [ok], "churn@champion")
