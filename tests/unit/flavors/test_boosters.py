"""The XGBoost and LightGBM flavors' refusals: what they cannot save or load is a clear error,
never a guess (the models themselves are exercised in tests/integration/test_boosters.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shipyard.errors import InvalidArgumentError, ModelLoadError, UntrustedModelError
from shipyard.flavors import infer_signature, pick_flavor
from shipyard.flavors.lightgbm import LIGHTGBM
from shipyard.flavors.xgboost import XGBOOST
from shipyard.serving.protocol import dumps


def test_an_unsupported_object_lists_the_booster_flavors() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        pick_flavor(object(), "skops")
    assert "xgboost" in err.value.message and "lightgbm" in err.value.message


def test_the_wrappers_are_picked_before_sklearn() -> None:
    import lightgbm as lgb
    import xgboost as xgb

    assert pick_flavor(xgb.XGBRegressor(), "skops").name == "xgboost"
    assert pick_flavor(lgb.LGBMClassifier(), "skops").name == "lightgbm"


def test_a_manifest_cannot_name_another_xgboost_class(tmp_path: Path) -> None:
    signature = infer_signature(np.zeros((2, 3)))
    (tmp_path / "m").write_bytes(b"{}")
    for kind in ("DMatrix", "collective", "__class__"):
        with pytest.raises(InvalidArgumentError, match="unknown XGBoost model class"):
            XGBOOST.load(
                {"model.ubj": tmp_path / "m"}, {"xgboost_class": kind}, signature, trusted=False
            )


def test_a_malformed_lightgbm_text_is_a_load_error(tmp_path: Path) -> None:
    signature = infer_signature(np.zeros((2, 3)))
    (tmp_path / "m").write_text("tree\nnum_leaves=banana\n")
    with pytest.raises(ModelLoadError, match="not a readable LightGBM model"):
        LIGHTGBM.load({"model.txt": tmp_path / "m"}, {}, signature, trusted=False)


def test_a_python_objective_is_refused(tmp_path: Path) -> None:
    import lightgbm as lgb

    def squared(y_true, y_pred):  # type: ignore[no-untyped-def]
        return y_pred - y_true, np.ones_like(y_pred)

    x = np.random.default_rng(0).normal(size=(50, 3))
    model = lgb.LGBMRegressor(objective=squared, n_estimators=2, verbose=-1).fit(x, x[:, 0])
    with pytest.raises(InvalidArgumentError, match="Python objective"):
        LIGHTGBM.save(model, tmp_path, infer_signature(x))


def test_a_booster_nested_in_another_estimator_says_how_to_load_it(tmp_path: Path) -> None:
    import xgboost as xgb
    from sklearn.ensemble import VotingClassifier

    from shipyard.flavors.sklearn import load_skops, save_skops

    x = np.random.default_rng(0).normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    model = VotingClassifier([("x", xgb.XGBClassifier(n_estimators=2))]).fit(x, y)
    save_skops(model, tmp_path / "m.skops")
    with pytest.raises(UntrustedModelError, match="as a Pipeline step"):
        load_skops(tmp_path / "m.skops", trusted=False)
    loaded = load_skops(tmp_path / "m.skops", trusted=True)  # the documented way
    assert np.array_equal(loaded.predict(x), model.predict(x))


def test_string_labels_are_answered_in_json() -> None:
    labels = np.asarray(["benign", "malignant"])
    assert dumps({"predictions": labels, "n": np.arange(2)}) == (
        b'{"predictions":["benign","malignant"],"n":[0,1]}'
    )
