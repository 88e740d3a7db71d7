"""Run in benchmarks/serving/.venv-mlflow: train both models, log them with MLflow into a fresh
SQLite tracking store under WORKDIR, and print {model: local model directory} as JSON for
`mlflow models serve -m DIR`.

    .venv-mlflow/bin/python mlflow_setup.py WORKDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from models import MODELS, check_same, load_data, train


def main() -> None:
    import mlflow
    import mlflow.sklearn

    work = Path(sys.argv[1])
    root = work / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    expected = json.loads((work / "expected.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    experiment_id = mlflow.create_experiment(
        "bench", artifact_location=(root / "artifacts").as_uri()
    )
    X, y = load_data()
    dirs = {}
    for name in MODELS:
        model = train(name, X, y)
        check_same(name, model, X, expected[name])
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                model,
                name=name,
                input_example=X[:32],
                # MLflow 3 saves with skops by default and asks to trust tree internals
                skops_trusted_types=["sklearn.tree._tree.Tree"] if name == "rf" else None,
            )
        dirs[name] = mlflow.artifacts.download_artifacts(
            artifact_uri=info.model_uri, dst_path=str(root / "served" / name)
        )
    print(json.dumps(dirs))


if __name__ == "__main__":
    main()
