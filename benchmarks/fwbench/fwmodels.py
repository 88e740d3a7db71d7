"""The data and models of the frameworks benchmark, imported by every virtualenv (shipyard's
and each peer's). Training happens once, in shipyard's virtualenv, and is cached: the models
are stored in their libraries' own formats (XGBoost JSON, LightGBM text, a PyTorch state
dict), so every server loads the very same trees and weights.

Needs numpy and pandas; scikit-learn to generate data; the framework of the model at hand."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BOOSTERS = ("xgboost", "lightgbm")
FLAVORS = (*BOOSTERS, "torch")
TITLES = {
    "xgboost": "XGBClassifier(300 trees, depth 6)",
    "lightgbm": "LGBMClassifier(300 trees, depth 6)",
    "torch": "PyTorch MLP (2 x 256, ReLU)",
}
FILES = {"xgboost": "xgboost.json", "lightgbm": "lightgbm.txt", "torch": "mlp.pt"}


@dataclass(frozen=True)
class DataSpec:
    rows: int = 100_000
    features: int = 30
    trees: int = 300
    depth: int = 6
    test_rows: int = 10_000
    seed: int = 0

    @property
    def key(self) -> str:
        return f"r{self.rows}-f{self.features}-t{self.trees}-d{self.depth}-s{self.seed}"


def columns(n: int) -> list[str]:
    return [f"f{i:02d}" for i in range(n)]


def make_data(spec: DataSpec, task: str = "classification") -> tuple[Any, Any, Any, Any]:
    """(X_train, y_train, X_test, y_test); X as float64 DataFrames with named columns. The test
    rows (spec.test_rows) are the ones served and compared."""
    import pandas as pd
    from sklearn.datasets import make_classification, make_regression

    n = spec.rows + spec.test_rows
    if task == "classification":
        X, y = make_classification(
            n_samples=n, n_features=spec.features, n_informative=spec.features * 2 // 3,
            n_redundant=spec.features // 6, random_state=spec.seed,
        )  # fmt: skip
    else:
        X, y = make_regression(
            n_samples=n, n_features=spec.features, n_informative=spec.features * 2 // 3,
            noise=5.0, random_state=spec.seed,
        )  # fmt: skip
    frame = pd.DataFrame(X, columns=columns(spec.features))
    return frame.iloc[: spec.rows], y[: spec.rows], frame.iloc[spec.rows :], y[spec.rows :]


def train(flavor: str, spec: DataSpec, X: Any, y: Any, task: str = "classification") -> Any:
    if flavor == "xgboost":
        import xgboost

        cls = xgboost.XGBClassifier if task == "classification" else xgboost.XGBRegressor
        return cls(
            n_estimators=spec.trees, max_depth=spec.depth, tree_method="hist", n_jobs=2,
            random_state=spec.seed,
        ).fit(X, y)  # fmt: skip
    if flavor == "lightgbm":
        import lightgbm

        cls = lightgbm.LGBMClassifier if task == "classification" else lightgbm.LGBMRegressor
        return cls(
            n_estimators=spec.trees, max_depth=spec.depth, num_leaves=2**spec.depth - 1,
            n_jobs=2, random_state=spec.seed, verbose=-1,
        ).fit(X, y)  # fmt: skip
    if flavor == "torch":
        return train_mlp(spec, X, y)
    raise ValueError(f"unknown flavor {flavor!r}; choose from {FLAVORS}")


def save(flavor: str, model: Any, path: Path) -> None:
    if flavor == "torch":
        import torch

        torch.save(model.state_dict(), path)
    else:
        model.save_model(str(path)) if flavor == "xgboost" else model.booster_.save_model(path)


def load(flavor: str, path: Path, n_features: int) -> Any:
    """The model saved by `save`, as its library's classifier (predict, predict_proba)."""
    if flavor == "xgboost":
        import xgboost

        model = xgboost.XGBClassifier()
        model.load_model(str(path))
        return model
    if flavor == "lightgbm":
        import lightgbm

        return BoosterClassifier(lightgbm.Booster(model_file=str(path)))
    if flavor == "torch":
        import torch

        module = mlp(n_features)
        module.load_state_dict(torch.load(path, weights_only=True))
        return module.eval()
    raise ValueError(f"unknown flavor {flavor!r}")


class BoosterClassifier:
    """A binary LightGBM Booster loaded from its text file, answering like LGBMClassifier
    (LightGBM's own predict; labels 0/1)."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict_proba(self, X: Any) -> Any:
        import numpy as np

        p = np.asarray(self.booster.predict(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> Any:
        return (self.booster.predict(X) > 0.5).astype(int)


def mlp(n_features: int) -> Any:
    """The MLP: n_features → 256 → 256 → 2 logits, ReLU."""
    from torch import nn

    return nn.Sequential(
        nn.Linear(n_features, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2)
    )


def train_mlp(spec: DataSpec, X: Any, y: Any, epochs: int = 3) -> Any:
    import torch

    torch.manual_seed(spec.seed)
    module = mlp(spec.features)
    x = torch.tensor(X.to_numpy(), dtype=torch.float32)
    t = torch.tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    for _ in range(epochs):
        for i in range(0, len(x), 512):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(x[i : i + 512]), t[i : i + 512])
            loss.backward()
            opt.step()
    return module.eval()


def labels(flavor: str, model: Any, X: Any) -> list[int]:
    """The model's own labels for the rows X (a DataFrame)."""
    if flavor == "torch":
        import torch

        with torch.no_grad():
            out = model(torch.tensor(X.to_numpy(), dtype=torch.float32))
        return [int(v) for v in out.argmax(dim=1)]
    return [int(v) for v in model.predict(X)]


def write_meta(cache: Path, spec: DataSpec) -> None:
    (cache / "spec.json").write_text(json.dumps(asdict(spec)))


def read_meta(cache: Path) -> DataSpec:
    return DataSpec(**json.loads((cache / "spec.json").read_text()))
