"""Which types a skops file may contain when nobody said it is trusted, and the checks that
make the riskier ones safe to use.

skops rebuilds objects without unpickling, but it calls whatever class or function a file
names once that name is trusted. So trust is given by concrete, reviewed names only — skops'
own defaults plus `REVIEWED_TYPES` below — never by a prefix: `numpy.testing`'s `runstring`
starts with `numpy.` and is `exec`.

Four reviewed types hold raw node indices that scikit-learn follows without bounds checks
(a crafted file would crash the process, or loop for ever, at the first prediction). skops
leaves them untrusted for that reason; shipyard trusts them because `skops_checks` verifies
every index after loading.
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
        # sparse matrices and the four trees are trusted because skops_checks verifies
        # their indices after loading
        *(
            f"scipy.sparse._{fmt}.{fmt}_{kind}"
            for fmt in ("csr", "csc", "coo", "bsr")
            for kind in ("matrix", "array")
        ),
        _TREE,
        _HIST_TREE,
        _KD_TREE,
        _BALL_TREE,
    }
)


# What loading may allocate, from the zip's own declared sizes (Python's zipfile never yields
# more than a member's declared size): each member as often as the schema refers to it, and
# the members of archives inside it (scipy keeps a sparse matrix as an .npz). shipyard writes
# skops files uncompressed, so a member that inflates far past its stored size is a bomb.
MAX_INFLATION = 100
INFLATION_FLOOR_BYTES = 16 << 20
MAX_UNPACKED_BYTES = 4 << 30


def check_archive(path: Path) -> None:
    """Refuse a skops zip that would unpack into far more memory than it occupies on disk,
    before skops reads any member."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            sizes = {m.filename: _unpacked(archive, m) for m in archive.infolist()}
            schema = json.loads(archive.read("schema.json")) if "schema.json" in sizes else {}
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, RecursionError) as exc:
        raise UntrustedModelError(f"the model file is not a readable skops file: {exc}") from exc
    references = _file_references(schema)
    total = sum(sizes.get(name, 0) for name in references) + sizes.get("schema.json", 0)
    # a member read once per reference: a few shared arrays are normal, thousands a bomb
    if total > min(MAX_UNPACKED_BYTES, 2 * sum(sizes.values()) + (64 << 20)):
        raise UntrustedModelError(
            f"the model file would unpack to {total / 2**30:.1f} GiB ({len(references)} array "
            f"reference(s) in a {path.stat().st_size / 2**20:.1f} MiB file); refusing to load it"
        )


def _unpacked(archive: Any, member: Any, depth: int = 0) -> int:
    """A member's size once read, refusing bombs; an archive inside counts its members."""
    import zipfile

    if member.file_size > INFLATION_FLOOR_BYTES and member.file_size > MAX_INFLATION * max(
        member.compress_size, 1
    ):
        raise UntrustedModelError(
            f"the model file's {member.filename} inflates more than {MAX_INFLATION}x "
            f"({member.file_size / 2**20:.0f} MiB); refusing to load it"
        )
    if not member.filename.endswith(".npz") or depth:
        return int(member.file_size)
    with archive.open(member) as raw, zipfile.ZipFile(raw) as inner:
        return int(member.file_size) + sum(_unpacked(inner, m, 1) for m in inner.infolist())


def _file_references(schema: Any) -> list[str]:
    """Every member the schema's nodes read (a node per reference: skops reads it each time)."""
    found: list[str] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                found.append(node["file"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


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

    from shipyard.fences.sklearn import score_function

    names = set(REVIEWED_TYPES) | set(_SCORE_FUNCTIONS) | set(_PLAIN_TYPES)
    for _, cls in inspect.getmembers(model_selection, inspect.isclass):
        if cls.__module__ == "sklearn.model_selection._split" and not inspect.isabstract(cls):
            names.add(f"{cls.__module__}.{cls.__qualname__}")
    for scorer_name in metrics.get_scorer_names():
        fn = score_function(metrics.get_scorer(scorer_name))
        if inspect.isfunction(fn) and fn.__module__.startswith("sklearn.metrics."):
            names.add(f"{fn.__module__}.{fn.__qualname__}")
    return frozenset(names)


def split_types(found: list[str]) -> tuple[list[str], list[str]]:
    """(reviewed, unknown) among the types skops reports as outside its defaults."""
    reviewed = reviewed_types()
    return [t for t in found if t in reviewed], [t for t in found if t not in reviewed]
