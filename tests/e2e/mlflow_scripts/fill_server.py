"""Fill a real MLflow tracking server (MLFLOW_TRACKING_URI) the way a team's years of work
would: a few hundred runs across experiments, with params, step metrics, tags, a dataset
input, artifacts, nested and deleted runs, and registered models with versions, tags and
aliases. Prints one JSON line: what it made (the test compares shipyard's copy with the
server itself, not with this)."""

import json
import os
import sys
import tempfile
import time

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from sklearn.linear_model import LogisticRegression

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
client = MlflowClient()
experiments = {
    name: client.create_experiment(name, tags={"team": name.split("-")[0]})
    for name in ("churn-model", "fraud-model", "pricing-model")
}
data = pd.DataFrame({"x": np.arange(20.0), "y": np.arange(20.0) % 2})
dataset = mlflow.data.from_pandas(data, name="train-data", targets="y")
now = int(time.time() * 1000)
run_ids = []
with tempfile.TemporaryDirectory() as tmp:
    note = os.path.join(tmp, "notes.txt")
    with open(note, "w") as f:
        f.write("imported from MLflow\n" * 50)
    for i in range(RUNS):
        exp_id = list(experiments.values())[i % 3]
        run = client.create_run(exp_id, run_name=f"run-{i}", start_time=now + i, tags={"i": str(i)})
        rid = run.info.run_id
        run_ids.append(rid)
        metrics = [
            Metric("loss", 1.0 / (step + 1) + i / 1000, now + i + step, step) for step in range(20)
        ]
        metrics.append(Metric("auc", 0.5 + (i % 50) / 100, now + i, 0))
        if i == 7:
            metrics.append(Metric("odd", float("nan"), now + i, 0))
        params = [Param("C", str(0.1 * (i % 10))), Param("solver", "lbfgs"), Param("fold", str(i))]
        tags = [RunTag("team", "ml"), RunTag("mlflow.note.content", f"run {i}")]
        client.log_batch(rid, metrics=metrics, params=params, tags=tags)
        if i % 3 == 0:
            context = InputTag("mlflow.data.context", "training")
            client.log_inputs(rid, [DatasetInput(dataset._to_mlflow_entity(), [context])])
        if i % 25 == 0:
            client.log_artifact(rid, note)
            client.log_text(rid, f"config {i}", "config/params.yaml")
        status = "FAILED" if i % 40 == 1 else "FINISHED"
        client.set_terminated(rid, status=status, end_time=now + i + 1000)
    child = client.create_run(
        experiments["churn-model"], run_name="child", tags={"mlflow.parentRunId": run_ids[0]}
    )
    client.log_metric(child.info.run_id, "loss", 0.5, step=3)
    client.set_terminated(child.info.run_id)
    client.delete_run(run_ids[2])

mlflow.set_experiment("churn-model")
X, y = np.arange(40.0).reshape(20, 2), (np.arange(20) >= 10).astype(int)
versions = {}
for name, count in (("churn", 3), ("fraud", 2), ("pricing", 1)):
    for v in range(count):
        with mlflow.start_run(run_name=f"train-{name}-{v}"):
            model = LogisticRegression(C=1.0 + v, max_iter=200).fit(X, y)
            mlflow.log_param("C", 1.0 + v)
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=name,
                # a pickle version too: the import must skip it and say why
                serialization_format="cloudpickle" if (name, v) == ("fraud", 1) else "skops",
                input_example=X[:2],
            )
            versions.setdefault(name, []).append(info.registered_model_version)
client.update_registered_model("churn", description="predicts churn")
client.set_registered_model_tag("churn", "owner", "ana")
client.update_model_version("churn", "2", description="second try")
client.set_model_version_tag("churn", "2", "validated", "yes")
client.set_registered_model_alias("churn", "champion", "2")
client.set_registered_model_alias("churn", "challenger", "3")
client.set_registered_model_alias("fraud", "champion", "1")
client.create_registered_model("empty-model", description="no versions yet")
print(json.dumps({"runs": len(run_ids) + 1, "experiments": experiments, "versions": versions}))
