"""A LightGBM text model read and checked by shipyard itself before LightGBM sees it.

LightGBM's parser trusts its text: a split feature past max_feature_idx, a child or leaf index
out of range, a stale `tree_sizes`, a NaN threshold or num_class=1e9 crash the process
(SIGSEGV, SIGABRT) or allocate gigabytes. So the text is parsed here, checked, and what
LightGBM loads is *rebuilt* from what was checked: the header keys it needs, each tree's
checked lines (every number written as LightGBM reads it), no `tree_sizes` (LightGBM then
reads the trees in order), no `parameters:` section (nothing a prediction needs; its
num_threads would apply), and the `pandas_categorical:` line when it is a list of category lists.

The checks: 1 ≤ num_class, num_tree_per_iteration ≤ MAX_OUTPUTS (the trees a multiple of
the latter), max_feature_idx < MAX_FEATURES with as many feature names, a known objective
(its num_class the header's, its sigmoid finite); per tree 1 ≤ num_leaves ≤ MAX_LEAVES,
every array as long as the tree has nodes or leaves, split features ≤ max_feature_idx,
finite thresholds and values, children forward (a node's child node after it, < num_leaves -
1; a leaf ~k with k < num_leaves) reaching each node and leaf once, categorical splits inside
cat_boundaries and cat_threshold. Linear trees (is_linear=1) are refused.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from shipyard.flavors.booster_checks import MAX_FEATURES, MAX_OUTPUTS, MAX_TREES, BadBooster

MAX_LEAVES = 131_072  # LightGBM's own limit on num_leaves
MAX_CATEGORY_WORDS = 1 << 16  # cat_threshold is a bitset: 2 M categories

_HEADER_KEYS = (
    "version",
    "num_class",
    "num_tree_per_iteration",
    "label_index",
    "max_feature_idx",
    "objective",
    "average_output",
    "feature_names",
    "monotone_constraints",
    "feature_infos",
)
_OBJECTIVES = {
    "regression",
    "regression_l1",
    "huber",
    "fair",
    "poisson",
    "quantile",
    "mape",
    "gamma",
    "tweedie",
    "binary",
    "multiclass",
    "multiclassova",
    "cross_entropy",
    "cross_entropy_lambda",
    "lambdarank",
    "rank_xendcg",
    "custom",
}
# per tree: key → (int or float, how many: "nodes", "leaves", "cats", "bounds", "words", 1)
_TREE_ARRAYS: dict[str, tuple[type, str]] = {
    "split_feature": (int, "nodes"),
    "split_gain": (float, "nodes"),
    "threshold": (float, "nodes"),
    "decision_type": (int, "nodes"),
    "left_child": (int, "nodes"),
    "right_child": (int, "nodes"),
    "leaf_value": (float, "leaves"),
    "leaf_weight": (float, "leaves"),
    "leaf_count": (int, "leaves"),
    "internal_value": (float, "nodes"),
    "internal_weight": (float, "nodes"),
    "internal_count": (int, "nodes"),
    "cat_boundaries": (int, "bounds"),
    "cat_threshold": (int, "words"),
    "shrinkage": (float, "one"),
}
_REQUIRED = ("split_feature", "threshold", "decision_type", "left_child", "right_child")


def checked_lightgbm_text(text: str) -> str:
    """The model text LightGBM may load for a saved one, checked and rebuilt; BadBooster (a
    ModelLoadError) naming what is wrong otherwise."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "tree":
        raise BadBooster("not a LightGBM text model: it does not start with 'tree'")
    header, i = _header(lines)
    n_features = header["max_feature_idx"] + 1
    trees: list[list[str]] = []
    while i < len(lines) and lines[i].startswith("Tree="):
        if len(trees) >= MAX_TREES:
            raise BadBooster(f"the model has more than {MAX_TREES} trees")
        if lines[i] != f"Tree={len(trees)}":
            raise BadBooster(f"the model's trees are not numbered in order at {lines[i][:30]!r}")
        section, i = _section(lines, i + 1)
        trees.append(_tree(section, len(trees), n_features))
        while i < len(lines) and not lines[i].strip():
            i += 1
    if i >= len(lines) or lines[i].strip() != "end of trees":
        raise BadBooster("not a LightGBM text model: no 'end of trees' after its trees")
    if len(trees) % header["num_tree_per_iteration"]:
        raise BadBooster("the model's trees are not a whole number of iterations")
    out = ["tree", *header["lines"], ""]
    for k, tree in enumerate(trees):
        out += [f"Tree={k}", *tree, "", ""]
    out += ["end of trees", ""]
    pandas = _pandas_categorical(lines)
    if pandas is not None:
        out.append(pandas)
    return "\n".join(out) + "\n"


def _section(lines: list[str], i: int) -> tuple[dict[str, str], int]:
    """The key=value lines from `i` to the next blank line, each key once."""
    out: dict[str, str] = {}
    while i < len(lines) and lines[i].strip():
        key, sep, value = lines[i].rstrip("\r").partition("=")
        if key in out:
            raise BadBooster(f"the model repeats {key!r} in one section")
        out[key] = value if sep else ""
        i += 1
    return out, i


def _int(value: str, what: str, low: int, high: int) -> int:
    if not re.fullmatch(r"-?[0-9]{1,12}", value.strip()) or not low <= int(value) <= high:
        raise BadBooster(f"the model's {what} is {value[:40]!r}, not an integer in [{low}, {high}]")
    return int(value)


def _header(lines: list[str]) -> tuple[dict[str, Any], int]:
    raw, i = _section(lines, 1)
    unknown = set(raw) - set(_HEADER_KEYS) - {"tree_sizes"}
    if unknown:
        raise BadBooster(f"the model's header has unknown keys: {sorted(unknown)[:5]}")
    for key in ("num_class", "num_tree_per_iteration", "max_feature_idx"):
        if key not in raw:
            raise BadBooster(f"the model's header has no {key}")
    n_class = _int(raw["num_class"], "num_class", 1, MAX_OUTPUTS)
    per_iteration = _int(raw["num_tree_per_iteration"], "num_tree_per_iteration", 1, MAX_OUTPUTS)
    if per_iteration not in (1, n_class):
        raise BadBooster("the model's num_tree_per_iteration is neither 1 nor num_class")
    max_feature = _int(raw["max_feature_idx"], "max_feature_idx", 0, MAX_FEATURES - 1)
    _int(raw.get("label_index", "0"), "label_index", 0, MAX_FEATURES)
    names = raw.get("feature_names")
    if names is not None and len(names.split(" ")) != max_feature + 1:
        raise BadBooster("the model's feature_names are not max_feature_idx + 1 names")
    for key in ("feature_infos", "monotone_constraints"):
        if key in raw and len(raw[key].split(" ")) != max_feature + 1:
            raise BadBooster(f"the model's {key} are not one per feature")
    if "objective" in raw:  # none when trained with a Python objective function
        _check_objective(raw["objective"], n_class)
    while i < len(lines) and not lines[i].strip():
        i += 1
    kept = [f"{k}={v}" if k != "average_output" else k for k, v in raw.items() if k != "tree_sizes"]
    return {
        "lines": kept,
        "max_feature_idx": max_feature,
        "num_tree_per_iteration": per_iteration,
    }, i


def _check_objective(text: str, n_class: int) -> None:
    name, *params = text.split(" ")
    if name not in _OBJECTIVES:
        raise BadBooster(f"the model's objective {name[:40]!r} is not one LightGBM has")
    for param in params:
        key, _, value = param.partition(":")
        if not re.fullmatch(r"[a-z_]{1,32}", key):
            raise BadBooster(f"the model's objective has a malformed parameter {param[:40]!r}")
        if key == "num_class" and value != str(n_class):
            raise BadBooster("the model's objective num_class is not the header's num_class")
        if key == "sigmoid" and not _finite(value):
            raise BadBooster("the model's objective sigmoid is not a finite number")


def _finite(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


_INTS = re.compile(r"-?[0-9]{1,12}(?: -?[0-9]{1,12})*")
_FLOAT = r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?"
_FLOATS = re.compile(rf"{_FLOAT}(?: {_FLOAT})*")


def _numbers(text: str, kind: type, what: str) -> np.ndarray:
    """The numbers of one line, each written as LightGBM reads it (no '+', no 'nan', no
    'inf'); the line itself is what LightGBM then gets."""
    import numpy as np

    if not text:
        return np.zeros(0, dtype=np.int64 if kind is int else np.float64)
    if kind is int:
        if not _INTS.fullmatch(text):
            raise BadBooster(f"{what} holds something other than integers")
        return np.array(text.split(" "), dtype=np.int64)
    values = np.array(text.split(" ") if _FLOATS.fullmatch(text) else ["nan"], dtype=np.float64)
    if not np.isfinite(values).all():
        bad = next(
            (t for t in text.split(" ") if not re.fullmatch(_FLOAT, t) or not _finite(t)), text
        )
        raise BadBooster(f"{what} holds {bad[:30]!r}, not a finite number")
    return values


def _tree(raw: dict[str, str], index: int, n_features: int) -> list[str]:
    """Check one tree's section; returns its lines, only the keys checked."""
    where = f"the model's tree {index}"
    leaves = _int(raw.get("num_leaves", ""), f"tree {index}'s num_leaves", 1, MAX_LEAVES)
    cats = _int(raw.get("num_cat", "0"), f"tree {index}'s num_cat", 0, MAX_LEAVES)
    if raw.get("is_linear", "0") != "0":
        raise BadBooster(f"{where} is a linear tree: shipyard does not load linear trees")
    unknown = set(raw) - set(_TREE_ARRAYS) - {"num_leaves", "num_cat", "is_linear"}
    if unknown:
        raise BadBooster(f"{where} has unknown keys: {sorted(unknown)[:5]}")
    values: dict[str, np.ndarray] = {}
    lines = [f"num_leaves={leaves}", f"num_cat={cats}"]
    for key, (kind, count) in _TREE_ARRAYS.items():
        if key not in raw:
            if (key in _REQUIRED and leaves > 1) or key == "leaf_value":
                raise BadBooster(f"{where} has no {key}")
            continue
        got = _numbers(raw[key], kind, f"{where}'s {key}")
        stump_blank = leaves == 1 and not len(got) and key != "leaf_value"  # as LightGBM has it
        if count != "words" and not stump_blank and len(got) != _expected(count, leaves, cats):
            raise BadBooster(f"{where}'s {key} has {len(got)} values, not one per {count}")
        values[key] = got
        lines.append(f"{key}={raw[key]}")
    if leaves > 1:
        _check_nodes(values, where, leaves, n_features, cats)
    lines.append("is_linear=0")
    return lines


def _expected(count: str, leaves: int, cats: int) -> int:
    return {"nodes": leaves - 1, "leaves": leaves, "bounds": cats + 1, "one": 1}[count]


def _check_nodes(
    values: dict[str, np.ndarray], where: str, leaves: int, n_features: int, cats: int
) -> None:
    """Split features in range; children form a tree: every node but the root, and every
    leaf, the child of exactly one node, a node's child nodes after it."""
    import numpy as np

    nodes = leaves - 1
    features = values["split_feature"]
    if ((features < 0) | (features >= n_features)).any():
        raise BadBooster(f"{where}: a split feature is not ≤ max_feature_idx ({n_features - 1})")
    children = np.stack([values["left_child"], values["right_child"]], axis=1)
    parent = np.arange(nodes)[:, None]
    ok = np.where(children >= 0, (children > parent) & (children < nodes), ~children < leaves)
    if ok.all():  # each reached once: bincount of node ids and leaf ids
        inner, outer = children[children >= 0], ~children[children < 0]
        once = np.bincount(inner, minlength=nodes)[1:]
        ok &= bool((once == 1).all()) and bool((np.bincount(outer, minlength=leaves) == 1).all())
    if not ok.all():
        i, side = (int(v[0]) for v in np.nonzero(~ok))
        raise BadBooster(
            f"{where}, node {i}: child {int(children[i, side])} is not a later node "
            f"(< {nodes}) or a leaf ~k (k < {leaves}), each reached once"
        )
    _check_splits(values, where, cats)


def _check_splits(values: dict[str, np.ndarray], where: str, cats: int) -> None:
    import numpy as np

    bounds = values.get("cat_boundaries", np.zeros(1, dtype=np.int64))
    words = values.get("cat_threshold", np.zeros(0, dtype=np.int64))
    if len(words) > MAX_CATEGORY_WORDS or ((words < 0) | (words >= 1 << 32)).any():
        raise BadBooster(f"{where}: cat_threshold is not a bitset of ≤ {MAX_CATEGORY_WORDS} words")
    if cats and (bounds[0] != 0 or bounds[-1] != len(words) or (np.diff(bounds) < 0).any()):
        raise BadBooster(f"{where}: cat_boundaries do not cut cat_threshold")
    kinds, thresholds = values["decision_type"], values["threshold"]
    bad = (kinds < 0) | (kinds >= 16) | (((kinds >> 2) & 3) == 3)
    if bad.any():
        i = int(np.argmax(bad))
        raise BadBooster(f"{where}, node {i}: decision_type {kinds[i]} is not one LightGBM has")
    categorical = (kinds & 1) == 1
    index = thresholds[categorical]
    if ((index != np.floor(index)) | (index < 0) | (index >= cats)).any():
        raise BadBooster(f"{where}: a categorical split's threshold is not < num_cat ({cats})")


def _pandas_categorical(lines: list[str]) -> str | None:
    """The model's `pandas_categorical:` line (its last), when a list of category lists."""
    last = next((line for line in reversed(lines) if line.strip()), "")
    if not last.startswith("pandas_categorical:"):
        return None
    try:
        doc = json.loads(last.removeprefix("pandas_categorical:"))
    except (ValueError, RecursionError) as exc:
        raise BadBooster(f"the model's pandas_categorical is not JSON ({exc})") from exc
    plain = (str, int, float, bool)
    if doc is not None and not (
        isinstance(doc, list)
        and all(isinstance(c, list) and all(isinstance(v, plain) for v in c) for c in doc)
    ):
        raise BadBooster("the model's pandas_categorical is not a list of category lists")
    return "pandas_categorical:" + json.dumps(doc)
