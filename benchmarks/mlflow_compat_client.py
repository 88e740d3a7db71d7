"""An ordinary MLflow training script, run unchanged against `mlflow server` and `shipyard server`.

    MLFLOW_TRACKING_URI=http://127.0.0.1:PORT \
        python mlflow_compat_client.py RUNS PARAMS METRICS STEPS MODELS

It needs only `mlflow` and scikit-learn (it runs in the MLflow client's virtualenv). Imports and
training are not timed; each phase is, with `time.perf_counter`. The last stdout line is one JSON
object: the phases' wall and CPU seconds, and what was read back (untimed) to check the server
stored everything. CPU seconds include child processes'.

Phases, in order:
  per_call  RUNS runs: `log_param` for each param, `log_metric(key, value, step=)` for each metric
            at each step (one request each), as a plain training loop writes it
  batched   RUNS runs: `log_params(dict)` once, `log_metrics(dict, step=)` once per step
  register  MODELS runs: `log_params`, `mlflow.sklearn.log_model(..., registered_model_name=)`,
            then `set_registered_model_alias("champion")` on the last version
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any

EXPERIMENT = "mlflow-compat-bench"
MODEL_NAME = "bench-model"


def values(run: int, metrics: int, steps: int) -> list[dict[str, float]]:
    rng = random.Random(run)
    return [{f"m{k}": rng.random() for k in range(metrics)} for _ in range(steps)]


def params_of(run: int, params: int) -> dict[str, str]:
    return {f"p{k}": f"{run}-{k}" for k in range(params)}


def per_call(mlflow: Any, runs: int, params: int, metrics: int, steps: int) -> None:
    for i in range(runs):
        with mlflow.start_run(run_name=f"call-{i}"):
            for key, value in params_of(i, params).items():
                mlflow.log_param(key, value)
            for step, row in enumerate(values(i, metrics, steps)):
                for key, metric in row.items():
                    mlflow.log_metric(key, metric, step=step)


def batched(mlflow: Any, runs: int, params: int, metrics: int, steps: int) -> None:
    for i in range(runs):
        with mlflow.start_run(run_name=f"batch-{i}"):
            mlflow.log_params(params_of(i, params))
            for step, row in enumerate(values(i, metrics, steps)):
                mlflow.log_metrics(row, step=step)


def register(mlflow: Any, models: int, params: int, model: Any, X: Any) -> str:
    version = ""
    for i in range(models):
        with mlflow.start_run(run_name=f"model-{i}"):
            mlflow.log_params(params_of(i, params))
            info = mlflow.sklearn.log_model(
                model, name="model", registered_model_name=MODEL_NAME, input_example=X[:5]
            )
            version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", version)
    return version


def read_back(mlflow: Any, runs: int, metrics: int, steps: int, models: int) -> dict[str, Any]:
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT)
    found = client.search_runs([exp.experiment_id], max_results=1000)
    first = next(r for r in found if r.info.run_name == "call-0")
    history = client.get_metric_history(first.info.run_id, "m0")
    batch = next(r for r in found if r.info.run_name == "batch-0")
    mv = client.get_model_version_by_alias(MODEL_NAME, "champion")
    return {
        "runs_found": len(found),
        "params_first_run": len(first.data.params),
        "metric_keys_first_run": len(first.data.metrics),
        "m0_points_first_run": len(history),
        "metric_keys_batch_run": len(batch.data.metrics),
        "champion": str(mv.version),
        "expected_runs": 2 * runs + models,
        "expected_points": steps,
        "expected_keys": metrics,
    }


def cpu_seconds() -> float:
    """This process's CPU time and its children's (log_model infers requirements in one)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    runs, params, metrics, steps, models = (int(a) for a in sys.argv[1:6])
    import mlflow
    import mlflow.sklearn
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=10_000).fit(X, y)

    timed: dict[str, dict[str, float]] = {}
    start_all = time.perf_counter()
    for phase, work in (
        (
            "per_call",
            lambda: (
                mlflow.set_experiment(EXPERIMENT),
                per_call(mlflow, runs, params, metrics, steps),
            ),
        ),
        ("batched", lambda: batched(mlflow, runs, params, metrics, steps)),
        ("register", lambda: register(mlflow, models, params, model, X)),
    ):
        wall, cpu = time.perf_counter(), cpu_seconds()
        work()
        timed[phase] = {"wall": time.perf_counter() - wall, "cpu": cpu_seconds() - cpu}
    total = time.perf_counter() - start_all
    checked = read_back(mlflow, runs, metrics, steps, models)
    print(
        json.dumps(
            {"phases": timed, "total": total, "check": checked, "mlflow": mlflow.__version__}
        )
    )


if __name__ == "__main__":
    main()
