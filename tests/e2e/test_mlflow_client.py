"""An unchanged MLflow training script, run by a real `mlflow` client in its own virtualenv,
against `shipyard server` on a loopback port: what it logs is what shipyard's own Python API
sees, and what it searches and reads back is what it wrote.

Each client version has its own virtualenv, made once per machine (CI: once per run) under
$SHIPYARD_TEST_CACHE or ~/.cache/shipyard-tests and reused while it exists; the missing ones
the selected tests need are installed side by side when the first of them runs."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.config import Settings
from shipyard.serving.http import BackgroundServer
from tests.e2e.conftest import ClientVenvs
from tests.e2e.mlflow_venvs import MLFLOW_VERSIONS

# one worker runs them all (pytest -n): the client venvs are built once, side by side; the
# first test waits for its client's build (minutes on a cold cache), hence the longer timeout
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("mlflow-clients"),
    pytest.mark.timeout(900),
]

MLFLOW_VERSION = MLFLOW_VERSIONS[-1]  # the tests that need MLflow 3's logged models
SCRIPT = Path(__file__).parent / "mlflow_scripts" / "train.py"
MODELS_SCRIPT = Path(__file__).parent / "mlflow_scripts" / "models.py"
CHURN_SCRIPT = Path(__file__).parent / "mlflow_scripts" / "churn.py"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The client test runs on SQLite; the error shapes are tested on both databases."""
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture(params=["anonymous", "token"])
def served(
    request: pytest.FixtureRequest, settings: Settings
) -> Iterator[tuple[BackgroundServer, str | None]]:
    """The server, anonymous on loopback or requiring credentials, and the token a training
    job gets (`read` to find its experiment and runs, `track` to write them)."""
    from shipyard.access import ApiKeys
    from shipyard.server.app import create_server_app
    from shipyard.stores import open_stores

    token = None
    if request.param == "token":
        settings = settings.model_copy(update={"auth_required": True})
        token = ApiKeys(open_stores(settings)).create("trainer", scopes=["read", "track"])[1]
    with BackgroundServer(create_server_app(settings, refresh_seconds=1.0)) as srv:
        srv.wait_ready()
        yield srv, token


def _run_script(
    python: Path, url: str, cwd: Path, token: str | None, script: Path = SCRIPT
) -> dict[str, Any]:
    env = {
        **({"MLFLOW_TRACKING_TOKEN": token} if token else {}),
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    done = subprocess.run(
        [str(python), str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("mlflow_version", MLFLOW_VERSIONS)
def test_an_unchanged_mlflow_script_logs_to_shipyard(
    mlflow_version: str,
    mlflow_venvs: ClientVenvs,
    served: tuple[BackgroundServer, str | None],
    settings: Settings,
    tmp_path: Path,
) -> None:
    from shipyard.stores import open_stores
    from shipyard.tracking import RunQueries

    python = mlflow_venvs.python(mlflow_version)
    server, token = served
    started = time.perf_counter()
    seen = _run_script(python, server.url, tmp_path, token)
    print(f"mlflow {mlflow_version} script: {time.perf_counter() - started:.1f} s")
    run_ids = seen["run_ids"]
    assert isinstance(run_ids, list) and len(run_ids) == 5

    # what the client read back is what it wrote
    assert seen["pages"] == [run_ids[0:2], run_ids[2:4]]  # r2 > 0.5: four runs, best first
    assert seen["history"] == [[s, 1.0 / (s + 1) + 0.1] for s in range(5)]
    assert seen["params"] == {"alpha": "0.1", "solver": "svd", "fold": "0"}
    last = {"loss": 1.0 / 5 + 0.1, "r2": 0.9 - 0.1 / 10, "rmse": 0.1}
    assert seen["metrics"] == last
    tags = seen["tags"]
    assert isinstance(tags, dict)
    assert tags["team"] == "forecast" and tags["stage"] == "dev" and "scratch" not in tags
    assert tags["mlflow.runName"] == "ridge-0" and tags["mlflow.user"]
    assert seen["status"] == "FINISHED"
    datasets = seen["datasets"]
    assert isinstance(datasets, list) and len(datasets) == 1
    assert datasets[0][0] == "train-data" and datasets[0][2] == [
        ["mlflow.data.context", "training"]
    ]
    assert seen["frame_rows"] == 5 and seen["after_delete"] == 4

    # and shipyard's own API sees the same runs
    queries = RunQueries(open_stores(settings))
    runs = {r.id: r for r in queries.search(experiments="mlflow-compat")}
    assert set(runs) == set(run_ids)
    first = runs[run_ids[0]]
    assert first.name == "ridge-0" and first.status == "FINISHED"
    assert first.params == {"alpha": "0.1", "solver": "svd", "fold": "0"}
    # (SQLite's JSON aggregate keeps 15 significant digits in a listing's metrics)
    assert first.metrics == pytest.approx(last, rel=1e-14)
    assert first.tags["team"] == "forecast" and "scratch" not in first.tags
    history = queries.metric_history(run_ids[0], "loss")
    assert [(p.step, p.value) for p in history] == [(s, 1.0 / (s + 1) + 0.1) for s in range(5)]
    (dataset,) = queries.get(run_ids[0]).datasets
    assert (dataset.name, dataset.role, dataset.rows) == ("train-data", "training", 20)
    assert dataset.schema == {"x": "double", "y": "double"}
    top = queries.search(
        "metrics.r2 > 0.5", experiments="mlflow-compat", order_by="metrics.r2 DESC"
    )
    assert [r.id for r in top] == run_ids[:4]


def _native_models(settings: Settings) -> dict[str, list[float]]:
    """Two models registered by shipyard itself, as MLflow clients should load them: a
    scikit-learn classifier (skops) and an ONNX regressor. Returns their expected outputs."""
    import numpy as np
    import pandas as pd
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    rng = np.random.default_rng(7)  # the script's data
    X = pd.DataFrame({"tenure": rng.normal(size=200), "spend": rng.normal(size=200)})
    y = (X.tenure - 0.5 * X.spend + rng.normal(scale=0.3, size=200) > 0).astype(int)
    reg = Registry(open_stores(settings))
    classifier = LogisticRegression(C=2.0).fit(X, y)
    reg.register("native-skops", classifier, input_example=X[:5])
    reg.set_alias("native-skops", "prod", 1)
    regressor = LinearRegression().fit(X.to_numpy(), X.tenure * 2.0 + X.spend)
    proto = to_onnx(regressor, X.to_numpy()[:1].astype(np.float64), target_opset=17)
    reg.register("native-onnx", proto, input_example=X.to_numpy()[:5])
    return {
        "models:/native-skops@prod": classifier.predict(X).tolist(),
        "models:/native-onnx/1": regressor.predict(X.to_numpy()).tolist(),
    }


def test_mlflow_models_register_in_shipyard_and_serve(
    mlflow_python: Path, settings: Settings, tmp_path: Path
) -> None:
    """log_model(registered_model_name=…), an alias, load_model by alias, version and logged
    model; the same version served by shipyard on its ONNX fast path; the pickled one only
    when trusted; shipyard's own models loaded by MLflow's client."""
    import httpx

    from shipyard.access import ApiKeys
    from shipyard.errors import UntrustedModelError
    from shipyard.registry import Registry
    from shipyard.serving.app import create_serving_app
    from shipyard.stores import open_stores

    expected_native = _native_models(settings)
    settings = settings.model_copy(update={"auth_required": True})
    keys = ApiKeys(open_stores(settings))
    token = keys.create("ml-team", scopes=["read", "track", "admin"])[1]
    with BackgroundServer(create_server_app_for(settings)) as server:
        server.wait_ready()
        seen = _run_script(mlflow_python, server.url, tmp_path, token, MODELS_SCRIPT)
    expected = seen["expected"]
    assert seen["by_alias"] == seen["by_version"] == seen["native"] == expected
    assert seen["logged"] == expected
    assert seen["version_status"] == "READY" and seen["version_source"] == seen["model_uri"]
    assert seen["version_run"] == seen["run_id"] and seen["aliases"] == {"champion": "1"}
    assert seen["found"] == [["churn", "1"]]
    assert seen["artifacts"] == [["docs/notes.txt", False, 20]]
    assert seen["notes"] == "trained on 200 rows\n"
    for uri, outputs in expected_native.items():
        assert seen["shipyard_made"][uri] == pytest.approx(outputs, rel=1e-9), uri

    # the same versions in shipyard: converted to ONNX (parity checked), served by it
    reg = Registry(open_stores(settings))
    Registry.wait_for_conversions(timeout=120)
    mv = reg.resolve("models:/churn@champion")
    assert (mv.version, mv.flavor, mv.run_id) == (1, "sklearn", seen["run_id"])
    assert reg.get_version("churn", 1).onnx_status == "ok"
    with pytest.raises(UntrustedModelError):
        reg.load("models:/churn-pickled/1")
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    X = pd.DataFrame({"tenure": rng.normal(size=200), "spend": rng.normal(size=200)})
    pickled = reg.load("models:/churn-pickled/1", trusted=True)
    assert pickled.predict(X).tolist() == expected
    # saved unloaded, described when loaded: probabilities and classes as the model has them
    assert pickled.has_proba and pickled.classes == [0, 1]
    assert pickled.predict_proba(X).argmax(axis=1).tolist() == expected
    rows = X.to_dict(orient="records")
    with BackgroundServer(create_serving_app(settings, "models:/churn@champion")) as srv:
        srv.wait_ready()
        headers = {"Authorization": f"Bearer {token}"}
        meta = httpx.get(f"{srv.url}/v2/models/churn", headers=headers).json()
        r = httpx.post(
            f"{srv.url}/endpoints/churn/predict", json={"instances": rows}, headers=headers
        )
    assert meta["platform"] == "onnxruntime", meta
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == expected


def create_server_app_for(settings: Settings) -> Any:
    from shipyard.server.app import create_server_app

    return create_server_app(settings, refresh_seconds=1.0)


@pytest.mark.parametrize("mlflow_version", MLFLOW_VERSIONS)
def test_every_mlflow_client_trains_registers_and_loads(
    mlflow_version: str, mlflow_venvs: ClientVenvs, settings: Settings, tmp_path: Path
) -> None:
    """The same MLflow 2 team script on each client: params, step metrics, a file and the
    dataset logged; two versions registered by log_model; the champion aliased, the other
    staged; a filtered search paged; the champion loaded by alias and by version predicts as
    the trained model, and shipyard's own API sees all of it (a pickle loads only trusted)."""
    from shipyard.access import ApiKeys
    from shipyard.stores import open_stores

    python = mlflow_venvs.python(mlflow_version)
    settings = settings.model_copy(update={"auth_required": True})
    stores = open_stores(settings)
    token = ApiKeys(stores).create("ml-team", scopes=["read", "track", "admin"])[1]
    with BackgroundServer(create_server_app_for(settings)) as server:
        server.wait_ready()
        started = time.perf_counter()
        seen = _run_script(python, server.url, tmp_path, token, CHURN_SCRIPT)
        print(f"mlflow {mlflow_version} churn script: {time.perf_counter() - started:.1f} s")
    assert seen["mlflow"] == mlflow_version
    _check_churn_runs(stores, seen)
    _check_churn_models(stores, seen)


def _check_churn_runs(stores: Any, seen: dict[str, Any]) -> None:
    """What the client logged is what shipyard's own API holds; the search paged in rmse
    order, every matching run once and none other."""
    from shipyard.tracking import RunQueries

    runs = seen["runs"]
    ids = [r["id"] for r in runs]
    queries = RunQueries(stores)
    assert {r.id for r in queries.search(experiments="churn")} == set(ids) and len(ids) == 5
    for run in runs:
        record = queries.get(run["id"])
        assert record.params == {
            "alpha": str(run["alpha"]),
            "solver": "auto",
            "features": "tenure,spend",
        }
        assert record.metrics["rmse"] == pytest.approx(run["rmse"], rel=1e-14)
        history = queries.metric_history(run["id"], "loss")
        assert [(p.step, p.value) for p in history] == [
            (e, run["rmse"] * (4 - e)) for e in range(4)
        ]
        assert [(d.name, d.role, d.rows) for d in record.datasets] == [
            ("churn-train", "training", 300)
        ]
        assert "docs/notes.txt" in {a.path for a in record.artifacts}
    assert seen["history"] == [[e, runs[0]["rmse"] * (4 - e)] for e in range(4)]
    assert seen["params"] == {"alpha": "0.1", "solver": "auto", "features": "tenure,spend"}
    assert seen["datasets"] == ["churn-train"]
    assert seen["docs"] == ["docs/notes.txt"]
    assert ["docs", True, None] in seen["artifacts"]
    matching = sorted((r for r in runs if r["rmse"] < 1), key=lambda r: r["rmse"])
    expected_ids = [r["id"] for r in matching]
    assert 2 < len(expected_ids) < 5
    assert seen["pages"] == [expected_ids[i : i + 2] for i in range(0, len(expected_ids), 2)]


def _check_churn_models(stores: Any, seen: dict[str, Any]) -> None:
    """Registered, aliased and loaded: the champion predicts as the model the script trained,
    through MLflow's client and through shipyard's registry."""
    import numpy as np
    import pandas as pd

    from shipyard.errors import UntrustedModelError
    from shipyard.registry import Registry

    ids = [r["id"] for r in seen["runs"]]
    assert seen["versions"] == {"1": ids[1], "2": ids[3]}
    assert seen["champion"] == ["1", ids[1], "READY"]
    assert seen["by_alias"] == seen["by_version"] == seen["expected"]
    assert seen["version_2"] == seen["expected_2"] != seen["expected"]
    assert seen["staging"] == seen["expected_2"]  # models:/churn/Staging: get-latest-versions
    reg = Registry(stores)
    mv = reg.resolve("models:/churn@champion")
    assert (mv.version, mv.flavor, mv.run_id) == (1, "sklearn", ids[1])
    rng = np.random.default_rng(11)
    X = pd.DataFrame({"tenure": rng.normal(size=300), "spend": rng.normal(size=300)})
    # MLflow 2 and 3.0 pickle scikit-learn models by default (cloudpickle), later 3.x use skops
    if seen["formats"]["1"] in ("cloudpickle", "pickle"):
        with pytest.raises(UntrustedModelError):
            reg.load("models:/churn@champion")
    else:
        assert seen["formats"]["1"] == "skops"
    # (shipyard may answer from its ONNX conversion: float32, parity-checked)
    loaded = reg.load("models:/churn@champion", trusted=True)
    assert loaded.predict(X).tolist() == pytest.approx(seen["expected"], rel=1e-5, abs=1e-6)
