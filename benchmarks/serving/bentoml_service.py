"""BentoML 1.4 services for the benchmark, run in benchmarks/serving/.venv-bentoml.

    python bentoml_service.py WORKDIR                  # train, check, save into BENTOML_HOME
    BENCH_MODEL=rf bentoml serve bentoml_service:Plain --port 3000
    BENCH_MODEL=rf bentoml serve bentoml_service:Batched --port 3000
    curl -s 127.0.0.1:3000/predict -d '{"instances": [{"mean radius": 17.99, ...}]}'

`Plain` calls the model once per request; `Batched` lets BentoML's adaptive batching merge
concurrent requests (rows are concatenated, outputs split back).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import bentoml
import pandas as pd

MODEL_TAG = f"bc_{os.environ.get('BENCH_MODEL', 'logreg')}:latest"


def _predict(model, instances: list[dict[str, float]]) -> list[int]:
    return model.predict(pd.DataFrame(instances)).tolist()


@bentoml.service
class Plain:
    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(MODEL_TAG)

    @bentoml.api
    def predict(self, instances: list[dict[str, float]]) -> list[int]:
        return _predict(self.model, instances)


@bentoml.service
class Batched:
    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(MODEL_TAG)

    @bentoml.api(batchable=True, max_batch_size=256, max_latency_ms=1000)
    def predict(self, instances: list[dict[str, float]]) -> list[int]:
        return _predict(self.model, instances)


def save_models(work: Path) -> None:
    from models import MODELS, check_same, load_data, train

    expected = json.loads((work / "expected.json").read_text())
    X, y = load_data()
    for name in MODELS:
        model = train(name, X, y)
        check_same(name, model, X, expected[name])
        bentoml.sklearn.save_model(f"bc_{name}", model)


if __name__ == "__main__":
    save_models(Path(sys.argv[1]))
