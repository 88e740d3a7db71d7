"""`shipyard models optimize` (#16): quantization, pruning and distillation of real
scikit-learn, XGBoost and LightGBM models trained on generated data, each making a NEW version
that records its parent, technique, metric delta, latency and size — through the Python API,
the CLI and HTTP, on SQLite and PostgreSQL; the old version never changes, quality gates apply
to the new one, the audit log says who optimized what, and bad input leaves no version."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import GateBlockedError, InvalidArgumentError
from shipyard.optimize import Optimizer, Options, measure
from shipyard.pipelines import gates
from shipyard.stores import open_stores
from tests.integration.test_cli_basics import cli, refused

# the quantized model answers like the float one within these (stated in the README)
LABEL_AGREEMENT = 0.95  # share of held-out rows with the same predicted class
PROBA_MEAN_ABS = 0.03  # mean absolute difference of the class probabilities


@pytest.fixture(autouse=True)
def _fewer_latency_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "LATENCY_CALLS", 40)  # the figure, not its precision, is tested


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    from sklearn.datasets import make_classification, make_regression

    X, y = make_classification(1500, 10, n_informative=6, random_state=0)
    Xr, yr = make_regression(1500, 8, noise=5.0, random_state=0)
    cols = [f"x{i}" for i in range(10)]
    return {
        "X": pd.DataFrame(X, columns=cols),
        "y": y,
        "Xr": pd.DataFrame(Xr, columns=cols[:8]),
        "yr": yr,
    }


@pytest.fixture(scope="module")
def fitted(data: dict[str, Any]) -> dict[str, Any]:
    import lightgbm
    import xgboost
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, Xr, yr = data["X"][:1000], data["y"][:1000], data["Xr"][:1000], data["yr"][:1000]
    mlp = MLPClassifier((128, 64), max_iter=300, random_state=0)
    return {
        "xgb": xgboost.XGBClassifier(n_estimators=120, max_depth=3).fit(X, y),
        "lgb": lightgbm.LGBMClassifier(n_estimators=120, verbose=-1).fit(X, y),
        "mlp": make_pipeline(StandardScaler(), mlp).fit(X, y),
        "gbr": GradientBoostingRegressor(n_estimators=60, random_state=0).fit(Xr, yr),
        "xgbr": xgboost.XGBRegressor(n_estimators=120, max_depth=3).fit(Xr, yr),
    }


def log(
    name: str,
    model: Any,
    data: dict[str, Any],
    *,
    regressor: bool = False,
    keep: bool = True,
    onnx: Any = False,
    serialization: str = "skops",
) -> Any:
    """Register `model` from a run that kept its train and test rows (unless `keep`)."""
    X, y = (data["Xr"], data["yr"]) if regressor else (data["X"], data["y"])
    with sy.start_run(experiment="optimize") as run:
        run.log_dataset(X[:1000], name="train", keep_rows=keep)
        holdout = X[1000:].assign(label=y[1000:])
        run.log_dataset(holdout, name="holdout", role="test", keep_rows=keep)
        return run.log_model(
            model,
            name=name,
            input_example=X[:5],
            onnx=onnx,
            serialization=serialization,  # type: ignore[arg-type]
        )


def files_digest(reg: Any, name: str, version: int) -> tuple[dict[str, Any], str]:
    """A version's record and a hash over its files' bytes (read back, not the names)."""
    mv = reg.get_version(name, version)
    manifest = json.loads(reg.stores.artifacts.get_bytes(mv.artifact_digest))
    h = hashlib.sha256(mv.artifact_digest.encode())
    for key in sorted(manifest["files"]):
        h.update(reg.stores.artifacts.get_bytes(manifest["files"][key]))
    record = mv.to_dict()
    record.pop("aliases")
    return record, h.hexdigest()


def check_report(mv: Any, parent: int, technique: str, classifier: bool = True) -> dict[str, Any]:
    assert mv.tags["optimize_parent"] == str(parent)
    assert mv.tags["optimize_technique"] == technique
    report = json.loads(mv.tags["optimize_report"])
    assert report["parent"] == f"{mv.name}/{parent}" and report["technique"] == technique
    keys = {"accuracy", "roc_auc"} if classifier else {"rmse", "r2"}
    assert set(report["metrics"]["delta"]) == keys
    for k in keys:
        assert report["metrics"]["delta"][k] == pytest.approx(
            report["metrics"]["new"][k] - report["metrics"]["old"][k]
        )
    assert report["held_out"]["rows"] == 500 and report["held_out"]["target"] == "label"
    assert all(report["latency_p50_ms_per_row"][k] > 0 for k in ("old", "new"))
    assert all(report["size_bytes"][k] > 0 for k in ("old", "new"))
    return report  # type: ignore[no-any-return]


@pytest.mark.parametrize("lib", ["xgb", "lgb"])
def test_pruning_boosted_trees_keeps_the_fewest_trees_within_tolerance(
    settings: Settings, data: dict[str, Any], fitted: dict[str, Any], lib: str
) -> None:
    reg = sy.Registry(open_stores(settings))
    log(lib, fitted[lib], data)
    before = files_digest(reg, lib, 1)
    result = Optimizer(reg.stores).optimize(f"models:/{lib}/1", "prune", Options(tolerance=0.01))
    mv = result.version
    assert mv.version == 2 and mv.flavor == reg.get_version(lib, 1).flavor
    report = check_report(mv, 1, "prune")
    details = report["details"]
    assert details["rounds_before"] == 120 and 1 <= details["rounds_after"] < 120
    assert details["curve_kept"] >= details["curve_full"] - 0.01
    assert report["metrics"]["delta"]["roc_auc"] >= -0.01 - 1e-9  # the rule, on the same rows
    assert report["size_bytes"]["new"] < report["size_bytes"]["old"]
    assert files_digest(reg, lib, 1) == before  # the old version is untouched
    pruned = reg.load(f"models:/{lib}/2", backend="python")
    X = data["X"][1000:]
    assert pruned.predict_proba(X).shape == (500, 2) and pruned.classes == [0, 1]
    event = next(e for e in reg.audit(lib) if e.action == "version.optimize")
    assert event.actor == "tester" and event.subject == f"{lib}/2"
    assert event.after["parent"] == f"{lib}/1" and event.after["technique"] == "prune"


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_quantizing_an_mlp_makes_an_int8_onnx_version_that_answers_within_tolerance(
    settings: Settings, data: dict[str, Any], fitted: dict[str, Any], mode: str
) -> None:
    reg = sy.Registry(open_stores(settings))
    log("mlp", fitted["mlp"], data, onnx=True)
    before = files_digest(reg, "mlp", 1)
    result = Optimizer(reg.stores).optimize("models:/mlp/1", f"quantize-{mode}")
    mv = result.version
    assert mv.flavor == "onnx" and mv.onnx_status == "ok"
    report = check_report(mv, 1, f"quantize-{mode}")
    assert report["details"]["quantized_nodes"] > 0
    assert report["latency_p50_ms_per_row"]["runtime"] == "onnxruntime"
    assert report["size_bytes"]["new"] < 0.6 * report["size_bytes"]["old"]  # INT8 weights
    if mode == "static":
        assert report["details"]["calibration_rows"] == 1000  # the run's train rows
    X = data["X"][1000:]
    old, new = reg.load("models:/mlp/1", backend="onnx"), reg.load("models:/mlp/2")
    assert new.classes == [0, 1]
    assert np.mean(old.predict(X) == new.predict(X)) >= LABEL_AGREEMENT
    assert np.abs(old.predict_proba(X) - new.predict_proba(X)).mean() <= PROBA_MEAN_ABS
    assert files_digest(reg, "mlp", 1) == before


@pytest.mark.parametrize(("teacher", "student"), [("xgb", "hgb"), ("gbr", "mlp"), ("lgb", "mlp")])
def test_distilling_into_a_small_scikit_learn_student(
    settings: Settings, data: dict[str, Any], fitted: dict[str, Any], teacher: str, student: str
) -> None:
    regressor = teacher == "gbr"
    reg = sy.Registry(open_stores(settings))
    log(teacher, fitted[teacher], data, regressor=regressor)
    before = files_digest(reg, teacher, 1)
    result = Optimizer(reg.stores).optimize(
        f"models:/{teacher}/1", "distill", Options(student=student)
    )
    assert result.version.flavor == "sklearn"
    report = check_report(result.version, 1, "distill", classifier=not regressor)
    assert report["details"]["student"] == student and report["details"]["train_rows"] == 1000
    delta = report["metrics"]["delta"]
    if regressor:
        assert delta["r2"] > -0.2  # a one-layer student of a boosted regressor: close, not equal
    else:
        assert delta["roc_auc"] > -0.05
    assert files_digest(reg, teacher, 1) == before


def test_quality_gates_apply_to_the_new_version(
    settings: Settings, data: dict[str, Any], fitted: dict[str, Any]
) -> None:
    reg = sy.Registry(open_stores(settings))
    log("xgb", fitted["xgb"], data)
    gates.configure("xgb", [gates.MinSamples(10)], settings=settings)
    gates.check("xgb", 1, data["X"][1000:].assign(label=data["y"][1000:]), target="label")
    reg.set_alias("xgb", "champion", 1)
    # no loss allowed vs the champion: pruning within 0.05 AUC is too degraded for this gate
    gates.configure("xgb", [gates.MetricGate("roc_auc", max_drop=0.0)], settings=settings)
    optimizer = Optimizer(reg.stores)
    result = optimizer.optimize("models:/xgb/1", "prune", Options(tolerance=0.05))
    assert result.passed_gates is False and result.gates is not None
    assert result.gates["gates"][0]["name"] == "roc_auc vs champion"
    assert reg.gate_report("xgb", 2) is not None  # stored with the version, as gate check does
    with pytest.raises(GateBlockedError, match="failed its quality gates"):
        reg.set_alias("xgb", "champion", 2)
    gates.configure("xgb", [gates.MetricGate("roc_auc", max_drop=0.5)], settings=settings)
    result = optimizer.optimize("models:/xgb/1", "prune", Options(tolerance=0.05))
    assert result.passed_gates is True
    reg.set_alias("xgb", "champion", result.version.version)


def test_bad_input_is_one_clear_error_and_leaves_no_version(
    settings: Settings, data: dict[str, Any], fitted: dict[str, Any], tmp_path: Path
) -> None:
    reg = sy.Registry(open_stores(settings))
    log("xgb", fitted["xgb"], data)
    log("bare", fitted["xgb"], data, keep=False)
    log("pickled", fitted["gbr"], data, regressor=True, serialization="pickle")
    optimizer = Optimizer(reg.stores)
    cases = [
        ("models:/xgb/1", "shrink", Options(), "technique", "unknown technique 'shrink'"),
        ("models:/xgb/1", "quantize-dynamic", Options(), "technique", "nothing INT8"),
        ("models:/xgb/1", "distill", Options(student="svm"), "student", "unknown student"),
        ("models:/bare/1", "prune", Options(), "data", "pass --data FILE"),
        ("models:/xgb/1", "prune", Options(target="churn"), "target", "'churn' is not in"),
        ("models:/pickled/1", "distill", Options(), "uri", "is a pickled model"),
    ]
    for uri, technique, options, field, message in cases:
        with pytest.raises(InvalidArgumentError, match=message) as caught:
            optimizer.optimize(uri, technique, options)
        assert caught.value.details.get("field") == field, (uri, technique, caught.value)
    assert [len(reg.list_versions(n)) for n in ("xgb", "bare", "pickled")] == [1, 1, 1]
    # a run without kept rows: the data named by the caller
    holdout = tmp_path / "holdout.csv"
    data["X"][1000:].assign(churned=data["y"][1000:], extra=1).to_csv(holdout, index=False)
    with pytest.raises(InvalidArgumentError, match="pass --target, one of: churned, extra"):
        optimizer.optimize("models:/bare/1", "prune", Options(data=str(holdout), tolerance=0.02))
    with pytest.raises(InvalidArgumentError, match=r"no training rows.*--train-data FILE"):
        optimizer.optimize(
            "models:/bare/1", "distill", Options(data=str(holdout), target="churned")
        )
    result = optimizer.optimize(
        "models:/bare/1", "prune", Options(data=str(holdout), target="churned", tolerance=0.02)
    )
    assert json.loads(result.version.tags["optimize_report"])["held_out"]["source"] == (
        f"file {holdout}"
    )


def test_the_cli_optimizes_shows_and_refuses(
    settings: Settings, data: dict[str, Any], fitted: dict[str, Any], capsys: Any
) -> None:
    log("lgb", fitted["lgb"], data)
    code, out, err = cli(capsys, "models", "optimize", "models:/lgb/1", "--prune", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["version"]["version"] == 2 and doc["report"]["technique"] == "prune"
    assert doc["gates"] is None
    code, out, err = cli(capsys, "models", "optimize", "models:/lgb/1", "--distill")
    assert code == 0, err
    assert out.startswith("lgb version 3: distill of models:/lgb/1") and "ms/row" in out
    code, out, _ = cli(capsys, "models", "show", "lgb")
    assert "version 2: prune of version 1 — accuracy" in out
    assert "version 3: distill of version 1" in out
    assert "error: choose one technique" in refused(
        capsys, "models", "optimize", "models:/lgb/1", "--prune", "--distill"
    )
    assert "nothing INT8 quantization applies to" in refused(
        capsys, "models", "optimize", "models:/lgb/1", "--quantize", "dynamic"
    )
    assert "no such file" in refused(
        capsys, "models", "optimize", "models:/lgb/1", "--prune", "--data", "nope.parquet"
    )
    code, out, _ = cli(capsys, "models", "audit", "lgb", "--json")
    actions = [e["action"] for e in json.loads(out)]
    assert actions.count("version.optimize") == 2


@pytest.fixture
def server(settings: Settings) -> Iterator[Any]:
    from shipyard.server.app import create_server_app
    from shipyard.serving.http import BackgroundServer

    with BackgroundServer(create_server_app(settings, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        yield srv


def test_http_optimizes_and_answers_4xx_naming_the_field(
    settings: Settings, data: dict[str, Any], fitted: dict[str, Any], server: Any
) -> None:
    log("xgbr", fitted["xgbr"], data, regressor=True)
    url = f"{server.url}/api/models/xgbr/versions/1/optimize"
    answer = httpx.post(url, json={"technique": "prune", "tolerance": 0.01}, timeout=120)
    assert answer.status_code == 201, answer.text
    doc = answer.json()
    assert doc["version"]["version"] == 2
    assert set(doc["report"]["metrics"]["delta"]) == {"rmse", "r2"}
    assert doc["version"]["tags"]["optimize_parent"] == "1"
    for body, status, field in [
        ({"technique": "shrink"}, 422, "technique"),
        ({"technique": "prune", "tolerance": 2}, 422, "tolerance"),
        ({"technique": "quantize-static"}, 400, "technique"),
        ({"technique": "prune", "target": "nope"}, 400, "target"),
    ]:
        bad = httpx.post(url, json=body, timeout=120)
        assert bad.status_code == status and bad.json()["field"] == field, (body, bad.text)
    missing = httpx.post(
        f"{server.url}/api/models/xgbr/versions/9/optimize", json={"technique": "prune"}
    )
    assert missing.status_code == 404
    versions = httpx.get(f"{server.url}/api/models/xgbr").json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    events = httpx.get(f"{server.url}/api/models/xgbr/audit").json()["events"]
    optimize = next(e for e in events if e["action"] == "version.optimize")
    assert optimize["actor"] == "anonymous@127.0.0.1" and optimize["subject"] == "xgbr/2"
