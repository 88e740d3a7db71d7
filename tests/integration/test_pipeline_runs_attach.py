"""A run started inside a pipeline step is attached to the step's run (a nested child, as
MLflow's `start_run(nested=True)` makes), and a seed the user passes to a step is the seed the
step runs and records with — on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import shipyard as sy
from shipyard.config import Settings


@sy.step
def train_with_own_run(C: float = 1.0) -> str:
    with sy.start_run(params={"C": C}) as run:
        run.log_metrics({"loss": 0.5})
        return run.id


@sy.Pipeline
def tracked(C: float = 1.0) -> Any:
    return {"run": train_with_own_run(C=C)}


@sy.step
def draw(seed: int = 0) -> list[float]:
    return [float(v) for v in np.random.random(3)]


@sy.Pipeline
def seeded() -> Any:
    return {"explicit": draw(seed=42), "derived": draw.named("draw2")()}


def test_start_run_inside_a_step_is_a_child_of_the_step_run(settings: Settings) -> None:
    result = tracked.run(experiment="attach", settings=settings)
    inner = sy.get_run(result.output("train_with_own_run"))
    step_run = sy.get_run(result.steps["train_with_own_run"].run_id)
    assert inner.parent_run_id == step_run.id  # not an orphan
    assert inner.experiment == step_run.experiment == "attach"
    assert inner.status == "FINISHED" and inner.metrics == {"loss": 0.5}
    assert step_run.status == "FINISHED"  # the step's own run is still the pipeline's to end


def test_start_run_outside_a_step_is_still_a_top_level_run(settings: Settings) -> None:
    tracked.run(settings=settings)
    with sy.start_run() as run:
        pass
    record = sy.get_run(run.id)
    assert record.parent_run_id is None and record.experiment == "default"


def test_an_explicit_step_seed_is_kept(settings: Settings) -> None:
    result = seeded.run(settings=settings)
    explicit = result.steps["draw"]
    assert explicit.seed == 42
    assert sy.get_run(explicit.run_id).params["seed"] == "42"
    np.random.seed(42)
    assert result.output("draw") == pytest.approx(list(np.random.random(3)))
    derived = result.steps["draw2"]
    assert derived.seed != 42  # a step without one still gets the pipeline's derived seed
    assert sy.get_run(derived.run_id).params["seed"] == str(derived.seed)
