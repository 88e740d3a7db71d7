"""Seed an MLflow SQLite store with exactly the data of tests/e2e/ui/seed.py. Runs in MLflow's
venv (benchmarks/.venv-ui-mlflow), where shipyard is not installed: seed.py's `import shipyard`
gets a stand-in whose `start_run` writes through `MlflowClient.log_batch`, so both UIs show
the same runs, names, params and values (same generator, same seed).

    python seed_mlflow.py DB ARTIFACTS SEED_PY RUNS PARAMS METRICS STEPS

Prints one JSON line: {"experiments": {name: id}, "runs": {"big": [ids...], ...}}.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

MAX_PARAMS = 100  # MLflow's log_batch limits
MAX_METRICS = 1000


class Run:
    def __init__(self, client: MlflowClient, experiment_id: str, name: str) -> None:
        self.client = client
        self.id = client.create_run(experiment_id, run_name=name).info.run_id
        self.params: list[Param] = []
        self.metrics: list[Metric] = []

    def log_params(self, params: dict[str, Any]) -> None:
        self.params += [Param(k, str(v)) for k, v in params.items()]

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        self.metrics += [Metric(k, float(v), now, step) for k, v in metrics.items()]

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self.log_metrics({key: value}, step=step)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        params, metrics = self.params, self.metrics
        while params or metrics:
            batch_p, params = params[:MAX_PARAMS], params[MAX_PARAMS:]
            room = MAX_METRICS - len(batch_p)
            batch_m, metrics = metrics[:room], metrics[room:]
            self.client.log_batch(self.id, metrics=batch_m, params=batch_p)
        self.client.set_terminated(self.id, "FINISHED" if exc[0] is None else "FAILED")


def main() -> None:
    db, artifacts, seed_py, *sizes = sys.argv[1:]
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiments: dict[str, str] = {}

    def start_run(experiment: str, name: str) -> Run:
        if experiment not in experiments:
            found = client.get_experiment_by_name(experiment)
            experiments[experiment] = (
                found.experiment_id
                if found
                else client.create_experiment(
                    experiment, artifact_location=str(Path(artifacts) / experiment)
                )
            )
        return Run(client, experiments[experiment], name)

    sys.modules["shipyard"] = types.SimpleNamespace(start_run=start_run)  # type: ignore[assignment]
    spec = importlib.util.spec_from_file_location("ui_seed", seed_py)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runs = module.seed(*(int(s) for s in sizes))
    print(json.dumps({"experiments": experiments, "runs": runs}))


if __name__ == "__main__":
    main()
