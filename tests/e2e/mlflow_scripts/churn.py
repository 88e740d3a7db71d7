"""A training script as a team wrote it for MLflow 2 and still runs on every client since
(2.16 to the newest 3.x): it knows nothing of shipyard (the server comes from
MLFLOW_TRACKING_URI). It trains a few models, logs params, step metrics, a file and the
dataset, registers two of them, names the best "champion", pages through a filtered search
and loads the champion back. It prints what the client saw as one JSON line."""

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.linear_model import Ridge

rng = np.random.default_rng(11)
X = pd.DataFrame({"tenure": rng.normal(size=300), "spend": rng.normal(size=300)})
y = 2.0 * X.tenure - X.spend + rng.normal(scale=0.5, size=300)
train = X.assign(churn_score=y)

mlflow.set_experiment("churn")
dataset = mlflow.data.from_pandas(train, name="churn-train", targets="churn_score")
runs, models, versions, formats = [], {}, {}, {}
for alpha in (0.1, 1.0, 10.0, 100.0, 1000.0):
    with mlflow.start_run(run_name=f"ridge-{alpha:g}") as run:
        model = Ridge(alpha=alpha).fit(X, y)
        rmse = float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))
        mlflow.log_params({"alpha": alpha, "solver": "auto", "features": "tenure,spend"})
        for epoch in range(4):
            mlflow.log_metric("loss", rmse * (4 - epoch), step=epoch)
        mlflow.log_metric("rmse", rmse)
        mlflow.log_input(dataset, context="training")
        notes = Path(tempfile.mkdtemp()) / "notes.txt"
        notes.write_text(f"ridge alpha={alpha:g} on {len(X)} rows\n")
        mlflow.log_artifact(str(notes), artifact_path="docs")
        runs.append({"id": run.info.run_id, "alpha": alpha, "rmse": rmse})
        if alpha in (1.0, 100.0):  # the two worth keeping
            info = mlflow.sklearn.log_model(
                model, artifact_path="model", registered_model_name="churn", input_example=X[:5]
            )
            models[info.registered_model_version] = model
            versions[info.registered_model_version] = run.info.run_id
            formats[info.registered_model_version] = info.flavors["sklearn"]["serialization_format"]

client = MlflowClient()
client.set_registered_model_alias("churn", "champion", "1")
experiment = client.get_experiment_by_name("churn")
pages, token = [], None
while True:
    page = client.search_runs(
        [experiment.experiment_id],
        filter_string="params.solver = 'auto' and metrics.rmse < 1",
        order_by=["metrics.rmse ASC"],
        max_results=2,
        page_token=token,
    )
    pages.append([r.info.run_id for r in page])
    token = page.token
    if not token:
        break

by_alias = mlflow.pyfunc.load_model("models:/churn@champion")
by_version = mlflow.pyfunc.load_model("models:/churn/1")
second = mlflow.pyfunc.load_model("models:/churn/2")
# the stages MLflow 2 teams used before aliases (deprecated in 3.x, still answered)
client.transition_model_version_stage("churn", "2", "Staging")
staging = mlflow.pyfunc.load_model("models:/churn/Staging")
first = client.get_run(runs[0]["id"])
champion = client.get_model_version_by_alias("churn", "champion")
print(
    json.dumps(
        {
            "mlflow": mlflow.__version__,
            "runs": runs,
            "versions": versions,
            "formats": formats,
            "pages": pages,
            "expected": models["1"].predict(X).tolist(),
            "expected_2": models["2"].predict(X).tolist(),
            "by_alias": by_alias.predict(X).tolist(),
            "by_version": by_version.predict(X).tolist(),
            "version_2": second.predict(X).tolist(),
            "staging": staging.predict(X).tolist(),
            "champion": [champion.version, champion.run_id, champion.status],
            "history": [
                [m.step, m.value] for m in client.get_metric_history(runs[0]["id"], "loss")
            ],
            "params": first.data.params,
            "datasets": [d.dataset.name for d in first.inputs.dataset_inputs],
            "artifacts": [
                (a.path, a.is_dir, a.file_size) for a in client.list_artifacts(runs[0]["id"])
            ],
            "docs": [a.path for a in client.list_artifacts(runs[0]["id"], "docs")],
        }
    )
)
