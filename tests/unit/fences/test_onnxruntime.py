"""fences/onnxruntime.py: its check passes on the installed onnxruntime, a predictor calls the
compiled session directly; without onnxruntime's private module it logs one line and predicts
through `InferenceSession.run`, with the same outputs."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from onnxruntime import capi

from shipyard.fences import onnxruntime as fence
from shipyard.flavors.onnx import OnnxPredictor
from shipyard.flavors.signature import infer_signature


@pytest.fixture(autouse=True)
def _fresh_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fence, "_usable", None)  # restored after the test


def _predictor() -> tuple[OnnxPredictor, dict[str, np.ndarray]]:
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [3], [1.0, -2.0, 0.5])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    signature = infer_signature(rows)
    columns = signature.columns_from_records(
        [dict(zip(signature.names, r.tolist(), strict=True)) for r in rows]
    )
    return OnnxPredictor.from_bytes(model.SerializeToString(), signature), columns


def test_check_passes_and_calls_go_to_the_compiled_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "shipyard.fences"):
        assert fence.check() is True
        predictor, _ = _predictor()
    assert caplog.records == []
    assert predictor._run_now is not None
    assert predictor._run_now == predictor.session._sess.run


def test_without_the_private_module_predictions_go_through_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    direct, columns = _predictor()
    expected = direct.predict_columns(columns)
    monkeypatch.delattr(capi, "_pybind_state")  # onnxruntime's own modules keep their reference
    with caplog.at_level(logging.WARNING, "shipyard.fences"):
        assert fence.check() is False
        public, _ = _predictor()
    assert len(caplog.records) == 1
    assert "capi._pybind_state.InferenceSession" in caplog.records[0].getMessage()
    assert public._run_now is None
    got = public.predict_columns(columns)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(expected[1], [3.0, -8.0, 2.5])


def test_a_session_without_sess_uses_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Session:
        def run(self, *args: object) -> None: ...

    with caplog.at_level(logging.WARNING, "shipyard.fences"):
        assert fence.direct_run(Session()) is None
    assert len(caplog.records) == 1
