"""Hostile XGBoost (JSON/UBJSON) and LightGBM (text) model files: no pickle, no code, only
numbers the native libraries trust. Each crashed the process (SIGSEGV, heap corruption,
SIGABRT) or allocated gigabytes when loaded or asked to predict, before shipyard checked them
(red team report, findings 1 and 5). Made from a small real model, one field changed."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np


def small_xgboost() -> Any:
    """A 3-tree, depth-1 Booster on 4 features (a, b, c, d)."""
    import pandas as pd
    import xgboost

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(50, 4)), columns=list("abcd"))
    return xgboost.train({"max_depth": 1}, xgboost.DMatrix(X, X.a > 0), num_boost_round=3)


def small_lightgbm() -> Any:
    import lightgbm
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=list("abcd"))
    params = {"num_leaves": 3, "verbose": -1, "objective": "binary"}
    return lightgbm.train(params, lightgbm.Dataset(X, X.a > 0), num_boost_round=3)


def _tree0(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["learner"]["gradient_booster"]["model"]["trees"][0]  # type: ignore[no-any-return]


def _set_tree(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: _tree0(d).__setitem__(key, value)


def _model(d: dict[str, Any]) -> dict[str, Any]:
    return d["learner"]["gradient_booster"]["model"]  # type: ignore[no-any-return]


XGBOOST_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "split_idx_huge": _set_tree("split_indices", [100_000_000, 0, 0]),
    "split_idx_neg": _set_tree("split_indices", [-7, 0, 0]),
    "child_cycle": _set_tree("left_children", [0, -1, -1]),
    "child_oob": _set_tree("left_children", [1000, -1, -1]),
    "nan_cond": _set_tree("split_conditions", [float("nan"), 0, 0]),
    "num_nodes_lie": lambda d: _tree0(d)["tree_param"].__setitem__("num_nodes", "1000000000"),
    "num_trees_huge": lambda d: _model(d)["gbtree_model_param"].__setitem__(
        "num_trees", "2000000000"
    ),
    "num_class_huge": lambda d: d["learner"]["learner_model_param"].__setitem__(
        "num_class", "1000000000"
    ),
    "tree_info_oob": lambda d: _model(d).__setitem__("tree_info", [5, 5, 5]),
    "iteration_indptr_bad": lambda d: _model(d).__setitem__("iteration_indptr", [0, 100]),
}


def xgboost_variants(booster: Any) -> dict[str, bytes]:
    """Hostile JSON model files, by name, made from `booster`."""
    base = json.loads(bytes(booster.save_raw("json")))
    out = {}
    for name, edit in XGBOOST_EDITS.items():
        doc = copy.deepcopy(base)
        edit(doc)
        out[name] = json.dumps(doc).encode()
    plain = json.dumps(base)
    out["deep_nest"] = (plain[:-1] + ',"zzz":' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    return out


def lightgbm_variants(booster: Any) -> dict[str, str]:
    """Hostile text models, by name, made from `booster` (the first tree edited; most
    without `tree_sizes`, so LightGBM reads the edited tree, one with a stale one)."""
    base = booster.model_to_string()
    sizeless = re.sub(r"^tree_sizes=.*\n", "", base, flags=re.M)
    tree0 = sizeless.split("Tree=0\n")[1].split("\n\n")[0]

    def edit(**fields: str) -> str:
        tree = tree0
        for key, value in fields.items():
            tree = re.sub(rf"^{key}=.*$", f"{key}={value}", tree, flags=re.M)
        return sizeless.replace(tree0, tree)

    return {
        "feat_idx_huge": edit(split_feature="100000000 0"),
        "feat_idx_neg": edit(split_feature="-5 0"),
        "child_cycle": edit(left_child="0 -2", right_child="1 -3"),
        "child_oob": edit(left_child="-1 -2", right_child="77 -3"),
        "leaf_oob": edit(left_child="-1 -90000000", right_child="1 -3"),
        "num_leaves_huge": edit(num_leaves="2000000000"),
        "nan_threshold": edit(threshold="nan nan"),
        "max_feature_idx_huge": sizeless.replace("max_feature_idx=3", "max_feature_idx=2000000000"),
        "num_class_huge": sizeless.replace("num_class=1", "num_class=1000000000").replace(
            "num_tree_per_iteration=1", "num_tree_per_iteration=1000000000"
        ),
        "tree_sizes_stale": base.replace("tree_sizes=", "tree_sizes=999999999 "),
    }
