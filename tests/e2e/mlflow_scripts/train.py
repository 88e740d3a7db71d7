"""A training script written for MLflow, as a team has it today: it knows nothing of
shipyard (the tracking server comes from MLFLOW_TRACKING_URI). It prints what the client saw
as one JSON line for the test to compare with shipyard's own view."""

import json

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

mlflow.set_experiment("mlflow-compat")
data = pd.DataFrame({"x": np.arange(20.0), "y": np.arange(20.0) * 2.0})
dataset = mlflow.data.from_pandas(data, name="train-data", targets="y")
run_ids = []
for i, alpha in enumerate([0.1, 0.5, 1.0, 2.0, 4.0]):
    with mlflow.start_run(run_name=f"ridge-{i}") as run:
        run_ids.append(run.info.run_id)
        mlflow.log_param("alpha", alpha)
        mlflow.log_params({"solver": "svd", "fold": i})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1) + alpha, step=step)
        mlflow.log_metrics({"r2": 0.9 - alpha / 10, "rmse": alpha})
        mlflow.set_tag("team", "forecast")
        mlflow.set_tags({"stage": "dev", "scratch": "yes"})
        mlflow.delete_tag("scratch")
        mlflow.log_input(dataset, context="training")

client = MlflowClient()
experiment = client.get_experiment_by_name("mlflow-compat")
pages, token = [], None
while True:
    page = client.search_runs(
        [experiment.experiment_id],
        filter_string="params.solver = 'svd' and metrics.r2 > 0.5",
        order_by=["metrics.r2 DESC"],
        max_results=2,
        page_token=token,
    )
    pages.append([r.info.run_id for r in page])
    token = page.token
    if not token:
        break
history = client.get_metric_history(run_ids[0], "loss")
first = client.get_run(run_ids[0])
frame = mlflow.search_runs(
    experiment_names=["mlflow-compat"], filter_string="tags.team = 'forecast'"
)
client.delete_run(run_ids[-1])
after_delete = client.search_runs([experiment.experiment_id])
client.restore_run(run_ids[-1])
print(
    json.dumps(
        {
            "experiment_id": experiment.experiment_id,
            "run_ids": run_ids,
            "pages": pages,
            "history": [[m.step, m.value] for m in history],
            "params": first.data.params,
            "metrics": first.data.metrics,
            "tags": {k: v for k, v in first.data.tags.items()},
            "status": first.info.status,
            "datasets": [
                [d.dataset.name, d.dataset.digest, [(t.key, t.value) for t in d.tags]]
                for d in first.inputs.dataset_inputs
            ],
            "frame_rows": len(frame),
            "frame_r2": sorted(frame["metrics.r2"].tolist()),
            "after_delete": len(after_delete),
        }
    )
)
