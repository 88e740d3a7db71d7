"""A LightGBM classifier as ONNX in double precision, built from the booster's own dump.

onnxmltools converts a LightGBM classifier to a TreeEnsembleClassifier with float32 inputs
and thresholds only; a feature value between a double threshold and its float32 rounding
takes the other branch, and the probabilities drift (6e-3 on 300 trees). Here the trees'
raw scores become a TreeEnsembleRegressor (ai.onnx.ml opset 3, whose `*_as_tensor`
attributes hold double thresholds and leaf values; onnxruntime compares a double input with
them and sums the leaves in double) with one target per class (one for a binary model);
the raw scores are cast to double and turned into probabilities as LightGBM does (binary:
sigmoid of sigmoid_param * score, giving [1 - p, p]; multiclass: softmax), and the label is
the class of the highest probability. Outputs: label first, probabilities second (what
OnnxPredictor reads).

Only what this builder reproduces exactly is converted: numerical `<=` splits, NaN routed as
LightGBM routes it, the binary and multiclass (softmax) objectives, constant leaves; anything
else (categorical splits, linear trees, random-forest averaging, multiclassova, zero-as-
missing splits whose default side differs from zero's) raises Unsupported, and the caller
falls back to onnxmltools' conversion (checked as before).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np  # imported only to convert, which needs it

if TYPE_CHECKING:
    from shipyard.flavors.tree_onnx import Converter

ML_OPSET = 3  # TreeEnsembleRegressor with nodes_values_as_tensor (double thresholds)
OPSET = 15


class Unsupported(ValueError):
    """What this builder does not reproduce exactly (not a ConversionError: `convert_checked`
    records it and tries the next conversion)."""


def double_first(classes: list[Any], fallback: Converter) -> Converter:
    """A converter for `convert_checked`: "double" builds the classifier here, any other
    precision is `fallback`'s (onnxmltools)."""

    def convert(booster: Any, dtype: str, n_features: int) -> Any:
        if dtype == "double":
            return classifier_to_onnx(booster, classes, n_features)
        return fallback(booster, dtype, n_features)

    return convert


def classifier_to_onnx(booster: Any, classes: list[Any], n_features: int) -> Any:
    """The ModelProto of a LightGBM classifier booster (classes: its labels, index order)."""
    dump = booster.dump_model()
    objective = str(dump.get("objective", ""))
    n_targets = int(dump.get("num_tree_per_iteration", 1))
    if dump.get("average_output"):
        raise Unsupported("a random-forest LightGBM model (averaged trees)")
    if objective.startswith("binary") and n_targets == 1 and len(classes) == 2:
        scale = _sigmoid_param(objective)
    elif objective.startswith(("multiclass ", "softmax")) or objective == "multiclass":
        scale = None
        if n_targets != len(classes):
            raise Unsupported(f"{n_targets} trees per iteration for {len(classes)} classes")
    else:
        raise Unsupported(f"the objective {objective!r}")
    attrs = _ensemble(dump["tree_info"], n_targets)
    return _graph(attrs, n_targets, n_features, classes, scale)


def _sigmoid_param(objective: str) -> float:
    found = re.search(r"sigmoid:([0-9.eE+-]+)", objective)
    return float(found.group(1)) if found else 1.0


def _ensemble(trees: list[dict[str, Any]], n_targets: int) -> dict[str, list[Any]]:
    """TreeEnsembleRegressor attributes of the dumped trees (tree i scores class i % k)."""
    attrs: dict[str, list[Any]] = {
        k: []
        for k in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_modes",
            "nodes_values",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
            "target_treeids",
            "target_nodeids",
            "target_ids",
            "target_weights",
        )
    }
    for tree_id, tree in enumerate(trees):
        _add_tree(attrs, tree_id, tree_id % n_targets, tree["tree_structure"])
    return attrs


def _add_tree(attrs: dict[str, list[Any]], tree_id: int, target: int, root: dict[str, Any]) -> None:
    """Number the tree's nodes depth-first and append them (leaves also as targets)."""
    stack = [(root, 0)]
    next_id = 1
    while stack:
        node, node_id = stack.pop()
        attrs["nodes_treeids"].append(tree_id)
        attrs["nodes_nodeids"].append(node_id)
        if "leaf_value" in node or "split_feature" not in node:
            if "leaf_coeff" in node:
                raise Unsupported("a LightGBM model with linear trees")
            _leaf(attrs, tree_id, node_id, target, float(node.get("leaf_value", 0.0)))
            continue
        if node.get("decision_type") != "<=":
            raise Unsupported(f"a {node.get('decision_type')!r} (categorical) split")
        threshold = float(node["threshold"])
        left, right = next_id, next_id + 1
        next_id += 2
        attrs["nodes_featureids"].append(int(node["split_feature"]))
        attrs["nodes_modes"].append("BRANCH_LEQ")
        attrs["nodes_values"].append(threshold)
        attrs["nodes_truenodeids"].append(left)
        attrs["nodes_falsenodeids"].append(right)
        attrs["nodes_missing_value_tracks_true"].append(_nan_goes_left(node, threshold))
        stack += [(node["right_child"], right), (node["left_child"], left)]


def _leaf(
    attrs: dict[str, list[Any]], tree_id: int, node_id: int, target: int, value: float
) -> None:
    attrs["nodes_featureids"].append(0)
    attrs["nodes_modes"].append("LEAF")
    attrs["nodes_values"].append(0.0)
    attrs["nodes_truenodeids"].append(0)
    attrs["nodes_falsenodeids"].append(0)
    attrs["nodes_missing_value_tracks_true"].append(0)
    attrs["target_treeids"].append(tree_id)
    attrs["target_nodeids"].append(node_id)
    attrs["target_ids"].append(target)
    attrs["target_weights"].append(value)


def _nan_goes_left(node: dict[str, Any], threshold: float) -> int:
    """Where LightGBM sends NaN: the default side for missing_type NaN; otherwise NaN is read
    as 0.0 (and 0.0 takes the default side for missing_type Zero, which the ONNX comparison
    reproduces only when that side is where 0.0 <= threshold leads)."""
    missing = node.get("missing_type", "None")
    default_left = bool(node.get("default_left", True))
    if missing == "NaN":
        return int(default_left)
    if missing == "Zero" and default_left != (threshold >= 0.0):
        raise Unsupported("a zero-as-missing split that sends 0.0 against its comparison")
    return int(threshold >= 0.0)


def _graph(
    attrs: dict[str, list[Any]],
    n_targets: int,
    n_features: int,
    classes: list[Any],
    scale: float | None,
) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    doubles = {"nodes_values", "target_weights"}
    kwargs: dict[str, Any] = {k: v for k, v in attrs.items() if k not in doubles}
    for name in doubles:
        kwargs[f"{name}_as_tensor"] = numpy_helper.from_array(np.asarray(attrs[name], np.float64))
    nodes = [
        helper.make_node(
            "TreeEnsembleRegressor",
            ["input"],
            ["raw32"],
            domain="ai.onnx.ml",
            n_targets=n_targets,
            post_transform="NONE",
            aggregate_function="SUM",
            **kwargs,
        ),
        helper.make_node("Cast", ["raw32"], ["raw"], to=TensorProto.DOUBLE),
    ]
    inits = [numpy_helper.from_array(np.asarray(classes, np.int64), "classes")]
    if scale is None:
        nodes.append(helper.make_node("Softmax", ["raw"], ["probabilities"], axis=1))
    else:
        inits += [
            numpy_helper.from_array(np.asarray(scale, np.float64), "scale"),
            numpy_helper.from_array(np.asarray(1.0, np.float64), "one"),
        ]
        nodes += [
            helper.make_node("Mul", ["raw", "scale"], ["scaled"]),
            helper.make_node("Sigmoid", ["scaled"], ["p1"]),
            helper.make_node("Sub", ["one", "p1"], ["p0"]),
            helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        ]
    nodes += [
        helper.make_node("ArgMax", ["probabilities"], ["index"], axis=1, keepdims=0),
        helper.make_node("Gather", ["classes", "index"], ["label"], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "lightgbm_classifier_double",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, [None, n_features])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, None]),
        ],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="shipyard")
