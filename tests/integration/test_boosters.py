"""XGBoost and LightGBM models — native boosters, their scikit-learn wrappers, and
scikit-learn pipelines with a booster step — logged, loaded in another process without
`trusted`, converted to ONNX only when the conversion matches, and served over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb  # the dev extra installs both (shipyard[xgboost], shipyard[lightgbm])
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

pytestmark = pytest.mark.slow  # trains eight models, starts servers and another interpreter


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture(scope="module")
def models(breast_cancer: Any) -> dict[str, Any]:
    """Each kind of booster model, trained once for the module."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = breast_cancer
    labels = np.where(y == 1, "benign", "malignant")  # LightGBM encodes any labels itself
    area = X["mean area"]
    return {
        "xgb-clf": xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y),
        "xgb-reg": xgb.XGBRegressor(n_estimators=20, max_depth=3).fit(X, area),
        "xgb-booster": xgb.train(
            {"objective": "reg:squarederror"}, xgb.DMatrix(X, label=area), num_boost_round=10
        ),
        "lgb-clf": lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, labels),
        "lgb-reg": lgb.LGBMRegressor(n_estimators=20, verbose=-1).fit(X, area),
        "lgb-booster": lgb.train(
            {"objective": "regression", "verbose": -1}, lgb.Dataset(X, label=area), 10
        ),
        "pipe-xgb": make_pipeline(StandardScaler(), xgb.XGBClassifier(n_estimators=10)).fit(X, y),
        "pipe-lgb": make_pipeline(
            StandardScaler(), lgb.LGBMClassifier(n_estimators=10, verbose=-1)
        ).fit(X, labels),
    }


def _own_predict(model: Any, X: pd.DataFrame) -> np.ndarray:
    if type(model).__name__ == "Booster" and type(model).__module__.startswith("xgboost"):
        return np.asarray(model.predict(xgb.DMatrix(X)))
    return np.asarray(model.predict(X))


def _in_another_process(settings: Settings, script: str) -> str:
    env = {
        **os.environ,
        "SHIPYARD_HOME": str(settings.home),
        "SHIPYARD_DB_URL": str(settings.db_url),
    }
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_logged_boosters_load_untrusted_in_another_process(
    settings: Settings, breast_cancer: Any, models: dict[str, Any], tmp_path: Path
) -> None:
    X, _ = breast_cancer
    with sy.start_run(experiment="boosters") as run:
        for name, model in models.items():
            mv = run.log_model(model, name=name, input_example=X[:20], onnx=False)
            prefix = name.split("-")[0]
            assert mv.flavor == {"xgb": "xgboost", "lgb": "lightgbm", "pipe": "sklearn"}[prefix]
    X.to_parquet(tmp_path / "X.parquet")
    script = f"""
import json, numpy as np, pandas as pd, shipyard as sy
X = pd.read_parquet({str(tmp_path / "X.parquet")!r})
out = {{}}
for name in {list(models)!r}:
    m = sy.load_model(f"models:/{{name}}/1")  # no trusted=True
    doc = {{"predict": m.predict(X).tolist(), "backend": m.backend}}
    if m.has_proba:
        doc["proba"] = m.predict_proba(X).tolist()
    out[name] = doc
print(json.dumps(out))
"""
    loaded = json.loads(_in_another_process(settings, script))
    for name, model in models.items():
        got = loaded[name]
        assert got["backend"] == "python", name
        assert np.array_equal(np.asarray(got["predict"]), _own_predict(model, X)), name
        if hasattr(model, "predict_proba"):
            np.testing.assert_array_equal(np.asarray(got["proba"]), model.predict_proba(X), name)
    manifest = Registry(open_stores(settings)).resolve("models:/xgb-clf/1")
    assert manifest.flavor == "xgboost"


def test_requirements_are_the_installed_versions(
    settings: Settings, breast_cancer: Any, models: dict[str, Any]
) -> None:
    from importlib.metadata import version

    from shipyard.flavors import read_manifest

    X, _ = breast_cancer
    stores = open_stores(settings)
    reg = Registry(stores)
    wanted = {
        "xgb-clf": "xgboost",
        "lgb-clf": "lightgbm",
        "pipe-xgb": "xgboost",
        "pipe-lgb": "lightgbm",
    }
    for name, dist in wanted.items():
        mv = reg.register(name, models[name], input_example=X[:5], onnx=False)
        requirements = read_manifest(stores.artifacts, mv.artifact_digest)["requirements"]
        provider = {k: v for k, v in requirements.items() if k.startswith(dist)}
        ((installed_as, pinned),) = provider.items()
        assert pinned == version(installed_as), requirements  # xgboost or xgboost-cpu


def test_conversion_parity_is_recorded_and_onnx_serves(
    settings: Settings, breast_cancer: Any, models: dict[str, Any]
) -> None:
    X, _ = breast_cancer
    reg = Registry(open_stores(settings))
    for name in ("xgb-clf", "xgb-reg", "lgb-reg", "lgb-booster"):
        reg.register(name, models[name], input_example=X[:40])
    Registry.wait_for_conversions(timeout=120)
    for name in ("xgb-clf", "xgb-reg", "lgb-reg", "lgb-booster"):
        mv = reg.resolve(f"models:/{name}/1")
        assert mv.onnx_status == "ok", (name, mv.onnx_detail)
        assert "on 40 example rows" in (mv.onnx_detail or ""), mv.onnx_detail
        loaded = sy.load_model(f"models:/{name}/1")
        assert loaded.backend == "onnxruntime"
        if name == "xgb-clf":
            assert np.array_equal(loaded.predict(X), models[name].predict(X))
            np.testing.assert_allclose(
                loaded.predict_proba(X), models[name].predict_proba(X), atol=1e-4
            )


def _drifting_regressor() -> tuple[pd.DataFrame, Any]:
    """LightGBM splits on doubles; ONNX compares with float32 thresholds: features that differ
    only past float32's precision (1000.00001 vs 1000.00002) take other branches."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": 1000 + rng.integers(0, 2000, 2000) * 1e-5, "b": rng.normal(size=2000)})
    y = np.sin((X["a"] - 1000) * 3000) * 100 + X["b"]
    return X, lgb.LGBMRegressor(n_estimators=50, min_child_samples=2, verbose=-1).fit(X, y)


def _serve(settings: Settings, uri: str) -> BackgroundServer:
    return BackgroundServer(create_serving_app(settings, uri))


def test_drifting_regressor_is_served_natively_and_says_why(settings: Settings) -> None:
    X, model = _drifting_regressor()
    reg = Registry(open_stores(settings))
    reg.register("drift", model, input_example=X[:100])
    Registry.wait_for_conversions(timeout=120)
    env = {**os.environ, "SHIPYARD_HOME": str(settings.home), "SHIPYARD_DB_URL": settings.db_url}
    shown = subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", "models", "show", "drift", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    (version,) = json.loads(shown.stdout)["versions"]
    assert version["onnx_status"] == "refused"
    assert "relative to the largest" in version["onnx_detail"], version["onnx_detail"]
    with _serve(settings, "models:/drift/1") as srv:
        srv.wait_ready()
        r = httpx.post(
            f"{srv.url}/endpoints/drift/predict",
            json={"instances": X.iloc[:200].to_dict(orient="records")},
        )
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == model.predict(X.iloc[:200]).tolist()  # LightGBM's own


@pytest.mark.parametrize("name", ["xgb-clf", "lgb-clf", "pipe-lgb"])
def test_served_answers_equal_the_librarys_own(
    settings: Settings, breast_cancer: Any, models: dict[str, Any], name: str
) -> None:
    X, _ = breast_cancer
    model = models[name]
    reg = Registry(open_stores(settings))
    reg.register(name, model, input_example=X[:40], onnx=name == "xgb-clf")
    rows = X.iloc[:50]
    with _serve(settings, f"models:/{name}/1") as srv:
        srv.wait_ready()
        r = httpx.post(
            f"{srv.url}/endpoints/{name}/predict",
            json={"instances": rows.to_dict(orient="records"), "probabilities": True},
        )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["predictions"] == model.predict(rows).tolist()
    assert doc["classes"] == model.classes_.tolist()
    atol = 1e-4 if name == "xgb-clf" else 0  # ONNX (checked within PROBA_ATOL) or native
    np.testing.assert_allclose(doc["probabilities"], model.predict_proba(rows), atol=atol)


def test_missing_values_reach_the_booster(
    settings: Settings, breast_cancer: Any, models: dict[str, Any]
) -> None:
    X, _ = breast_cancer
    model = models["lgb-clf"]
    reg = Registry(open_stores(settings))
    reg.register("nan", model, input_example=X[:5], onnx=False)
    holes = X.iloc[:10].copy()
    holes.iloc[::2, 3] = np.nan
    with _serve(settings, "models:/nan/1") as srv:
        srv.wait_ready()
        records = json.loads(holes.to_json(orient="records"))  # NaN → null
        r = httpx.post(f"{srv.url}/endpoints/nan/predict", json={"instances": records})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == model.predict(holes).tolist()
