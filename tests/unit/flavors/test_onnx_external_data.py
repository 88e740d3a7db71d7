"""An ONNX model is one self-contained artifact: tensors whose data lives in another file (an
absolute path, a path out of the folder, or inside a subgraph) are refused before
onnxruntime opens anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shipyard.errors import UntrustedModelError
from shipyard.flavors.onnx import OnnxPredictor
from shipyard.flavors.signature import infer_signature
from tests.hostile.onnx_files import external_data_model


@pytest.mark.parametrize("in_subgraph", [False, True])
@pytest.mark.parametrize("where", ["absolute", "traversal"])
def test_external_data_is_refused(tmp_path: Path, where: str, in_subgraph: bool) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"s" * 16)
    location = str(secret) if where == "absolute" else "../" * 12 + str(secret).lstrip("/")
    signature = infer_signature(np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(UntrustedModelError, match="external file"):
        OnnxPredictor.from_bytes(external_data_model(location, in_subgraph=in_subgraph), signature)


def test_a_self_contained_model_still_loads() -> None:
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    signature = infer_signature(np.zeros((1, 4), dtype=np.float32))
    predictor = OnnxPredictor.from_bytes(model.SerializeToString(), signature)
    assert predictor.session.get_inputs()[0].name == "x"
