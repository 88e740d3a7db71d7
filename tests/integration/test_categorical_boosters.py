"""Boosters trained on a pandas `category` column: logged with the column's categories, loaded
and served with the column rebuilt on exactly those categories (same order: the codes), an
unseen category routed as missing, and no ONNX conversion (the converters do not convert
categorical splits) — with the version saying why."""

from __future__ import annotations

from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import shipyard as sy
from shipyard.config import Settings
from shipyard.registry import Registry
from shipyard.serving.app import create_serving_app
from shipyard.serving.http import BackgroundServer
from shipyard.stores import open_stores

pytestmark = pytest.mark.slow  # trains two boosters and starts a server


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 1500
    # categories deliberately not in alphabetical order: a rebuilt column that sorted them
    # would give every row another code
    region = pd.Categorical(
        rng.choice(["west", "north", "south", "east"], n),
        categories=["west", "north", "south", "east"],
    )
    X = pd.DataFrame({"income": rng.normal(50, 10, n), "region": region})
    X.loc[X.index[::37], "region"] = np.nan
    effect = pd.Series(region).map({"west": 0.0, "north": 3.0, "south": -2.0, "east": 6.0})
    score = X["income"] / 10 + effect.fillna(0).to_numpy()
    return X, (score > score.median()).astype(int).to_numpy(), score.to_numpy()


@pytest.fixture(scope="module")
def boosters(frame: Any) -> dict[str, Any]:
    X, y, yr = frame
    return {
        "xgb-cat": xgb.XGBClassifier(
            n_estimators=20, max_depth=3, enable_categorical=True, tree_method="hist"
        ).fit(X, y),
        "lgb-cat": lgb.LGBMRegressor(n_estimators=20, verbose=-1).fit(X, yr),
    }


def test_category_columns_load_and_predict_like_the_library(
    settings: Settings, frame: Any, boosters: dict[str, Any]
) -> None:
    X, _, _ = frame
    example = X.iloc[:40]
    with sy.start_run(experiment="cat") as run:
        for name, model in boosters.items():
            run.log_model(model, name=name, input_example=example)
    Registry.wait_for_conversions(timeout=120)
    reg = Registry(open_stores(settings))
    for name, model in boosters.items():
        mv = reg.resolve(f"models:/{name}/1")
        region = next(c for c in mv.signature["inputs"] if c["name"] == "region")
        assert region["categories"] == ["west", "north", "south", "east"]
        assert mv.onnx_status == "refused"
        assert "category column(s) 'region'" in (mv.onnx_detail or ""), mv.onnx_detail
        loaded = sy.load_model(f"models:/{name}/1")
        assert loaded.backend == "python"
        # the request's column is plain text (what a client sends), not a category
        plain = X.iloc[:300].astype({"region": object})
        if name == "xgb-cat":
            np.testing.assert_array_equal(
                loaded.predict_proba(plain), model.predict_proba(X.iloc[:300])
            )
        np.testing.assert_array_equal(loaded.predict(plain), model.predict(X.iloc[:300]))


def test_served_category_and_an_unseen_one(
    settings: Settings, frame: Any, boosters: dict[str, Any]
) -> None:
    X, _, _ = frame
    model = boosters["lgb-cat"]
    Registry(open_stores(settings)).register("lgb-cat", model, input_example=X.iloc[:40])
    rows = X.iloc[:20].astype({"region": object}).replace({np.nan: None})
    records = rows.to_dict(orient="records")
    records[0]["region"] = "atlantis"  # no such category: routed as missing
    expected_rows = X.iloc[:20].copy()
    expected_rows.iloc[0, expected_rows.columns.get_loc("region")] = np.nan
    with BackgroundServer(create_serving_app(settings, "models:/lgb-cat/1")) as srv:
        srv.wait_ready()
        r = httpx.post(f"{srv.url}/endpoints/lgb-cat/predict", json={"instances": records})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], model.predict(expected_rows))


def test_unseen_category_refused_where_missing_values_are_not_taken() -> None:
    from shipyard.errors import SignatureError
    from shipyard.flavors.signature import infer_signature

    example = pd.DataFrame({"region": pd.Categorical(["b", "a"], categories=["b", "a"])})
    signature = infer_signature(example)
    with pytest.raises(SignatureError) as err:
        signature.columns_from_records([{"region": "a"}, {"region": "zzz"}])
    assert err.value.details["field"] == "region"
    assert "'zzz' in row 1" in err.value.message and "'b', 'a'" in err.value.message
    frame = signature.to_model_input(signature.columns_from_records([{"region": "a"}]))
    assert frame["region"].cat.codes.tolist() == [1]  # the logged order, not sorted
