"""Data contracts: every failed expectation named with its column, count and examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shipyard as sy
from shipyard.errors import ContractFailedError, InvalidArgumentError
from shipyard.pipelines.contracts import Column, Rows, Suite


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 1000
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "age": rng.integers(18, 90, n),
            "plan": rng.choice(["basic", "pro"], n),
            "spend": rng.gamma(2.0, 10.0, n),
        }
    )
    return df


def test_a_clean_frame_passes(frame: pd.DataFrame) -> None:
    suite = Suite(
        "customers",
        [
            Column("id", dtype="int64", not_null=True, unique=True),
            Column("age", min=0, max=120),
            Column("plan", allowed=["basic", "pro"]),
            Rows(min=100, max=10_000),
        ],
    )
    result = suite.validate(frame)
    assert result.passed and result.failures == []
    assert result.rows == 1000 and result.expectations == 4


def test_failures_name_the_column_the_count_and_examples(frame: pd.DataFrame) -> None:
    bad = frame.copy()
    bad.loc[[3, 7, 11], "age"] = -1
    bad.loc[5, "plan"] = "gold"
    bad.loc[[1, 2], "id"] = 0
    bad["spend"] = bad["spend"].astype(object)
    bad.loc[9, "spend"] = None
    suite = Suite(
        "customers",
        [
            Column("id", unique=True),
            Column("age", min=0),
            Column("plan", allowed=["basic", "pro"], severity="warning"),
            Column("spend", not_null=True),
            Column("region"),
            Rows(min=5000),
        ],
    )
    result = suite.validate(bad)
    found = {f.expectation: f for f in result.failures}
    assert found["age: min 0"].count == 3
    assert [e["row"] for e in found["age: min 0"].examples] == [3, 7, 11]
    assert found["age: min 0"].examples[0]["value"] == -1
    assert found["id: unique"].count == 3  # rows 0, 1 and 2 share id 0
    assert found["spend: not null"].count == 1
    assert found["region: column is missing"].column == "region"
    assert found["row count >= 5000 (the frame has 1000)"].count == 1
    assert found["plan: in ['basic', 'pro']"].severity == "warning"
    assert not result.passed
    assert "plan" not in {f.column for f in result.blocking}
    with pytest.raises(ContractFailedError, match=r"age: min 0: 3 failing — e\.g\. -1 \(row 3\)"):
        result.raise_for_blocking()


def test_distribution_check_against_a_reference_file(frame: pd.DataFrame, tmp_path: Path) -> None:
    frame.to_parquet(tmp_path / "train.parquet")
    shifted = frame.assign(spend=frame["spend"] * 3)
    suite = Suite.from_dict(
        {
            "name": "drift",
            "expectations": [
                {"distribution": {"reference": "train.parquet", "columns": ["age", "spend"]}}
            ],
        },
        base=tmp_path,
    )
    assert suite.validate(frame).passed
    result = suite.validate(shifted)
    assert [f.column for f in result.failures] == ["spend"]
    assert "distribution" in result.failures[0].expectation


def test_yaml_suites_and_their_errors(tmp_path: Path) -> None:
    good = tmp_path / "s.yaml"
    good.write_text(
        "name: s\nexpectations:\n  - {column: a, min: 0, severity: warning}\n  - rows: {min: 1}\n"
    )
    suite = Suite.from_yaml(good)
    assert suite.name == "s" and isinstance(suite.expectations[1], Rows)
    for text, words in [
        ("name: s\n", "list of `expectations`"),
        ("expectations:\n  - {color: red}\n", "needs one of: column, rows, distribution"),
        ("expectations:\n  - {column: a, minimum: 0}\n", "unexpected keyword"),
        ("expectations:\n  - {column: a, severity: fatal}\n", "severity is error or warning"),
        ("expectations: [\n", "not valid YAML"),
    ]:
        good.write_text(text)
        with pytest.raises(InvalidArgumentError, match=words):
            Suite.from_yaml(good)
    with pytest.raises(InvalidArgumentError, match="no such suite file"):
        Suite.from_yaml(tmp_path / "missing.yaml")


@sy.step
def rows_of(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n) - 2})


checked = Suite("positive", [Column("x", min=0)]).step("check")


@sy.step
def total(df: pd.DataFrame) -> float:
    return float(df["x"].sum())


@sy.Pipeline
def guarded(n: int = 10) -> object:
    return total(checked(rows_of(n)))


def test_a_blocking_contract_fails_the_pipeline_and_names_the_column(tmp_home: Path) -> None:
    result = guarded.run(raise_on_failure=False)
    assert result.failed_step == "check" and result.steps["total"].status == "SKIPPED"
    assert "x: min 0: 2 failing" in (result.error or "")
    run = sy.get_run(result.steps["check"].run_id)
    assert run.status == "FAILED" and "ContractFailedError" in (run.error or "")
