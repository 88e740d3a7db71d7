"""Which types a skops file may contain when nobody said it is trusted, and the checks that
make the riskier ones safe to use.

skops rebuilds objects without unpickling, but it calls whatever class or function a file
names once that name is trusted. So trust is given by concrete, reviewed names only — skops'
own defaults plus `REVIEWED_TYPES` below — never by a prefix: `numpy.testing`'s `runstring`
starts with `numpy.` and is `exec`.

Four reviewed types hold raw node indices that scikit-learn follows without bounds checks
(a crafted file would crash the process, or loop for ever, at the first prediction). skops
leaves them untrusted for that reason; shipyard trusts them because `check_loaded` verifies
every index after loading: children point forward inside the tree, features inside the
model's inputs, sample indices inside the data.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from shipyard.errors import UntrustedModelError

_TREE = "sklearn.tree._tree.Tree"
_HIST_TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
_KD_TREE = "sklearn.neighbors._kd_tree.KDTree"
_BALL_TREE = "sklearn.neighbors._ball_tree.BallTree"

# Reviewed one by one: plain data holders rebuilt through __new__ and their attributes, whose
# methods only do arithmetic on arrays whose shapes scikit-learn checks. Names, not prefixes.
REVIEWED_TYPES: frozenset[str] = frozenset(
    {
        "numpy.dtype",
        "sklearn.utils._bunch.Bunch",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        *(
            f"sklearn._loss.loss.{name}"
            for name in (
                "AbsoluteError",
                "ExponentialLoss",
                "HalfBinomialLoss",
                "HalfGammaLoss",
                "HalfMultinomialLoss",
                "HalfPoissonLoss",
                "HalfSquaredError",
                "HalfTweedieLoss",
                "HalfTweedieLossIdentity",
                "HuberLoss",
                "PinballLoss",
            )
        ),
        *(
            f"sklearn.gaussian_process.kernels.{name}"
            for name in (
                "CompoundKernel",
                "ConstantKernel",
                "DotProduct",
                "ExpSineSquared",
                "Exponentiation",
                "Matern",
                "PairwiseKernel",
                "Product",
                "RBF",
                "RationalQuadratic",
                "Sum",
                "WhiteKernel",
            )
        ),
        "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
        # distance metrics without weight vectors or matrices (those index by a stored size)
        *(
            f"sklearn.metrics._dist_metrics.{name}{bits}"
            for name in ("EuclideanDistance", "ManhattanDistance", "ChebyshevDistance")
            for bits in ("64", "32")
        ),
        # trusted because check_loaded verifies their indices
        _TREE,
        _HIST_TREE,
        _KD_TREE,
        _BALL_TREE,
    }
)


# shipyard writes skops files uncompressed; a member that inflates by more than this factor
# past a few MiB is a zip bomb, whatever its declared size
MAX_INFLATION = 100
INFLATION_FLOOR_BYTES = 16 << 20
MAX_UNPACKED_BYTES = 16 << 30


def check_archive(path: Path) -> None:
    """Refuse a skops zip that would unpack into far more memory than it occupies on disk,
    before skops reads any member. Python's zipfile never yields more than a member's
    declared size, so the declared sizes bound what loading can allocate."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UntrustedModelError(f"the model file is not a readable skops file: {exc}") from exc
    total = sum(m.file_size for m in members)
    bomb = [
        m.filename
        for m in members
        if m.file_size > INFLATION_FLOOR_BYTES
        and m.file_size > MAX_INFLATION * max(m.compress_size, 1)
    ]
    if bomb or total > MAX_UNPACKED_BYTES:
        raise UntrustedModelError(
            f"the model file would unpack to {total / 2**30:.1f} GiB"
            + (f" ({', '.join(bomb[:3])} inflate more than {MAX_INFLATION}x)" if bomb else "")
            + "; refusing to load it"
        )


# Functions are trusted by name only where calling them with attacker-chosen arguments is
# harmless arithmetic: scikit-learn's univariate feature scores (SelectKBest keeps a
# reference) and the metrics its named scorers call (a fitted search keeps its scorer).
_SCORE_FUNCTIONS = (
    "sklearn.feature_selection._univariate_selection.chi2",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_oneway",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.feature_selection._univariate_selection.r_regression",
    "sklearn.feature_selection._mutual_info.mutual_info_classif",
    "sklearn.feature_selection._mutual_info.mutual_info_regression",
)
_PLAIN_TYPES = (
    "builtins.object",  # make_column_selector(dtype_include=object)
    "numpy.number",  # make_column_selector(dtype_include=np.number)
    "sklearn.compose._column_transformer.make_column_selector",
    "sklearn.metrics._scorer._PassthroughScorer",
    "sklearn.metrics._scorer._Scorer",
    "sklearn.metrics._scorer._MultimetricScorer",
)


@functools.cache
def reviewed_types() -> frozenset[str]:
    """`REVIEWED_TYPES`, plus scikit-learn's cross-validation splitters (plain holders of a
    few numbers) and the metric functions of its named scorers, listed from scikit-learn
    itself so a fitted GridSearchCV or RandomizedSearchCV loads."""
    import inspect

    from sklearn import metrics, model_selection

    names = set(REVIEWED_TYPES) | set(_SCORE_FUNCTIONS) | set(_PLAIN_TYPES)
    for _, cls in inspect.getmembers(model_selection, inspect.isclass):
        if cls.__module__ == "sklearn.model_selection._split" and not inspect.isabstract(cls):
            names.add(f"{cls.__module__}.{cls.__qualname__}")
    for scorer_name in metrics.get_scorer_names():
        fn = getattr(metrics.get_scorer(scorer_name), "_score_func", None)
        if inspect.isfunction(fn) and fn.__module__.startswith("sklearn.metrics."):
            names.add(f"{fn.__module__}.{fn.__qualname__}")
    return frozenset(names)


def split_types(found: list[str]) -> tuple[list[str], list[str]]:
    """(reviewed, unknown) among the types skops reports as outside its defaults."""
    reviewed = reviewed_types()
    return [t for t in found if t in reviewed], [t for t in found if t not in reviewed]


def check_loaded(model: Any) -> None:
    """Raise UntrustedModelError if any tree inside `model` has an index that points outside
    its arrays or backwards (a cycle). Walks estimators, lists, tuples, dicts and object
    arrays; costs one pass over the node arrays."""
    _walk(model, n_features=None, seen=set(), depth=0)


def _walk(obj: Any, n_features: int | None, seen: set[int], depth: int) -> None:
    import numpy as np

    if depth > 64 or id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float)):
        return
    seen.add(id(obj))
    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if name == _TREE:
        _check_tree(obj)
        return
    if name == _HIST_TREE:
        _check_hist_tree(obj, n_features)
        return
    if name in (_KD_TREE, _BALL_TREE):
        _check_binary_tree(obj)
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            for item in obj.ravel():
                _walk(item, n_features, seen, depth + 1)
        return
    if isinstance(obj, dict):
        children: Any = obj.values()
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = obj
    elif hasattr(obj, "__dict__"):
        inputs = vars(obj).get("n_features_in_")
        if isinstance(inputs, (int, np.integer)):
            n_features = int(inputs)
        children = vars(obj).values()
    else:
        return
    for child in list(children):
        _walk(child, n_features, seen, depth + 1)


def _refuse(what: str, problem: str) -> UntrustedModelError:
    return UntrustedModelError(
        f"the model file's {what} is malformed ({problem}); it may have been crafted to crash "
        "the server — refusing to load it"
    )


def _forward_children(left: Any, right: Any, internal: Any, n: int) -> bool:
    """Every internal node's children lie after it and inside the array (no cycle, no
    out-of-bounds read)."""
    import numpy as np

    index = np.arange(n)[internal]
    lo, hi = left[internal].astype(np.int64), right[internal].astype(np.int64)
    return bool(np.all((lo > index) & (lo < n) & (hi > index) & (hi < n)))


def _check_tree(tree: Any) -> None:
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
    if np.any((feature[internal] < 0) | (feature[internal] >= int(tree.n_features))):
        raise _refuse("decision tree", "a split on a feature the model does not have")


def _check_hist_tree(predictor: Any, n_features: int | None) -> None:
    import numpy as np

    nodes = predictor.nodes
    n = len(nodes)
    internal = nodes["is_leaf"] == 0
    if n == 0 or not _forward_children(nodes["left"], nodes["right"], internal, n):
        raise _refuse("gradient-boosted tree", "a child index out of range or pointing backwards")
    feature = nodes["feature_idx"][internal]
    if n_features is None or np.any((feature < 0) | (feature >= n_features)):
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
