"""Run in benchmarks/serving/.venv-mlserver: train this venv's copies of the benchmark's models,
check they predict what the reference models predict, and write one MLServer model repository
per model (`WORK/mlserver-NAME/`: its `settings.json` with the ports, and `NAME/` with
`model.joblib` and `model-settings.json` for MLServer's scikit-learn runtime).

    python mlserver_setup.py WORK NAME HTTP_PORT GRPC_PORT METRICS_PORT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from models import check_same, load_data, train


def main() -> None:
    work, name = Path(sys.argv[1]), sys.argv[2]
    http_port, grpc_port, metrics_port = (int(p) for p in sys.argv[3:6])
    import joblib

    X, y = load_data()
    model = train(name, X, y)
    check_same(name, model, X, json.loads((work / "expected.json").read_text())[name])
    root = work / f"mlserver-{name}"
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": name,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "1"},
            }
        )
    )
    (root / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                # inference in MLServer's main process, like shipyard's one worker; also, its
                # pool's worker process dies at start with the uvloop it installs (README.md)
                "parallel_workers": 0,
            }
        )
    )
    print(root)


if __name__ == "__main__":
    main()
