"""An MLflow 3 training script that logs, registers and loads models, as a team has it today:
it knows nothing of shipyard (the server comes from MLFLOW_TRACKING_URI). It prints what the
client saw as one JSON line for the test to compare with shipyard's own view."""

import json
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

rng = np.random.default_rng(7)
X = pd.DataFrame({"tenure": rng.normal(size=200), "spend": rng.normal(size=200)})
y = (X.tenure - 0.5 * X.spend + rng.normal(scale=0.3, size=200) > 0).astype(int)
model = LogisticRegression(C=0.5).fit(X, y)

mlflow.set_experiment("mlflow-models")
with mlflow.start_run(run_name="churn-lr") as run:
    mlflow.log_param("C", 0.5)
    mlflow.log_metric("accuracy", float(model.score(X, y)))
    notes = Path(tempfile.mkdtemp()) / "notes.txt"
    notes.write_text("trained on 200 rows\n")
    mlflow.log_artifact(str(notes), artifact_path="docs")
    info = mlflow.sklearn.log_model(
        model, name="model", registered_model_name="churn", input_example=X[:5]
    )
    pickled = mlflow.sklearn.log_model(
        model,
        name="pickled",
        registered_model_name="churn-pickled",
        input_example=X[:5],
        serialization_format="cloudpickle",
    )

client = MlflowClient()
client.set_registered_model_alias("churn", "champion", info.registered_model_version)
by_alias = mlflow.pyfunc.load_model("models:/churn@champion")
by_version = mlflow.pyfunc.load_model("models:/churn/1")
native = mlflow.sklearn.load_model("models:/churn@champion")
logged = mlflow.pyfunc.load_model(info.model_uri)
version = client.get_model_version("churn", "1")
registered = client.get_registered_model("churn")
found = client.search_model_versions("name='churn'")
artifacts = client.list_artifacts(run.info.run_id, "docs")
# models shipyard registered itself (the test did, before this script ran)


def flat(out):
    """A pyfunc's answer as a list: MLflow's ONNX flavor answers a frame of its outputs."""
    if isinstance(out, pd.DataFrame):
        out = out.iloc[:, 0]
    return np.asarray(out.tolist() if hasattr(out, "tolist") else out).ravel().tolist()


shipyard_made = {
    uri: flat(mlflow.pyfunc.load_model(uri).predict(X))
    for uri in ("models:/native-skops@prod", "models:/native-onnx/1")
}
local = client.download_artifacts(run.info.run_id, "docs/notes.txt", tempfile.mkdtemp())
print(
    json.dumps(
        {
            "run_id": run.info.run_id,
            "model_id": info.model_id,
            "model_uri": info.model_uri,
            "version": info.registered_model_version,
            "pickled_version": pickled.registered_model_version,
            "expected": model.predict(X).tolist(),
            "by_alias": by_alias.predict(X).tolist(),
            "by_version": by_version.predict(X).tolist(),
            "native": native.predict(X).tolist(),
            "logged": logged.predict(X).tolist(),
            "version_status": version.status,
            "version_source": version.source,
            "version_run": version.run_id,
            "aliases": registered.aliases,
            "found": [(v.name, v.version) for v in found],
            "artifacts": [(a.path, a.is_dir, a.file_size) for a in artifacts],
            "notes": Path(local).read_text(),
            "shipyard_made": shipyard_made,
            "python": sys.version.split()[0],
        }
    )
)
