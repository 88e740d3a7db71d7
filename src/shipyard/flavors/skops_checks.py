"""After skops has rebuilt a model: check every raw index scikit-learn and scipy would follow
without a bounds check, so a crafted file cannot crash the process (or loop for ever) at its
first prediction.

What is checked, wherever it sits in the model:
- decision trees (`sklearn.tree._tree.Tree`): children point forward inside the tree, leaves
  have no child, split features are inside the columns the tree receives;
- histogram gradient-boosted trees (`TreePredictor`): the same, and category-set indices;
- KD and ball trees: sample indices and node ranges inside the data;
- sparse matrices: indices inside the shape, index pointers consistent.

"The columns the tree receives" is not the tree's own `n_features` (the file sets it) but the
smallest `n_features_in_` on the way down from an estimator that validates its input:
ensembles call their trees without checking (`check_input=False`), so a tree inside a forest
gets the forest's bound, and a bagged tree the size of its feature subset. Models nested
deeper than `MAX_DEPTH` are refused rather than partly checked.
"""

from __future__ import annotations

from typing import Any

from shipyard.errors import UntrustedModelError

MAX_DEPTH = 32

_TREE = "sklearn.tree._tree.Tree"
_HIST_TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
_BINARY_TREES = ("sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree")
# attributes through which an ensemble or a tree estimator calls what it holds unvalidated
_UNCHECKED_CALLS = frozenset({"estimators_", "tree_", "_predictors"})


def check_loaded(model: Any) -> None:
    """Raise UntrustedModelError if any index inside `model` points outside its arrays or
    backwards (a cycle). One pass over the node and index arrays."""
    _Walk().visit(model, None, 0)


def _refuse(what: str, problem: str) -> UntrustedModelError:
    return UntrustedModelError(
        f"the model file's {what} is malformed ({problem}); it may have been crafted to crash "
        "the server — refusing to load it"
    )


def _tighter(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


class _Walk:
    def __init__(self) -> None:
        self.seen: set[tuple[int, int | None]] = set()

    def visit(self, obj: Any, bound: int | None, depth: int) -> None:
        """`bound`: how many columns `obj` is sure to receive when called by its owner
        without validation (None: it validates its own input, or takes none)."""
        import numpy as np

        if obj is None or isinstance(obj, (str, bytes, int, float, complex)):
            return
        if depth > MAX_DEPTH:
            raise _refuse("model", f"objects nested more than {MAX_DEPTH} deep")
        key = (id(obj), bound)  # met again under a tighter bound: checked again
        if key in self.seen:
            return
        self.seen.add(key)
        if _checked_as_leaf(obj, bound):
            return
        if isinstance(obj, np.ndarray):
            if obj.dtype == object:
                for item in obj.ravel():
                    self.visit(item, bound, depth + 1)
            return
        if isinstance(obj, dict):
            for item in list(obj.values()):
                self.visit(item, bound, depth + 1)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for item in list(obj):
                self.visit(item, bound, depth + 1)
        elif hasattr(obj, "__dict__"):
            self._estimator(obj, bound, depth)

    def _estimator(self, obj: Any, bound: int | None, depth: int) -> None:
        import numpy as np

        attrs = vars(obj)
        inputs = attrs.get("n_features_in_")
        if isinstance(inputs, (int, np.integer)):
            if bound is not None and inputs > bound:
                raise _refuse("ensemble", f"a member expects {inputs} columns but is given {bound}")
            bound = int(inputs) if bound is None else min(int(inputs), bound)
        subsets = attrs.get("estimators_features_")
        for attr, value in list(attrs.items()):
            inner = bound if attr in _UNCHECKED_CALLS else None
            if attr == "estimators_" and subsets is not None:
                self._bagged(value, subsets, bound, depth)
            else:
                self.visit(value, inner, depth + 1)

    def _bagged(self, members: Any, subsets: Any, bound: int | None, depth: int) -> None:
        """Bagging and isolation forests call member i on the columns `subsets[i]`."""
        import numpy as np

        if len(members) != len(subsets):
            raise _refuse("ensemble", "as many feature subsets as members expected")
        for member, subset in zip(members, subsets, strict=True):
            columns = np.asarray(subset)
            if bound is None or (columns.size and (columns.min() < 0 or columns.max() >= bound)):
                raise _refuse("ensemble", "a member's feature subset outside the inputs")
            self.visit(member, int(columns.size), depth + 1)


def _checked_as_leaf(obj: Any, bound: int | None) -> bool:
    """Check `obj` if it is a tree or a sparse matrix, whose arrays index each other; True
    when it was one (nothing inside it to walk)."""
    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if name == _TREE:
        _check_tree(obj, bound)
    elif name == _HIST_TREE:
        _check_hist_tree(obj, bound)
    elif name in _BINARY_TREES:
        _check_binary_tree(obj)
    elif _is_sparse(obj):
        _check_sparse(obj)
    else:
        return False
    return True


def _forward_children(left: Any, right: Any, internal: Any, n: int) -> bool:
    """Every internal node's children lie after it and inside the array (no cycle, no
    out-of-bounds read)."""
    import numpy as np

    index = np.arange(n)[internal]
    lo, hi = left[internal].astype(np.int64), right[internal].astype(np.int64)
    return bool(np.all((lo > index) & (lo < n) & (hi > index) & (hi < n)))


def _check_tree(tree: Any, bound: int | None) -> None:
    import numpy as np

    n = int(tree.node_count)
    left = np.asarray(tree.children_left)
    right = np.asarray(tree.children_right)
    feature = np.asarray(tree.feature)
    if not (len(left) == len(right) == len(feature) == n and np.shape(tree.value)[0] == n):
        raise _refuse("decision tree", "node arrays of different lengths")
    leaf = left == -1
    internal = ~leaf
    if np.any(right[leaf] != -1):
        raise _refuse("decision tree", "a leaf with one child")
    if not _forward_children(left, right, internal, n):
        raise _refuse("decision tree", "a child index out of range or pointing backwards")
    columns = _tighter(bound, int(tree.n_features))
    if bound is None or columns is None:
        raise _refuse("decision tree", "a tree outside a fitted estimator")
    if np.any((feature[internal] < 0) | (feature[internal] >= columns)):
        raise _refuse("decision tree", "a split on a feature the model does not have")


def _check_hist_tree(predictor: Any, bound: int | None) -> None:
    import numpy as np

    nodes = predictor.nodes
    n = len(nodes)
    internal = nodes["is_leaf"] == 0
    if n == 0 or not _forward_children(nodes["left"], nodes["right"], internal, n):
        raise _refuse("gradient-boosted tree", "a child index out of range or pointing backwards")
    feature = nodes["feature_idx"][internal]
    if bound is None or np.any((feature < 0) | (feature >= bound)):
        raise _refuse("gradient-boosted tree", "a split on a feature the model does not have")
    categorical = internal & (nodes["is_categorical"] != 0)
    bitsets = min(len(predictor.raw_left_cat_bitsets), len(predictor.binned_left_cat_bitsets))
    if np.any(nodes["bitset_idx"][categorical] >= bitsets):
        raise _refuse("gradient-boosted tree", "a category set index out of range")


def _check_binary_tree(tree: Any) -> None:
    import numpy as np

    data, idx, node_data, bounds = (np.asarray(a) for a in tree.get_arrays())
    n, n_nodes = len(data), len(node_data)
    start, end = node_data["idx_start"], node_data["idx_end"]
    problem = None
    if (
        data.ndim != 2
        or idx.shape != (n,)
        or n_nodes == 0
        or bounds.shape[1:]
        != (
            n_nodes,
            data.shape[1],
        )
    ):
        problem = "arrays of inconsistent shapes"
    elif n and (idx.min() < 0 or idx.max() >= n):
        problem = "a sample index out of range"
    elif np.any((start < 0) | (start > end) | (end > n)):
        problem = "a node's sample range out of bounds"
    else:
        # a node whose children would lie past the end of the array must be a leaf
        childless = 2 * np.arange(n_nodes) + 1 >= n_nodes
        if np.any(node_data["is_leaf"][childless] == 0):
            problem = "a node without children that is not a leaf"
    if problem:
        raise _refuse("nearest-neighbour index", problem)


def _is_sparse(obj: Any) -> bool:
    return type(obj).__module__.startswith("scipy.sparse") and hasattr(obj, "format")


def _check_sparse(matrix: Any) -> None:
    """scipy builds compressed matrices from a file's arrays without checking them."""
    import numpy as np

    try:
        if matrix.format in ("csr", "csc", "bsr"):
            matrix.check_format(full_check=True)
        elif matrix.format == "coo":
            rows, cols = matrix.shape
            if matrix.nnz and (
                np.min(matrix.row) < 0
                or np.max(matrix.row) >= rows
                or np.min(matrix.col) < 0
                or np.max(matrix.col) >= cols
            ):
                raise ValueError("coordinates outside the shape")
        elif matrix.format not in ("dok", "lil"):  # those two are plain Python containers
            raise ValueError(f"a {matrix.format} matrix is not checked")
    except (ValueError, TypeError, IndexError) as exc:
        raise _refuse("sparse matrix", str(exc)) from exc
