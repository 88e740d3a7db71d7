"""Pipelines: DAG from data flow, caching keyed by code/inputs/params, child runs, seeds,
lineage, failure propagation and sweeps — on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError, StepFailedError
from shipyard.pipelines.lineage import lineage

CALLS: list[str] = []


@sy.step
def make_data(rows: int, seed: int = 0) -> pd.DataFrame:
    CALLS.append("make_data")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    return pd.DataFrame(
        {"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": (x[:, 0] + x[:, 1] > 0).astype(int)}
    )


@sy.step(outputs=2)
def split(df: pd.DataFrame, frac: float = 0.7) -> tuple[pd.DataFrame, pd.DataFrame]:
    CALLS.append("split")
    k = int(len(df) * frac)
    return df.iloc[:k], df.iloc[k:]


@sy.step
def fit(df: pd.DataFrame, C: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression

    CALLS.append("fit")
    sy.current_step().log_metrics({"train_rows": len(df)})
    return LogisticRegression(C=C).fit(df[["a", "b", "c"]], df["y"])


@sy.step
def score(model: Any, df: pd.DataFrame) -> dict[str, float]:
    CALLS.append("score")
    acc = float(model.score(df[["a", "b", "c"]], df["y"]))
    sy.current_step().log_metrics({"accuracy": acc})
    return {"accuracy": acc}


@sy.step
def noise(seed: int = 0) -> np.ndarray:
    CALLS.append("noise")
    return np.random.random(4)  # the step seed makes even the global RNG reproducible


@sy.Pipeline
def training(rows: int = 400, C: float = 1.0) -> Any:
    train, test = split(make_data(rows))
    return {"score": score(fit(train, C=C), test), "noise": noise()}


@sy.step
def explode(df: pd.DataFrame) -> pd.DataFrame:
    raise ValueError("column 'a' is all wrong")


@sy.Pipeline
def broken(rows: int = 100) -> Any:
    df = make_data(rows)
    bad = explode(df)
    return {"after": score(fit(bad), bad), "independent": noise()}


def test_second_run_is_cached_and_a_param_reruns_only_its_dependants(settings: Settings) -> None:
    CALLS.clear()
    first = training.run()
    assert first.status == "FINISHED"
    assert sorted(first.executed) == ["fit", "make_data", "noise", "score", "split"]
    assert first.value["score"]["accuracy"] > 0.8
    assert CALLS.count("fit") == 1

    CALLS.clear()
    again = training.run()
    assert again.executed == [] and sorted(again.cached) == sorted(first.steps)
    assert CALLS == []
    assert again.value["score"] == first.value["score"]
    np.testing.assert_array_equal(again.value["noise"], first.value["noise"])

    CALLS.clear()
    changed = training.run(params={"C": 0.01})
    assert sorted(changed.executed) == ["fit", "score"]
    assert sorted(changed.cached) == ["make_data", "noise", "split"]

    CALLS.clear()
    forced = training.run(cache=False)
    assert sorted(forced.executed) == sorted(first.steps)
    # seeded: a forced rerun reproduces every output byte for byte
    assert all(forced.digest(n) == first.digest(n) for n in first.steps)


def test_each_step_is_a_child_run_with_params_metrics_and_io(settings: Settings) -> None:
    result = training.run(params={"rows": 300}, cache=False)
    parent = sy.get_run(result.run_id)
    assert parent.params["rows"] == "300" and parent.tags["pipeline"] == "training"
    fit_run = sy.get_run(result.steps["fit"].run_id)
    assert fit_run.parent_run_id == parent.id and fit_run.status == "FINISHED"
    assert fit_run.params["C"] == "1.0" and "seed" in fit_run.params
    assert fit_run.metrics["train_rows"] == 210
    assert fit_run.tags["input.df"] == result.steps["split"].outputs[0]["digest"]
    assert fit_run.tags["output.0"] == result.digest("fit")
    assert fit_run.environment_digest is not None


def test_lineage_of_an_output_reaches_back_to_the_first_step(settings: Settings) -> None:
    result = training.run(params={"rows": 250})
    tree = lineage(result.digest("score")[:16], settings=settings)
    assert tree["step"] == "score" and tree["digest"] == result.digest("score")
    assert tree["code_hash"] == result.steps["score"].code_hash
    assert set(tree["inputs"]) == {"model", "df"}
    model = tree["inputs"]["model"]
    assert model["step"] == "fit" and model["params"]["C"] == 1.0
    data = model["inputs"]["df"]["inputs"]["df"]
    assert data["step"] == "make_data" and data["params"]["rows"] == 250
    assert data["digest"] == result.digest("make_data")


def test_a_failed_step_stops_its_dependants_names_itself_and_keeps_the_error(
    settings: Settings,
) -> None:
    with pytest.raises(StepFailedError, match="step 'explode' failed: ValueError: column 'a'"):
        broken.run()
    result = broken.run(raise_on_failure=False)
    assert result.status == "FAILED" and result.failed_step == "explode"
    assert result.steps["explode"].status == "FAILED"
    assert "Traceback" in (result.steps["explode"].error or "")
    assert {result.steps[n].status for n in ("fit", "score")} == {"SKIPPED"}
    assert result.steps["noise"].ok and result.steps["make_data"].ok  # independent steps ran
    failed_run = sy.get_run(result.steps["explode"].run_id)
    assert failed_run.status == "FAILED" and "column 'a' is all wrong" in failed_run.error
    record = result.stores.metadata.pipelines.get_run(result.id)
    assert record.status == "FAILED" and "explode" in (record.error or "")
    # a failure is never cached: the next run tries again
    assert broken.run(raise_on_failure=False).steps["explode"].status == "FAILED"


def test_sweep_runs_each_combination_and_shares_common_steps(settings: Settings) -> None:
    CALLS.clear()
    results = training.sweep({"C": [0.1, 1.0, 10.0]}, params={"rows": 350})
    assert [r.params["C"] for r in results] == [0.1, 1.0, 10.0]
    assert CALLS.count("make_data") == 1 and CALLS.count("fit") == 3
    assert len({r.id for r in results}) == 3
    shared = [r.steps["make_data"] for r in results]
    assert sum(s.status == "FINISHED" for s in shared) == 1
    assert len({s.outputs[0]["digest"] for s in shared}) == 1


def test_bad_parameters_and_bad_pipelines_are_refused(settings: Settings) -> None:
    with pytest.raises(InvalidArgumentError, match="no parameter 'c'; did you mean 'C'"):
        training.run(params={"c": 2})

    @sy.Pipeline
    def nothing() -> None:
        return None

    with pytest.raises(InvalidArgumentError, match="calls no @step"):
        nothing.run()
    with pytest.raises(InvalidArgumentError, match="unknown executor"):
        training.run(executor="spark")
    with pytest.raises(InvalidArgumentError, match="non-empty lists"):
        training.sweep({"C": []})


class _Planted:
    """Unpickling it opens (creates) a file: proof that a planted pickle was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("mac", ["none", "copied"])
def test_a_planted_pickle_in_the_cache_is_never_unpickled(
    settings: Settings, tmp_path: Any, mac: str
) -> None:
    """Someone with write access to the shared metadata database and artifact store records a
    newer 'fit' result whose output is their own pickle: the next run recomputes 'fit'."""
    import dataclasses
    import pickle

    from shipyard.stores import open_stores

    first = training.run(params={"rows": 220})
    stores = open_stores(settings)
    fit_record = first.steps["fit"]
    marker = tmp_path / "pwned"
    evil = stores.artifacts.put_bytes(pickle.dumps(_Planted(str(marker))))[0]
    output: dict[str, Any] = {"digest": evil, "kind": "pickle"}
    if mac == "copied":  # a valid MAC, but of another output
        output["mac"] = fit_record.outputs[0]["mac"]
    hit = stores.metadata.pipelines.find_cached(fit_record.cache_key)
    assert hit is not None
    stores.metadata.pipelines.record_step(
        dataclasses.replace(
            hit, id="f" * 32, outputs=[output], started_at=hit.started_at + 1, cached_from=None
        )
    )
    CALLS.clear()
    again = training.run(params={"rows": 220})
    assert "fit" in again.executed and again.status == "FINISHED"
    assert not marker.exists()
