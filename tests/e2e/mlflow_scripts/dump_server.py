"""Everything an MLflow tracking server (MLFLOW_TRACKING_URI) holds, as the `mlflow` client
reads it, written as JSON to the path given: the ground truth an import is compared with."""

import json
import math
import sys

import mlflow
from mlflow import MlflowClient
from mlflow.entities import ViewType


def number(value):
    return "NaN" if math.isnan(value) else value


def _walk(client, run_id, path):
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            yield from _walk(client, run_id, f.path)
        else:
            yield f


def _predictions(uri):
    import numpy as np

    model = mlflow.sklearn.load_model(uri)  # MLflow's own loader (skops: its trusted types)
    return [int(p) for p in model.predict(np.arange(40.0).reshape(20, 2)[::4])]


client = MlflowClient()
out = {"experiments": {}, "runs": {}, "models": {}}
for exp in client.search_experiments(view_type=ViewType.ALL):
    out["experiments"][exp.experiment_id] = {
        "name": exp.name,
        "lifecycle_stage": exp.lifecycle_stage,
        "creation_time": exp.creation_time,
    }
    token = None
    while True:
        page = client.search_runs(
            [exp.experiment_id], run_view_type=ViewType.ALL, max_results=1000, page_token=token
        )
        for run in page:
            info = run.info
            out["runs"][info.run_id] = {
                "experiment_id": info.experiment_id,
                "name": info.run_name,
                "user": info.user_id,
                "status": info.status,
                "start_time": info.start_time,
                "end_time": info.end_time,
                "lifecycle_stage": info.lifecycle_stage,
                "params": run.data.params,
                "tags": run.data.tags,
                "metrics": {
                    key: [
                        [m.step, m.timestamp, number(m.value)]
                        for m in client.get_metric_history(info.run_id, key)
                    ]
                    for key in run.data.metrics
                },
                "datasets": [
                    [d.dataset.name, d.dataset.digest, {t.key: t.value for t in d.tags}]
                    for d in (run.inputs.dataset_inputs if run.inputs else [])
                ],
                "artifacts": sorted(
                    [f.path, f.file_size] for f in _walk(client, info.run_id, None)
                ),
            }
        token = page.token
        if not token:
            break


for model in client.search_registered_models(max_results=1000):
    out["models"][model.name] = {
        "description": model.description or "",
        "tags": model.tags,
        "aliases": model.aliases,
        "versions": {
            v.version: {
                "description": v.description or "",
                "tags": v.tags,
                "run_id": v.run_id,
                "predictions": _predictions(f"models:/{model.name}/{v.version}"),
            }
            for v in client.search_model_versions(f"name='{model.name}'")
        },
    }
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
