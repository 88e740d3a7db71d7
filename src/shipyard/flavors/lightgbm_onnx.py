"""A LightGBM classifier as ONNX in double precision, built from the booster's own dump.

onnxmltools converts a LightGBM classifier to a TreeEnsembleClassifier with float32 inputs
and thresholds only; a feature value between a double threshold and its float32 rounding
takes the other branch, and the probabilities drift (6e-3 on 300 trees). Here the trees'
raw scores become a TreeEnsemble (ai.onnx.ml opset 5, tested on onnxruntime 1.32: thresholds, leaf
values, their sum and its output all in the input's type, double) with one target per class
(one for a binary model); they are turned into probabilities as LightGBM does (binary:
sigmoid of sigmoid_param * score, giving [1 - p, p]; multiclass: softmax), in double, and the
label is the class of the highest probability. Outputs: label first, probabilities second
(what OnnxPredictor reads). Probabilities match LightGBM's to ~1e-15. (With opset 3's
TreeEnsembleRegressor and `*_as_tensor` double attributes onnxruntime also compares and sums
in double, but its output is float32: ~1e-8 on probabilities.)

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

ML_OPSET = 5  # TreeEnsemble: double thresholds, leaves, sums and output
OPSET = 21


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
    """TreeEnsemble (ai.onnx.ml 5) attributes of the dumped trees (tree i scores class i % k):
    split nodes and leaves in their own lists, each child either a node or a leaf."""
    names = (
        "tree_roots",
        "nodes_featureids",
        "nodes_splits",
        "nodes_truenodeids",
        "nodes_trueleafs",
        "nodes_falsenodeids",
        "nodes_falseleafs",
        "nodes_missing_value_tracks_true",
        "leaf_targetids",
        "leaf_weights",
    )
    attrs: dict[str, list[Any]] = {k: [] for k in names}
    for tree_id, tree in enumerate(trees):
        root = tree["tree_structure"]
        attrs["tree_roots"].append(len(attrs["nodes_splits"]))
        if _is_leaf(root):  # a tree without splits: one that leads to its leaf both ways
            leaf = _leaf(attrs, tree_id % n_targets, root)
            _split(attrs, 0, float("inf"), 1, ((leaf, 1), (leaf, 1)))
        else:
            _add_node(attrs, tree_id % n_targets, root)
    return attrs


def _is_leaf(node: dict[str, Any]) -> bool:
    return "leaf_value" in node or "split_feature" not in node


def _add_node(attrs: dict[str, list[Any]], target: int, node: dict[str, Any]) -> int:
    """Append a split node and its subtrees; its index. Depth is LightGBM's (bounded by its
    leaves), so the recursion is shallow."""
    if node.get("decision_type") != "<=":
        raise Unsupported(f"a {node.get('decision_type')!r} (categorical) split")
    threshold = float(node["threshold"])
    index = _split(attrs, int(node["split_feature"]), threshold, _nan_goes_left(node, threshold))
    for side, child in (("true", node["left_child"]), ("false", node["right_child"])):
        if _is_leaf(child):
            attrs[f"nodes_{side}nodeids"][index] = _leaf(attrs, target, child)
            attrs[f"nodes_{side}leafs"][index] = 1
        else:
            attrs[f"nodes_{side}nodeids"][index] = _add_node(attrs, target, child)
    return index


def _split(
    attrs: dict[str, list[Any]],
    feature: int,
    threshold: float,
    nan_left: int,
    children: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0)),
) -> int:
    (true_id, true_leaf), (false_id, false_leaf) = children
    attrs["nodes_featureids"].append(feature)
    attrs["nodes_splits"].append(threshold)
    attrs["nodes_missing_value_tracks_true"].append(nan_left)
    attrs["nodes_truenodeids"].append(true_id)
    attrs["nodes_trueleafs"].append(true_leaf)
    attrs["nodes_falsenodeids"].append(false_id)
    attrs["nodes_falseleafs"].append(false_leaf)
    return len(attrs["nodes_splits"]) - 1


def _leaf(attrs: dict[str, list[Any]], target: int, node: dict[str, Any]) -> int:
    if "leaf_coeff" in node:
        raise Unsupported("a LightGBM model with linear trees")
    attrs["leaf_targetids"].append(target)
    attrs["leaf_weights"].append(float(node.get("leaf_value", 0.0)))
    return len(attrs["leaf_weights"]) - 1


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

    kwargs: dict[str, Any] = {
        k: v for k, v in attrs.items() if k not in ("nodes_splits", "leaf_weights")
    }
    n_nodes = len(attrs["nodes_splits"])
    kwargs["nodes_modes"] = numpy_helper.from_array(np.zeros(n_nodes, np.uint8))  # BRANCH_LEQ
    for name in ("nodes_splits", "leaf_weights"):
        kwargs[name] = numpy_helper.from_array(np.asarray(attrs[name], np.float64))
    nodes = [
        helper.make_node(
            "TreeEnsemble",
            ["input"],
            ["raw"],
            domain="ai.onnx.ml",
            n_targets=n_targets,
            post_transform=0,  # none
            aggregate_function=1,  # sum
            **kwargs,
        )
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
