"""Missing values follow the signature: a null in a column the model was trained without
missing values is refused (422 naming the column and the row), on every route and backend;
a model that handles them (gradient-boosted trees, an imputer in front, `allow_missing`)
gets NaN and answers. Before, a null was predicted on and the answer was `null`."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import SignatureError
from shipyard.flavors.signature import Signature
from shipyard.serving.app import create_serving_app
from shipyard.serving.http import BackgroundServer


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y


def _serve(settings: Settings, name: str) -> BackgroundServer:
    sy.set_alias(name, "live", 1)
    return BackgroundServer(create_serving_app(settings, f"models:/{name}@live"))


def _rows(X: pd.DataFrame, n: int, *, null_at: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = X.iloc[:n].to_dict(orient="records")
    if null_at is not None:
        rows[null_at]["bp"] = None
    return rows


@pytest.mark.parametrize("onnx", [True, False], ids=["onnx", "python"])
def test_a_null_in_a_column_trained_without_them_is_refused(
    settings: Settings, diabetes: Any, onnx: bool
) -> None:
    X, y = diabetes
    with sy.start_run(experiment="nulls") as run:
        run.log_model(Ridge().fit(X, y), name="ridge", input_example=X[:5], onnx=onnx)
    with _serve(settings, "ridge") as srv:
        srv.wait_ready()
        url = f"{srv.url}/endpoints/ridge/predict"
        r = httpx.post(url, json={"instances": _rows(X, 10, null_at=3)})
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["field"] == "bp" and body["row"] == 3, body
        assert "row 3" in body["error"] and "allow_missing" in body["error"]
        # V2, per-feature tensors: a typed FP64 tensor holds no null
        n = 4
        inputs = [
            {"name": c, "shape": [n], "datatype": "FP64", "data": X[c].iloc[:n].tolist()}
            for c in X.columns
        ]
        inputs[list(X.columns).index("bp")]["data"][2] = None
        v2 = httpx.post(f"{srv.url}/v2/models/ridge/infer", json={"inputs": inputs})
        assert v2.status_code == 422 and v2.json()["field"] == "inputs[3].data", v2.text
        # rows without nulls still answer, with numbers
        ok = httpx.post(url, json={"instances": _rows(X, 10)})
        assert ok.status_code == 200, ok.text
        assert all(isinstance(p, float) for p in ok.json()["predictions"])


def test_models_that_handle_missing_values_take_them(settings: Settings, diabetes: Any) -> None:
    X, y = diabetes
    holed = X.copy()
    holed.loc[::7, "s1"] = np.nan
    with sy.start_run(experiment="nulls") as run:
        hgb = HistGradientBoostingRegressor(max_iter=30).fit(X, y)
        mvs = {"hgb": run.log_model(hgb, name="hgb", input_example=X[:5], onnx=False)}
        imputed = make_pipeline(SimpleImputer(), Ridge()).fit(holed, y)
        mvs["imputed"] = run.log_model(imputed, name="imputed", input_example=X[:5], onnx=False)
        # a Ridge trained on complete data, told that 'bp' may be missing
        mvs["declared"] = run.log_model(
            make_pipeline(SimpleImputer(), Ridge()).fit(X, y),
            name="declared",
            input_example=X[:5],
            onnx=False,
            allow_missing=["bp"],
        )
    signatures = {name: Signature.from_dict(mv.signature) for name, mv in mvs.items()}
    assert signatures["hgb"].takes_missing == set(X.columns)  # trees declare it
    assert signatures["imputed"].takes_missing == set(X.columns)  # an imputer in front
    assert "bp" in signatures["declared"].takes_missing
    for name, expected in (("hgb", hgb), ("declared", None)):
        with _serve(settings, name) as srv:
            srv.wait_ready()
            rows = _rows(X, 6, null_at=2)
            r = httpx.post(f"{srv.url}/endpoints/{name}/predict", json={"instances": rows})
            assert r.status_code == 200, r.text
            got = r.json()["predictions"]
            assert all(isinstance(p, float) for p in got)
            if expected is not None:
                np.testing.assert_allclose(got, expected.predict(pd.DataFrame(rows).astype(float)))


def test_the_training_data_says_which_columns_had_missing_values(
    settings: Settings, diabetes: Any
) -> None:
    X, y = diabetes
    holed = X.copy()
    holed.loc[::5, "s2"] = np.nan
    # imputes 's2' only, which its tags do not say: the training data does
    model = make_pipeline(
        ColumnTransformer([("s2", SimpleImputer(), ["s2"])], remainder="passthrough"), Ridge()
    ).fit(holed, y)
    with sy.start_run(experiment="nulls") as run:
        mv = run.log_model(model, name="ref", input_example=X[:5], onnx=False, reference_data=holed)
    sig = Signature.from_dict(mv.signature)
    assert sig.takes_missing == {"s2"}
    with pytest.raises(SignatureError) as err:
        sig.check_frame(X.iloc[:4].assign(bp=[1.0, np.nan, np.nan, 2.0]))
    assert err.value.details["field"] == "bp" and err.value.details["row"] == 1
    assert err.value.details["rows"] == 2


def test_unknown_allow_missing_columns_are_refused(settings: Settings, diabetes: Any) -> None:
    X, y = diabetes
    with sy.start_run(experiment="nulls") as run, pytest.raises(Exception) as err:
        run.log_model(Ridge().fit(X, y), name="bad", input_example=X[:5], allow_missing=["nope"])
    assert "nope" in str(err.value) and "allow_missing" in str(err.value)


def test_a_signature_stored_before_missing_was_recorded_refuses_nulls() -> None:
    old = {"kind": "columns", "inputs": [{"name": "a", "type": "double"}]}
    sig = Signature.from_dict(old)
    assert sig.takes_missing == frozenset()
    with pytest.raises(SignatureError):
        sig.columns_from_records([{"a": 1.0}, {"a": None}])
    text = Signature.from_dict({"inputs": [{"name": "t", "type": "string"}]})
    with pytest.raises(SignatureError) as err:
        text.columns_from_records([{"t": "x"}, {"t": None}])
    assert err.value.details["field"] == "t"


def test_allow_missing_on_a_model_that_cannot_handle_them_is_refused(
    settings: Settings, diabetes: Any
) -> None:
    """New user: `allow_missing=["bmi"]` on a plain Ridge was accepted, then served null."""
    X, y = diabetes
    with sy.start_run(experiment="nulls") as run, pytest.raises(Exception) as err:
        run.log_model(Ridge().fit(X, y), name="ridge", input_example=X[:5], allow_missing=["bmi"])
    assert "allow_missing" in str(err.value) and "'bmi'" in str(err.value)
