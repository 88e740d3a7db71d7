"""Run in benchmarks/.venv-fw-mlflow: log each cached model with MLflow into a fresh SQLite
tracking store under WORK (registering it), timed `reps` times after one untimed warm-up, and
print {"dirs": {flavor: local model directory}, "seconds": {flavor: [..]}} as JSON (the
directories are for `mlflow models serve -m DIR`).

    .venv-fw-mlflow/bin/python peer_mlflow.py CACHE WORK REPS FLAVOR[,FLAVOR]
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fwmodels import FILES, columns, labels, load, read_meta


def log_one(mlflow: Any, flavor: str, model: Any, example: Any, name: str) -> Any:
    module = {"xgboost": mlflow.xgboost, "lightgbm": mlflow.lightgbm, "torch": mlflow.pytorch}
    with mlflow.start_run():
        return module[flavor].log_model(
            model, name="model", input_example=example, registered_model_name=name
        )


def main() -> None:
    import mlflow
    import mlflow.lightgbm
    import mlflow.xgboost

    cache, work, reps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    flavors = sys.argv[4].split(",")
    spec = read_meta(cache)
    X = pd.DataFrame(np.load(cache / "test.npy"), columns=columns(spec.features))
    expected = json.loads((cache / "labels.json").read_text())
    root = work / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    # artifacts under WORK too (the default, ./mlruns, would land in the working directory)
    artifacts = (root / "artifacts").as_uri()
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("fwbench", artifacts))
    dirs, seconds = {}, {}
    for flavor in flavors:
        if flavor == "torch":
            import mlflow.pytorch
        model = load(flavor, cache / FILES[flavor], spec.features)
        if labels(flavor, model, X.iloc[:1000]) != expected[flavor][:1000]:
            raise SystemExit(f"{flavor}: MLflow's venv predicts differently from the reference")
        # mlflow.pytorch's default format (pt2) traces the module: it needs an array example,
        # and the model then takes a tensor ({"inputs": [[...], ...]} over HTTP)
        example = X.iloc[:5] if flavor != "torch" else X.iloc[:5].to_numpy(np.float32)
        if flavor == "lightgbm":  # mlflow.lightgbm takes the Booster itself
            model = model.booster
        info = log_one(mlflow, flavor, model, example, f"fw_{flavor}")  # warm-up, untimed
        times = []
        for _ in range(reps):
            gc.collect()
            start = time.perf_counter()
            log_one(mlflow, flavor, model, example, f"fw_{flavor}")
            times.append(time.perf_counter() - start)
        seconds[flavor] = times
        dirs[flavor] = mlflow.artifacts.download_artifacts(
            artifact_uri=info.model_uri, dst_path=str(root / "served" / flavor)
        )
    print(json.dumps({"dirs": dirs, "seconds": seconds}))


if __name__ == "__main__":
    main()
