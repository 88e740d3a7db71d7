"""BentoML 1.4 services for the frameworks benchmark, run in benchmarks/.venv-fw-bentoml.

    python bentoml_fw.py CACHE_DIR                       # save the cached models into BENTOML_HOME
    BENCH_FLAVOR=xgboost bentoml serve bentoml_fw:Plain --port 3000
    BENCH_FLAVOR=xgboost bentoml serve bentoml_fw:Batched --port 3000

XGBoost and LightGBM go through BentoML's own framework modules (`bentoml.xgboost`,
`bentoml.lightgbm`: save_model/load_model). BentoML 1.4 deprecated its PyTorch module, so the
MLP is loaded with plain torch in the service (what its 1.4 docs show for PyTorch). `Plain`
predicts once per request; `Batched` lets BentoML's adaptive batching merge requests.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import bentoml
import numpy as np
import pandas as pd

FLAVOR = os.environ.get("BENCH_FLAVOR", "xgboost")
CACHE = os.environ.get("BENCH_CACHE", "")


def _load() -> object:
    if FLAVOR == "xgboost":
        return bentoml.xgboost.load_model("fw_xgboost:latest")
    if FLAVOR == "lightgbm":
        return bentoml.lightgbm.load_model("fw_lightgbm:latest")
    import torch
    from fwmodels import FILES, load, read_meta

    torch.set_num_threads(1)
    return load("torch", Path(CACHE) / FILES["torch"], read_meta(Path(CACHE)).features)


def _predict(model: object, instances: list[dict[str, float]]) -> list[int]:
    frame = pd.DataFrame(instances)
    if FLAVOR == "xgboost":  # bentoml.xgboost loads a Booster: it predicts on a DMatrix
        import xgboost

        p = model.predict(xgboost.DMatrix(frame))  # type: ignore[attr-defined]
    elif FLAVOR == "lightgbm":
        p = model.predict(frame)  # type: ignore[attr-defined]
    else:
        import torch

        with torch.no_grad():
            x = torch.tensor(frame.to_numpy(), dtype=torch.float32)
            return model(x).argmax(dim=1).tolist()  # type: ignore[operator,no-any-return]
    return (np.asarray(p) > 0.5).astype(int).tolist()  # type: ignore[no-any-return]


@bentoml.service
class Plain:
    def __init__(self) -> None:
        self.model = _load()

    @bentoml.api
    def predict(self, instances: list[dict[str, float]]) -> list[int]:
        return _predict(self.model, instances)


@bentoml.service
class Batched:
    def __init__(self) -> None:
        self.model = _load()

    @bentoml.api(batchable=True, max_batch_size=256, max_latency_ms=1000)
    def predict(self, instances: list[dict[str, float]]) -> list[int]:
        return _predict(self.model, instances)


def save_models(cache: Path) -> None:
    import lightgbm
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(cache / "xgboost.json"))
    bentoml.xgboost.save_model("fw_xgboost", booster)
    bentoml.lightgbm.save_model(
        "fw_lightgbm", lightgbm.Booster(model_file=str(cache / "lightgbm.txt"))
    )


if __name__ == "__main__":
    save_models(Path(sys.argv[1]))
