"""The Python API users code against (DESIGN.md "Interfaces"), on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError, NotFoundError, UntrustedModelError


def test_the_design_sketch_runs(settings: Settings, breast_cancer, logreg) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    with sy.start_run(experiment="churn", params={"C": 1.0}) as run:
        ds = run.log_dataset(X, name="train")
        run.log_metrics({"auc": 0.93}, step=3)
        mv = run.log_model(logreg, name="churn", input_example=X[:5])
    sy.set_alias("churn", "champion", mv.version)
    model = sy.load_model("models:/churn@champion")
    assert mv.version == 1
    np.testing.assert_array_equal(model.predict(X[:50]), logreg.predict(X[:50]))
    # ONNX (float32) once the background conversion has landed, the native model before
    np.testing.assert_allclose(model.predict_proba(X[:50]), logreg.predict_proba(X[:50]), atol=1e-4)
    info = sy.get_run(run.id)
    assert info.status == "FINISHED"
    assert info.params == {"C": "1.0"}
    assert info.metrics == {"auc": 0.93}
    assert info.datasets[0].digest == ds.digest
    assert info.datasets[0].rows == len(X)
    assert info.datasets[0].profile["columns"]["mean radius"]["type"] == "numeric"
    assert info.environment_digest is not None
    assert sy.load_model(f"runs:/{run.id}/model").version == 1


def test_an_exception_marks_the_run_failed_and_keeps_its_metrics(settings: Settings) -> None:
    with pytest.raises(ZeroDivisionError), sy.start_run(experiment="e") as run:
        run.log_metric("loss", 0.5)
        1 / 0  # noqa: B018
    info = sy.get_run(run.id)
    assert info.status == "FAILED"
    assert "ZeroDivisionError" in (info.error or "")
    assert info.metrics == {"loss": 0.5}


def test_metrics_are_buffered_until_flush(settings: Settings) -> None:
    run = sy.start_run(
        experiment="e",
        settings=settings.model_copy(
            update={"metrics_flush_points": 10_000, "metrics_flush_seconds": 3600}
        ),
    )
    for i in range(100):
        run.log_metric("m", float(i), step=i)
    assert sy.get_run(run.id).metrics == {}
    run.flush()
    assert len(sy.get_metric_history(run.id, "m")) == 100
    run.end()


def test_bad_metric_values_are_refused(settings: Settings) -> None:
    with sy.start_run(experiment="e") as run:
        with pytest.raises(InvalidArgumentError, match="must be a number"):
            run.log_metric("m", "high")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="infinite"):
            run.log_metric("m", float("inf"))
        with pytest.raises(InvalidArgumentError, match="non-empty"):
            run.log_metric("", 1.0)
        run.log_metric("ok", 1.0)
    assert sy.get_run(run.id).metrics == {"ok": 1.0}


def test_search_runs_api(settings: Settings) -> None:
    for model, auc in [("rf", 0.95), ("rf", 0.8), ("lr", 0.99)]:
        with sy.start_run(experiment="s", params={"model": model}) as run:
            run.log_metrics({"auc": auc})
    found = sy.search_runs(
        'metrics.auc > 0.9 and params.model = "rf"', experiments="s", order_by=["metrics.auc DESC"]
    )
    assert [r.metrics["auc"] for r in found] == [0.95]
    assert [r.metrics["auc"] for r in sy.search_runs(order_by="metrics.auc")] == [0.8, 0.95, 0.99]


def test_log_artifact(settings: Settings, tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    report.write_text("all good")
    with sy.start_run(experiment="e") as run:
        rec = run.log_artifact(report)
        with pytest.raises(InvalidArgumentError, match="no such file"):
            run.log_artifact(tmp_path / "missing.txt")
    from shipyard.stores import open_stores

    assert open_stores(settings).artifacts.get_bytes(rec.digest) == b"all good"
    assert sy.get_run(run.id).artifacts[0].path == "report.txt"


def test_onnx_conversion_is_checked_and_used(settings: Settings, breast_cancer, forest) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    with sy.start_run(experiment="e") as run:
        mv = run.log_model(forest, name="rf", input_example=X[:200], onnx=True)
    assert mv.onnx_status == "ok"
    fast = sy.load_model("models:/rf/1")
    native = sy.load_model("models:/rf/1", backend="python")
    assert (fast.backend, native.backend) == ("onnxruntime", "python")
    np.testing.assert_array_equal(fast.predict(X), forest.predict(X))
    np.testing.assert_allclose(fast.predict_proba(X), forest.predict_proba(X), atol=1e-4)


def test_registration_converts_in_the_background(settings: Settings, breast_cancer, forest) -> None:  # type: ignore[no-untyped-def]
    from shipyard.stores import open_stores

    X, _ = breast_cancer
    with sy.start_run(experiment="e") as run:
        mv = run.log_model(forest, name="rf", input_example=X[:100])  # onnx="auto"
    assert mv.onnx_status == "pending"
    assert sy.load_model("models:/rf/1").backend in ("python", "onnxruntime")
    sy.Registry.wait_for_conversions(timeout=120)
    reg = sy.Registry(open_stores(settings))
    done = reg.resolve("models:/rf/1")
    assert done.onnx_status == "ok" and done.onnx_digest
    fast = sy.load_model("models:/rf/1")
    assert fast.backend == "onnxruntime"
    np.testing.assert_array_equal(fast.predict(X), forest.predict(X))
    audit = [e.action for e in reg.audit("rf")]
    assert audit[0] == "version.convert"
    with sy.start_run(experiment="e") as run:
        off = run.log_model(forest, name="rf", input_example=X[:100], onnx=False)
    assert off.onnx_status == "off"
    assert reg.convert("rf", off.version).onnx_status == "ok"


def test_a_conversion_that_disagrees_is_refused(settings: Settings, breast_cancer) -> None:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    from shipyard.errors import ConversionError
    from shipyard.stores import open_stores

    X, y = breast_cancer
    model = LogisticRegression(max_iter=5000).fit(X, y)
    original = model.predict
    model.predict = lambda data: 1 - original(data)  # the ONNX graph cannot know about this
    with sy.start_run(experiment="e") as run:
        with pytest.raises(ConversionError, match="does not match"):
            run.log_model(model, name="lr", input_example=X[:50], onnx=True)
        mv = run.log_model(model, name="lr", input_example=X[:50], onnx="auto")
    assert mv.onnx_status == "pending"
    sy.Registry.wait_for_conversions(timeout=120)
    done = sy.Registry(open_stores(settings)).resolve("models:/lr/1")
    assert done.onnx_status == "refused" and done.onnx_digest is None
    assert "lambda" in (done.onnx_detail or "")
    # no ONNX file was kept; the native model carries the lambda, which skops will not trust
    with pytest.raises(UntrustedModelError, match="lambda"):
        sy.load_model("models:/lr/1")


def test_pickle_loads_only_when_trusted(settings: Settings) -> None:
    class Doubler:
        def predict(self, x):  # type: ignore[no-untyped-def]
            return np.asarray(x)[:, 0] * 2

    with sy.start_run(experiment="e") as run:
        with pytest.raises(InvalidArgumentError, match="cannot save"):
            run.log_model(Doubler(), name="dbl", input_example=np.ones((2, 1)))
        run.log_model(
            _module_level_doubler(),
            name="dbl",
            input_example=np.ones((2, 1)),
            serialization="pickle",
        )
    with pytest.raises(UntrustedModelError, match="trusted=True"):
        sy.load_model("models:/dbl/1")
    model = sy.load_model("models:/dbl/1", trusted=True)
    assert model.predict(np.array([[3.0]])).tolist() == [6.0]


def _module_level_doubler():  # type: ignore[no-untyped-def]
    from tests.integration._models import Doubler

    return Doubler()


def test_a_tampered_artifact_is_refused(settings: Settings, breast_cancer, logreg) -> None:  # type: ignore[no-untyped-def]
    import os

    from shipyard.errors import IntegrityError
    from shipyard.stores import open_stores

    X, _ = breast_cancer
    with sy.start_run(experiment="e") as run:
        # no ONNX file: the load must read (and verify) the skops file tampered below
        mv = run.log_model(logreg, name="churn", input_example=X[:5], onnx=False)
    store = open_stores(settings).artifacts
    manifest = __import__("json").loads(store.get_bytes(mv.artifact_digest))
    path = store._path(manifest["files"]["model.skops"])
    os.chmod(path, 0o644)
    with open(path, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(IntegrityError, match="corrupted"):
        sy.load_model("models:/churn/1")


def test_unknown_models_and_aliases(settings: Settings, breast_cancer, logreg) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    with sy.start_run(experiment="e") as run:
        run.log_model(logreg, name="churn", input_example=X[:5])
    sy.set_alias("churn", "champion", 1)
    with pytest.raises(NotFoundError, match="did you mean 'churn'"):
        sy.load_model("models:/chrun@champion")
    with pytest.raises(NotFoundError, match="did you mean 'champion'"):
        sy.load_model("models:/churn@champion1")
    with pytest.raises(InvalidArgumentError, match="not valid"):
        run.log_model(logreg, name="bad name!", input_example=X[:5])
    with pytest.raises(InvalidArgumentError, match="input_example is required"):
        run.log_model(logreg, name="churn", input_example=None)


def test_code_version_is_recorded_inside_a_git_repo(tmp_path: Path, settings: Settings) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    script = repo / "train.py"
    script.write_text(
        textwrap.dedent("""
        import shipyard as sy
        with sy.start_run(experiment="git") as run:
            print(run.id)
    """)
    )
    git = ["git", "-c", "user.email=t@e", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    out = subprocess.run(
        [sys.executable, str(script)], cwd=repo, capture_output=True, text=True, check=True
    )
    run = sy.get_run(out.stdout.strip())
    assert (run.git_commit, run.git_dirty) == (commit, False)
    assert run.source == str(script)
    script.write_text(script.read_text() + "\n# edited\n")
    out = subprocess.run(
        [sys.executable, str(script)], cwd=repo, capture_output=True, text=True, check=True
    )
    assert sy.get_run(out.stdout.strip()).git_dirty is True


def test_environment_is_captured(settings: Settings) -> None:
    import json
    import platform

    from shipyard.stores import open_stores

    with sy.start_run(experiment="e") as run:
        pass
    digest = sy.get_run(run.id).environment_digest
    assert digest is not None
    env = json.loads(open_stores(settings).artifacts.get_bytes(digest))
    assert env["python"] == platform.python_version()
    assert "scikit-learn" in env["packages"]


def test_metrics_logged_without_ending_the_run_survive_a_normal_exit(settings: Settings) -> None:
    code = textwrap.dedent("""
        import shipyard as sy
        run = sy.start_run(experiment="atexit")
        for i in range(1234):
            run.log_metric("m", i, step=i)
        print(run.id)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    run = sy.get_run(out.stdout.strip())
    assert run.status == "FINISHED"
    assert len(sy.get_metric_history(run.id, "m")) == 1234
