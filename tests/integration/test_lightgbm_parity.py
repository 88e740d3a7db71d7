"""A LightGBM classifier served through ONNX answers LightGBM's own probabilities on thousands
of held-out rows (double-precision thresholds, leaves and link), and a conversion that only
matches on the few example rows is refused once the reference data's rows are checked."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb  # the dev extra installs it (shipyard[lightgbm])
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import ConversionError
from shipyard.flavors import read_manifest
from shipyard.registry import Registry
from shipyard.stores import open_stores

pytestmark = pytest.mark.slow  # trains boosters on thousands of rows


def _data(n_classes: int) -> tuple[pd.DataFrame, Any, pd.DataFrame]:
    """(train X, train y, 5,000 held-out rows). Features around 1e5 (amounts, timestamps):
    float32 keeps about two decimals there, so many rows fall within float32 rounding of a
    split threshold and a float32 conversion routes them down the other branch."""
    X, y = make_classification(
        n_samples=8000, n_features=20, n_informative=12, n_classes=n_classes,
        shift=100.0, scale=1000.0, random_state=0,
    )  # fmt: skip
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(20)])
    return frame.iloc[:3000], y[:3000], frame.iloc[3000:]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_lightgbm_classifier_onnx_matches_on_held_out_rows(
    settings: Settings, n_classes: int
) -> None:
    X, y, held_out = _data(n_classes)
    model = lgb.LGBMClassifier(n_estimators=100, verbose=-1).fit(X, y)
    stores = open_stores(settings)
    reg = Registry(stores)
    reg.register("lgb", model, input_example=X[:5], onnx=True)
    mv = reg.resolve("models:/lgb/1")
    assert mv.onnx_status == "ok", mv.onnx_detail
    parity = read_manifest(stores.artifacts, mv.artifact_digest)["onnx"]["parity"]
    assert "(double inputs)" in parity, parity
    loaded = sy.load_model("models:/lgb/1")
    assert loaded.backend == "onnxruntime"
    proba = np.asarray(loaded.predict_proba(held_out))
    drift = float(np.max(np.abs(proba - model.predict_proba(held_out))))
    assert drift <= 1e-6, drift
    assert np.array_equal(loaded.predict(held_out), model.predict(held_out))


def test_reference_rows_refuse_a_conversion_the_example_passes(settings: Settings) -> None:
    """Feature values that differ only past float32's precision (1000.00001 vs 1000.00002)
    take other branches in onnxmltools' conversion (float32 thresholds): the first five rows
    happen to match, a thousand rows of the training data do not."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": 1000 + rng.integers(0, 2000, 2000) * 1e-5, "b": rng.normal(size=2000)})
    y = np.sin((X["a"] - 1000) * 3000) * 100 + X["b"]
    model = lgb.LGBMRegressor(n_estimators=50, min_child_samples=2, verbose=-1).fit(X, y)
    reg = Registry(open_stores(settings))
    reg.register("drift", model, input_example=X[:5])
    reg.register("drift", model, input_example=X[:5], reference_data=X)
    Registry.wait_for_conversions(timeout=120)
    example_only, with_reference = reg.resolve("models:/drift/1"), reg.resolve("models:/drift/2")
    assert example_only.onnx_status == "ok", example_only.onnx_detail
    assert with_reference.onnx_status == "refused"
    assert "relative to the largest" in (with_reference.onnx_detail or "")
    assert sy.load_model("models:/drift/2").backend == "python"
    with pytest.raises(ConversionError, match="relative to the largest"):
        reg.register("drift", model, input_example=X[:5], reference_data=X, onnx=True)
