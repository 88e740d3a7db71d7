"""pandas' nullable and extension dtypes in column signatures (MLflow: integer columns with
missing values break signatures, mlflow#3798; nullable dtypes silently drop it, mlflow#25593).

Before: a frame with `boolean` or `Int64`-with-NA columns failed `log_model`, `UInt32` was
typed int32, a datetime column was typed string, and a null in an integer column that takes
missing values reached the model as int64's smallest value instead of NaN."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError, SignatureError
from shipyard.flavors.signature import Signature, infer_signature
from shipyard.serving.app import create_serving_app
from shipyard.serving.http import BackgroundServer


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


def _frame(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A frame of nullable columns: `age` (Int64) and `rooms` (Int8) have pd.NA."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    rooms = rng.integers(1, 8, n)
    income = rng.normal(50, 10, n)
    X = pd.DataFrame(
        {
            "age": pd.array(age, dtype="Int64"),
            "rooms": pd.array(rooms, dtype="Int8"),
            "visits": pd.array(rng.integers(0, 4_000_000_000, n), dtype="UInt32"),
            "income": pd.array(income, dtype="Float32"),
            "owner": pd.array(rng.random(n) > 0.5, dtype="boolean"),
        }
    )
    X.loc[::9, "age"] = pd.NA
    X.loc[::13, "rooms"] = pd.NA
    y = age * 0.5 + rooms * 3.0 + income * 0.1 + rng.normal(0, 1, n)
    return X, y


def _float(X: pd.DataFrame) -> pd.DataFrame:
    """What scikit-learn makes of nullable columns: float64 with NaN."""
    return X.astype("float64")


def test_extension_dtypes_have_their_signature_types() -> None:
    X, _ = _frame(20)
    X["name"] = pd.array(["a", None] * 10, dtype="string")
    X["code"] = pd.array(["x", "y"] * 10, dtype="string[pyarrow]")
    X["city"] = pd.Categorical(["paris", "rome"] * 10)
    X["size"] = pd.Categorical([1, 2] * 10)
    X["ratio"] = pd.array([0.5] * 20, dtype="Float64")
    sig = infer_signature(X)
    types = {c.name: c.dtype for c in sig.inputs}
    assert types == {
        "age": "long",
        "rooms": "integer",
        "visits": "long",  # above int32's range
        "income": "float",
        "owner": "boolean",
        "name": "string",
        "code": "string",
        "city": "string",
        "size": "long",  # the categories' own type
        "ratio": "double",
    }
    # a nullable frame is its own valid input, pd.NA taken where the example has it
    taken = sig.allowing_missing({"age", "rooms", "name"})
    cols = taken.check_frame(X)
    assert cols["age"].dtype == np.float64 and np.isnan(cols["age"][0])
    assert cols["visits"].dtype == np.int64 and cols["owner"].dtype == bool
    assert cols["name"][1] is None and cols["city"][0] == "paris"
    # pd.NA where the column takes no missing values: refused like None, naming column and row
    holed = X.copy()
    holed.loc[3, "visits"] = pd.NA
    with pytest.raises(SignatureError) as err:
        taken.check_frame(holed)
    assert err.value.details["field"] == "visits" and err.value.details["row"] == 3


def test_a_datetime_column_is_refused_naming_it() -> None:
    X = pd.DataFrame({"x": [1.0, 2.0], "when": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    with pytest.raises(InvalidArgumentError) as err:
        infer_signature(X)
    assert "'when'" in str(err.value) and "datetime64" in str(err.value)
    assert "astype('int64')" in str(err.value)
    tz = X.assign(when=X["when"].dt.tz_localize("UTC"))
    with pytest.raises(InvalidArgumentError, match="'when'"):
        infer_signature(tz)


def test_hist_gradient_boosting_on_nullable_ints_serves_nulls_as_nan(settings: Settings) -> None:
    X, y = _frame()
    model = HistGradientBoostingRegressor(max_iter=30).fit(X, y)
    with sy.start_run(experiment="nullable") as run:
        mv = run.log_model(model, name="hgb", input_example=X[:20], onnx=False)
    sig = Signature.from_dict(mv.signature)
    assert {c.name: c.dtype for c in sig.inputs}["age"] == "long"
    assert sig.takes_missing == set(X.columns)
    rows = [
        {"age": None, "rooms": 3, "visits": 7, "income": 51.5, "owner": True},
        {"age": 40, "rooms": None, "visits": 9, "income": 48.0, "owner": None},
        {"age": 61, "rooms": 2, "visits": 3, "income": 50.0, "owner": False},
    ]
    expected = model.predict(_float(pd.DataFrame(rows).astype(object).fillna(np.nan)))
    sy.set_alias("hgb", "live", 1)
    with BackgroundServer(create_serving_app(settings, "models:/hgb@live")) as srv:
        srv.wait_ready()
        r = httpx.post(f"{srv.url}/endpoints/hgb/predict", json={"instances": rows})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["predictions"], expected, rtol=1e-6)
        meta = httpx.get(f"{srv.url}/v2/models/hgb").json()
        datatypes = {i["name"]: i["datatype"] for i in meta["inputs"]}
        assert datatypes == {
            "age": "INT64",
            "rooms": "INT32",
            "visits": "INT64",
            "income": "FP32",
            "owner": "BOOL",
        }
    # the Python API takes the nullable frame itself, pd.NA included
    loaded = sy.load_model("models:/hgb@live")
    np.testing.assert_allclose(loaded.predict(X[:30]), model.predict(X[:30]), rtol=1e-6)


def test_an_integer_column_without_missing_values_refuses_null(settings: Settings) -> None:
    """`age` is imputed (the example has pd.NA there); `rooms` is not: a null there is a
    422 naming it, and complete rows keep their integers."""
    X, y = _frame()
    X = X.drop(columns=["owner", "visits"])
    X["rooms"] = X["rooms"].fillna(2)
    model = make_pipeline(
        ColumnTransformer([("age", SimpleImputer(), ["age"])], remainder="passthrough"), Ridge()
    ).fit(X, y)
    with sy.start_run(experiment="nullable") as run:
        mv = run.log_model(model, name="ridge", input_example=X[:20], onnx=False)
    sig = Signature.from_dict(mv.signature)
    assert sig.takes_missing == {"age"}
    sy.set_alias("ridge", "live", 1)
    rows = [{"age": a, "rooms": 2, "income": 50.0} for a in (30, None, 70, 45)]
    with BackgroundServer(create_serving_app(settings, "models:/ridge@live")) as srv:
        srv.wait_ready()
        url = f"{srv.url}/endpoints/ridge/predict"
        r = httpx.post(url, json={"instances": rows})
        assert r.status_code == 200, r.text
        frame = pd.DataFrame(rows).astype({"age": "float64"})
        np.testing.assert_allclose(r.json()["predictions"], model.predict(frame), rtol=1e-6)
        bad = [dict(row) for row in rows]
        bad[2]["rooms"] = None
        r = httpx.post(url, json={"instances": bad})
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "rooms" and r.json()["row"] == 2, r.text
    # a value the feature store sends for a long column is held to the same rule
    with pytest.raises(SignatureError) as err:
        sig.coerce_column("rooms", "integer", [1, None], origin=" (from the feature store)")
    assert "feature store" in str(err.value) and err.value.details["row"] == 1
    assert sig.coerce_column("rooms", "integer", [1, 2]).dtype == np.int32
    assert np.isnan(sig.coerce_column("age", "long", [1, None], origin=" (x)")[1])


def test_a_null_from_the_feature_store_in_an_integer_feature(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `long` feature trained as `Int64` with pd.NA: a model that handles missing values
    gets the store's null (an unknown driver) as NaN, as in training; one trained on complete
    rows refuses it, naming the feature and the row."""
    from sklearn.linear_model import LogisticRegression

    from shipyard.config import reset_settings
    from shipyard.server.app import create_server_app
    from shipyard.stores import open_stores
    from tests.helpers import wait_for
    from tests.integration.test_features_serving import NOW, setup_features

    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    reset_settings()
    settings = Settings(home=tmp_path / "home", user="tester")
    store = setup_features(settings, tmp_path, default={"rating": 2.5})  # trips: null
    rng = np.random.default_rng(1)
    events = pd.DataFrame(
        {
            "driver_id": rng.integers(0, 40, 300),
            "event_timestamp": NOW - pd.to_timedelta(rng.integers(0, 24 * 3600, 300), unit="s"),
            "amount": rng.random(300) * 100,
        }
    )
    X = store.get_training_frame(events, "churn")[["trips", "rating", "per_trip"]]
    X = X.astype({"trips": "Int64"})
    X.loc[::10, "trips"] = pd.NA
    y = (X["per_trip"].fillna(0) > X["per_trip"].median()).astype(int)
    hgb = HistGradientBoostingRegressor(max_iter=20).fit(X, y)
    complete = X.dropna()
    logistic = LogisticRegression(max_iter=500).fit(complete, y[complete.index])
    with sy.start_run(experiment="features") as run:
        for name, model, example in (("hgb", hgb, X[:20]), ("lr", logistic, complete[:20])):
            tags = {"feature_service": "churn"}
            run.log_model(model, name=name, input_example=example, tags=tags)
            sy.set_alias(name, "live", 1)
            open_stores(settings).metadata.endpoints.create(
                name, f"models:/{name}@live", actor="tester"
            )
    store.materialize()
    rows = [{"driver_id": d, "amount": 30.0 + d} for d in (1, 2, 999)]  # 999: unknown
    offline = store.get_training_frame(pd.DataFrame(rows).assign(event_timestamp=NOW), "churn")
    with BackgroundServer(create_server_app(settings, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        url = f"{srv.url}/endpoints/hgb/predict"
        body = {"instances": rows}
        r = wait_for(lambda: (r := httpx.post(url, json=body)).status_code == 200 and r, 30)
        want = hgb.predict(offline[["trips", "rating", "per_trip"]])
        np.testing.assert_allclose(r.json()["predictions"], want, rtol=1e-6)
        r = httpx.post(f"{srv.url}/endpoints/lr/predict", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "trips" and r.json()["row"] == 2
        assert "feature store" in r.json()["error"]
