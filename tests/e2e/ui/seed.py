"""The UI's test data, written through shipyard's own tracking API: `runs` runs x `params`
params x `metrics` metrics in experiment "big", 3 runs with `steps` steps of "loss" each in
"long" (one of them with a one-step spike), and an experiment "diff" of 5 runs with 117
params of which exactly 3 differ. Deterministic: the same call gives the same values."""

from __future__ import annotations

import random
from typing import Any

import shipyard as sy

SPIKE_STEP = 7_777
SPIKE_VALUE = 50.0
DIFFERING = ("lr", "depth", "seed")


def seed(
    runs: int = 1500, params: int = 150, metrics: int = 300, steps: int = 10_000
) -> dict[str, Any]:
    rng = random.Random(0)
    out: dict[str, Any] = {"big": [], "long": [], "diff": []}
    for i in range(runs):
        with sy.start_run(experiment="big", name=f"run-{i:04d}") as run:
            run.log_params({f"p{j:03d}": (i * 7 + j) % (j + 2) for j in range(params)})
            run.log_metrics({f"m{k:03d}": rng.random() for k in range(metrics)})
            out["big"].append(run.id)
    for r in range(3):
        with sy.start_run(experiment="long", name=f"long-{r}") as run:
            run.log_params({"r": r})
            for step in range(steps):
                value = 1.0 / (1 + step / 100) + r * 0.01
                if r == 0 and step == SPIKE_STEP:
                    value = SPIKE_VALUE
                run.log_metric("loss", value, step=step)
            out["long"].append(run.id)
    for r in range(5):
        with sy.start_run(experiment="diff", name=f"diff-{r}") as run:
            values: dict[str, Any] = {f"same{j:03d}": j for j in range(117 - len(DIFFERING))}
            values.update({"lr": 0.1 * (r + 1), "depth": 3 + r, "seed": r})
            run.log_params(values)
            run.log_metrics({"auc": 0.8 + r / 100})
            out["diff"].append(run.id)
    return out
