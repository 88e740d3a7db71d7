"""An ONNX converter that is not installed is no verdict on the model: the version is recorded
`unavailable` (saying what to install), not `refused` as if its conversion did not match, and a
later conversion with the converter installed converts it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import xgboost as xgb

from shipyard.config import Settings
from shipyard.registry import Registry
from shipyard.stores import open_stores

pytestmark = pytest.mark.slow  # converts an XGBoost model


def test_a_missing_converter_is_unavailable_then_converted(
    settings: Settings, breast_cancer: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    X, y = breast_cancer
    model = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y)
    reg = Registry(open_stores(settings))
    # what an environment without onnxmltools looks like to `import onnxmltools`, here and in
    # the child process a booster converts in (a sitecustomize on its PYTHONPATH)
    for name in [m for m in sys.modules if m.split(".")[0] == "onnxmltools"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "onnxmltools", None)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text("import sys\nsys.modules['onnxmltools'] = None\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    reg.register("xgb", model, input_example=X[:20])
    Registry.wait_for_conversions(timeout=120)
    mv = reg.resolve("models:/xgb/1")
    assert mv.onnx_status == "unavailable", mv.onnx_detail
    assert mv.onnx_detail is not None
    assert mv.onnx_detail.startswith("unavailable: ") and "shipyard[xgboost]" in mv.onnx_detail
    assert "does not match" not in mv.onnx_detail
    monkeypatch.undo()  # the converter installed: converting again converts it
    assert reg.convert("xgb", 1).onnx_status == "ok"
