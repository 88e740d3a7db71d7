"""Hostile ONNX models: tensors whose data lives in a file outside the model, at the top level
and inside a subgraph."""

from __future__ import annotations


def external_data_model(location: str, *, in_subgraph: bool = False) -> bytes:
    """y = x + w with w's 4 floats read from `location` (ONNX external data)."""
    from onnx import TensorProto, helper

    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    if not in_subgraph:
        graph = helper.make_graph(
            [helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [weight]
        )
    else:
        const = helper.make_node("Constant", [], ["w"], value=weight)
        add = helper.make_node("Add", ["x", "w"], ["y"])
        branch = helper.make_graph([const, add], "branch", [], [y])
        cond = helper.make_tensor("c", TensorProto.BOOL, [], [True])
        node = helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)
        graph = helper.make_graph([node], "g", [x], [y], [cond])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()  # type: ignore[no-any-return]
