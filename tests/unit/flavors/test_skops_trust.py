"""Untrusted skops files: only reviewed type names are rebuilt, and trees are checked index by
index, so a crafted file can neither run code nor crash the process at its first prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.errors import UntrustedModelError
from shipyard.flavors import sklearn as sk
from tests.hostile import skops_files


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


@pytest.mark.parametrize(("module", "function"), skops_files.EXEC_TARGETS)
def test_a_file_that_calls_a_function_is_refused_and_runs_nothing(
    tmp_path: Path, data: Any, module: str, function: str
) -> None:
    from sklearn.linear_model import LogisticRegression

    marker = tmp_path / "pwned"
    path = tmp_path / "model.skops"
    path.write_bytes(
        skops_files.exec_payload(LogisticRegression().fit(*data), marker, module, function)
    )
    with pytest.raises(UntrustedModelError, match=f"{module}.{function}"):
        sk.load_skops(path, trusted=False)
    assert not marker.exists()


def _models() -> list[Any]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import (
        AdaBoostClassifier,
        BaggingClassifier,
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        IsolationForest,
        RandomForestClassifier,
        StackingClassifier,
        VotingClassifier,
    )
    from sklearn.feature_selection import SelectKBest, SelectPercentile, mutual_info_classif
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.linear_model import LogisticRegression, TweedieRegressor
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    return [
        make_pipeline(StandardScaler(), LogisticRegression()),
        RandomForestClassifier(n_estimators=5, random_state=0),
        GradientBoostingClassifier(n_estimators=5, random_state=0),
        HistGradientBoostingClassifier(max_iter=5, random_state=0),
        KNeighborsClassifier(),
        KNeighborsClassifier(algorithm="ball_tree", metric="manhattan"),
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=30, random_state=0),
        CalibratedClassifierCV(LinearSVC()),
        StackingClassifier([("lr", LogisticRegression())]),
        GaussianProcessClassifier(random_state=0),
        TweedieRegressor(power=1.5),
        GridSearchCV(LogisticRegression(), {"C": [0.1, 1]}, cv=3),
        GridSearchCV(
            LogisticRegression(), {"C": [0.1, 1]}, cv=StratifiedKFold(3), scoring="roc_auc"
        ),
        GridSearchCV(
            LogisticRegression(), {"C": [1]}, scoring=["accuracy", "f1"], refit="f1", cv=3
        ),
        RandomizedSearchCV(LogisticRegression(), {"C": [0.1, 1, 10]}, n_iter=2, random_state=0),
        make_pipeline(SelectKBest(k=3), LogisticRegression()),
        # ensembles call their trees unvalidated: checked against the ensemble's inputs
        BaggingClassifier(max_features=0.6, n_estimators=4, random_state=0),
        IsolationForest(n_estimators=4, max_features=0.6, random_state=0),
        ExtraTreesClassifier(n_estimators=4, random_state=0),
        AdaBoostClassifier(n_estimators=4, random_state=0),
        VotingClassifier(
            [("rf", RandomForestClassifier(3, random_state=0)), ("lr", LogisticRegression())]
        ),
        StackingClassifier([("rf", RandomForestClassifier(3, random_state=0))]),
        make_pipeline(SelectPercentile(mutual_info_classif), LogisticRegression()),
    ]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_common_models_load_without_trust_and_predict_the_same(
    tmp_path: Path, data: Any, model: Any
) -> None:
    X, y = data
    model.fit(X, y + 1 if type(model).__name__ == "TweedieRegressor" else y)
    path = tmp_path / "model.skops"
    sk.save_skops(model, path)
    loaded = sk.load_skops(path, trusted=False)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("how", ["child_out_of_range", "cycle", "feature_out_of_range"])
@pytest.mark.parametrize("trusted", [False, True])
def test_a_tree_with_bad_node_indices_is_refused(
    tmp_path: Path, data: Any, how: str, trusted: bool
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(*data)
    path = tmp_path / "model.skops"
    sk.save_skops(skops_files.corrupt_tree(forest, how), path)
    with pytest.raises(UntrustedModelError, match="decision tree is malformed"):
        sk.load_skops(path, trusted=trusted)


def test_a_boosted_tree_with_bad_children_is_refused(tmp_path: Path, data: Any) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(*data)
    path = tmp_path / "model.skops"
    sk.save_skops(skops_files.corrupt_hist_tree(model), path)
    with pytest.raises(UntrustedModelError, match="gradient-boosted tree is malformed"):
        sk.load_skops(path, trusted=False)


def test_a_neighbour_index_out_of_range_is_refused(tmp_path: Path, data: Any) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    model = KNeighborsClassifier(algorithm="kd_tree").fit(*data)
    path = tmp_path / "model.skops"
    sk.save_skops(skops_files.corrupt_kd_tree(model), path)
    with pytest.raises(UntrustedModelError, match="nearest-neighbour index is malformed"):
        sk.load_skops(path, trusted=False)


def test_a_file_that_is_not_a_skops_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UntrustedModelError, match="not a readable skops file"):
        sk.load_skops(path, trusted=False)


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path, data: Any) -> None:
    import resource

    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "model.skops"
    path.write_bytes(skops_files.zip_bomb(LogisticRegression().fit(*data)))
    assert path.stat().st_size < 1 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UntrustedModelError, match="inflates more than"):
        sk.load_skops(path, trusted=True)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 40 << 10  # the 80 MiB member was never read


def test_a_column_selector_by_dtype_loads_without_trust(tmp_path: Path, data: Any) -> None:
    import pandas as pd
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = data
    frame = pd.DataFrame(X, columns=list("abcde")).assign(kind=np.where(y > 0, "x", "y"))
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(), make_column_selector(dtype_include=object)),
            (StandardScaler(), make_column_selector(dtype_include=np.number)),
        ),
        LogisticRegression(),
    ).fit(frame, y)
    path = tmp_path / "model.skops"
    sk.save_skops(model, path)
    loaded = sk.load_skops(path, trusted=False)
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_a_function_transformer_calling_an_unreviewed_function_is_refused(
    tmp_path: Path, data: Any
) -> None:
    """FunctionTransformer calls its function on the request's data at every prediction: only
    skops' ufuncs and shipyard's reviewed score functions are trusted, never e.g. eval."""
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "model.skops"
    sk.save_skops(FunctionTransformer(np.log1p).fit(data[0]), path)
    assert sk.load_skops(path, trusted=False).func is np.log1p
    sk.save_skops(FunctionTransformer(eval), path)
    with pytest.raises(UntrustedModelError, match=r"builtins\.eval"):
        sk.load_skops(path, trusted=False)


def _decision_tree(data: Any) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(*data)


def test_a_tree_claiming_more_features_than_its_estimator_takes_is_refused(
    tmp_path: Path, data: Any
) -> None:
    path = tmp_path / "model.skops"
    sk.save_skops(skops_files.inflated_tree(_decision_tree(data)), path)
    with pytest.raises(UntrustedModelError, match="a feature the model does not have"):
        sk.load_skops(path, trusted=False)


def test_a_bad_tree_hidden_below_the_depth_limit_is_still_found(tmp_path: Path, data: Any) -> None:
    bad = skops_files.corrupt_tree(_decision_tree(data), "child_out_of_range")
    path = tmp_path / "model.skops"
    sk.save_skops(skops_files.hidden_deep(bad), path)
    with pytest.raises(UntrustedModelError, match="nested more than"):
        sk.load_skops(path, trusted=False)


def test_a_sparse_matrix_with_indices_outside_its_shape_is_refused(
    tmp_path: Path, data: Any
) -> None:
    from sklearn.linear_model import SGDClassifier

    model = SGDClassifier(random_state=0).fit(*data).sparsify()
    path = tmp_path / "model.skops"
    path.write_bytes(skops_files.sparse_out_of_range(model))
    with pytest.raises(UntrustedModelError, match="sparse matrix is malformed"):
        sk.load_skops(path, trusted=False)
    sk.save_skops(model, path)  # an honest sparse model still loads
    np.testing.assert_array_equal(
        sk.load_skops(path, trusted=False).predict(data[0]), model.predict(data[0])
    )


@pytest.mark.parametrize("build", ["shared_member_bomb", "nested_archive_bomb"])
def test_memory_bombs_past_the_per_member_check_are_refused_before_reading(
    tmp_path: Path, data: Any, build: str
) -> None:
    import resource

    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "model.skops"
    path.write_bytes(getattr(skops_files, build)(LogisticRegression().fit(*data)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UntrustedModelError, match="refusing to load it"):
        sk.load_skops(path, trusted=True)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 << 10  # KiB
