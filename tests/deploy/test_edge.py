"""The edge target: an ONNX bundle with a stdlib predictor. Rendered twice byte-identical,
refused for a version without a verified conversion, every bad row refused with the row and
column named, and, in a fresh virtualenv holding only its lock, the same predictions as the
registry's model and `shipyard serve`."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest

from shipyard.deploy import Deploy, RenderOptions
from shipyard.errors import InvalidArgumentError
from tests.helpers import SHIPYARD


def _render(stores: Any, uri: str = "models:/churn@champion", **settings: str) -> Any:
    return Deploy(stores).render("edge", model_uri=uri, options=RenderOptions(settings=settings))


def _predictor_module(folder: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "edge_predictor_under_test", folder / "predictor.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_renders_are_byte_identical_and_carry_only_onnx(churn: Any, stores: Any) -> None:
    first, second = _render(stores).files, _render(stores).files
    assert first == second
    assert set(first) == {
        "README.md",
        "pyproject.toml",
        "requirements.txt",
        "churn_edge/__init__.py",
        "churn_edge/predictor.py",
        "churn_edge/model.onnx",
        "churn_edge/signature.json",
    }
    pins = [line for line in first["requirements.txt"].splitlines() if not line.startswith("#")]
    assert [p.split("==")[0] for p in pins] == ["numpy", "onnxruntime"]
    assert all(re.fullmatch(r"[a-z]+==[0-9][0-9a-z.]*", p) for p in pins)
    imports = re.findall(r"^(?:import|from) (\w+)", first["churn_edge/predictor.py"], re.M)
    stdlib = {"__future__", "argparse", "contextlib", "json", "math", "sys", "http", "pathlib"}
    assert set(imports) <= stdlib | {"typing", "numpy", "onnxruntime"}
    signature = json.loads(first["churn_edge/signature.json"])
    assert signature["model"]["uri"] == "models:/churn/1"
    assert len(signature["inputs"]) == 30


def test_a_version_without_onnx_is_refused_and_nothing_is_written(
    stores: Any, logreg: Any, breast_cancer: Any, tmp_path: Path
) -> None:
    from shipyard.registry import Registry

    X, _ = breast_cancer
    Registry(stores).register("plain", logreg, input_example=X[:5], onnx=False)
    with pytest.raises(InvalidArgumentError, match="no verified ONNX conversion") as info:
        _render(stores, "models:/plain/1")
    assert info.value.details["field"] == "model_uri"
    out = tmp_path / "out"
    env = dict(os.environ)
    result = subprocess.run(
        [*SHIPYARD, "deploy", "render", "models:/plain/1", "-t", "edge", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "no verified ONNX conversion" in result.stderr
    assert not out.exists()


def test_a_bad_setting_is_refused(churn: Any, stores: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="exact version") as info:
        _render(stores, onnxruntime="latest")
    assert info.value.details["field"] == "set"
    with pytest.raises(InvalidArgumentError, match="package name"):
        _render(stores, package="Not-A-Package")


def test_the_predictor_checks_rows_against_the_signature(
    churn: Any, stores: Any, tmp_path: Path, breast_cancer: Any
) -> None:
    X, _ = breast_cancer
    Deploy.write(_render(stores).files, tmp_path / "edge", what="edge test")
    module = _predictor_module(tmp_path / "edge/churn_edge")
    predictor = module.Predictor(tmp_path / "edge/churn_edge")
    rows = json.loads(X[:30].to_json(orient="records"))
    expected = churn.load("models:/churn@champion")
    answer = predictor.predict({"instances": rows})
    assert answer["predictions"] == expected.predict(X[:30]).tolist()
    assert np.allclose(answer["probabilities"], expected.predict_proba(X[:30]), atol=1e-5)
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    assert predictor.predict({"inputs": columns}) == answer
    bad = [
        ([{**rows[0], "mean radius": "big"}], "row 0: 'mean radius' must be a number"),
        ([rows[0], {**rows[1], "radius typo": 1.0}], "row 1: unknown column 'radius typo'"),
        ([{**rows[0], "mean area": True}], "'mean area' must be a number"),
        ([[1.0, 2.0]], "row 0: expected an object of columns, got a list"),
        ([], "no rows"),
        ("text", "expected a list of rows"),
    ]
    for payload, said in bad:
        with pytest.raises(module.InputError, match=re.escape(said)):
            predictor.predict(payload)
    missing = {k: v for k, v in rows[0].items() if k != "mean radius"}
    assert len(predictor.predict([missing])["predictions"]) == 1  # this model takes missing


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_fresh_virtualenv_with_the_lock_predicts_as_shipyard_serves(
    churn: Any, stores: Any, tmp_path: Path, breast_cancer: Any
) -> None:
    X, _ = breast_cancer
    out = tmp_path / "edge"
    Deploy.write(_render(stores).files, out, what="edge test")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [f"{venv}/bin/pip", "install", "-q", "-r", str(out / "requirements.txt")],
        capture_output=True, text=True, timeout=800,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    listed = subprocess.run(
        [f"{venv}/bin/pip", "list", "--format", "json"], capture_output=True, text=True, check=True
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "shipyard" not in names and "scikit-learn" not in names and "onnxruntime" in names
    rows = json.loads(X[:60].to_json(orient="records"))
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    ran = subprocess.run(
        [f"{venv}/bin/python", str(out / "churn_edge/predictor.py"), str(tmp_path / "rows.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    digest = Deploy(stores).facts(model_uri="models:/churn/1").model.digest
    served = _served_predictions(rows, digest)
    assert answer["predictions"] == served
    assert answer["predictions"] == churn.load("models:/churn/1").predict(X[:60]).tolist()
    refused = subprocess.run(
        [f"{venv}/bin/python", str(out / "churn_edge/predictor.py"), "-"],
        input=json.dumps([{**rows[0], "mean radius": "x"}]),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2
    assert (
        refused.stderr.strip() == "error: row 0: 'mean radius' must be a number (double), got text"
    )
    _check_http_mode(venv, out, rows[:5], served[:5])
    installed = subprocess.run(  # the bundle is a package too: its command, its module
        [f"{venv}/bin/pip", "install", "-q", "--no-deps", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    command = subprocess.run(
        [f"{venv}/bin/churn-predict", str(tmp_path / "rows.json")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert command.returncode == 0 and json.loads(command.stdout) == answer


def _served_predictions(rows: list[dict[str, Any]], digest: str) -> list[Any]:
    """What `shipyard serve models:/churn@champion --digest …` answers for the rows (the
    alias pinned to the version whose manifest has that digest, as a pulling image does)."""
    env = {**os.environ}
    proc = subprocess.Popen(
        [*SHIPYARD, "serve", "models:/churn@champion", "--port", "0", "--digest", digest],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        url = _announced(proc, r"on http://127\.0\.0\.1:(\d+)")
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/v2/models/churn/ready").status_code != 200:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        answer = httpx.post(f"{url}/endpoints/churn/predict", json={"instances": rows})
        return list(answer.json()["predictions"])
    finally:
        proc.terminate()
        proc.wait(30)


def _check_http_mode(venv: Path, out: Path, rows: list[dict[str, Any]], want: list[Any]) -> None:
    proc = subprocess.Popen(
        [f"{venv}/bin/python", str(out / "churn_edge/predictor.py"), "--serve", "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        url = _announced(proc, r"serving on http://127\.0\.0\.1:(\d+)")
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        answer = httpx.post(f"{url}/predict", json={"instances": rows})
        assert answer.status_code == 200 and answer.json()["predictions"] == want
        bad = httpx.post(f"{url}/predict", json={"instances": [{"nope": 1}]})
        assert bad.status_code == 400 and "unknown column 'nope'" in bad.json()["error"]
    finally:
        proc.terminate()
        proc.wait(30)


def _announced(proc: subprocess.Popen[str], pattern: str) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        found = re.search(pattern, line)
        if found:
            return f"http://127.0.0.1:{found[1]}"
    proc.kill()
    raise AssertionError(f"no announcement: {proc.stderr.read()}")


def test_a_model_fitted_on_an_array_takes_rows_as_lists(
    stores: Any, logreg: Any, breast_cancer: Any, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    from shipyard.registry import Registry

    X, y = breast_cancer
    model = LogisticRegression(max_iter=5000).fit(X.values, y)
    registry = Registry(stores)
    registry.register("arrays", model, input_example=X.values[:5])
    Registry.wait_for_conversions(timeout=120)
    Deploy.write(_render(stores, "models:/arrays/1").files, tmp_path / "edge", what="edge test")
    module = _predictor_module(tmp_path / "edge/arrays_edge")
    predictor = module.Predictor(tmp_path / "edge/arrays_edge")
    rows = X.values[:25].tolist()
    answer = predictor.predict({"instances": rows})
    assert (
        answer["predictions"] == registry.load("models:/arrays/1").predict(X.values[:25]).tolist()
    )
    with pytest.raises(module.InputError, match="row 0: 29 values, the model takes 30"):
        predictor.predict([rows[0][:29]])


@pytest.mark.parametrize(
    ("dist", "value"),
    [
        ("numpy", "2.4.6\n--extra-index-url https://evil/simple"),
        ("onnxruntime", "1.20.1 @ https://evil/ort.whl"),
    ],
)
def test_a_lock_value_that_is_no_version_is_refused(
    churn: Any, stores: Any, tmp_path: Path, dist: str, value: str
) -> None:
    """A stored lock goes into requirements.txt and pyproject.toml only once checked as
    `shipyard models env` checks it: another line (an index URL, a direct URL) refuses the
    render, and nothing is written."""
    from dataclasses import replace

    from shipyard.deploy.targets import Context
    from shipyard.deploy.targets.edge import render

    facts = Deploy(stores).facts(model_uri="models:/churn@champion")
    packages = {**facts.model.packages, dist: value}
    spoilt = replace(facts, model=replace(facts.model, packages=packages))
    context = Context(spoilt, RenderOptions(), lambda v, o: {"model.onnx": b"onnx"})
    with pytest.raises(InvalidArgumentError, match=dist) as info:
        render(context)
    assert info.value.details["field"] == "model_uri"
    assert "evil" in info.value.message  # it shows what the lock asks for


def test_the_predictor_template_is_read_as_utf8() -> None:
    """The predictor is read with an explicit encoding, not the locale's."""
    source = Path(__file__).resolve().parents[2] / "src/shipyard/deploy/targets/edge.py"
    predictor = source.with_name("edge_predictor.py")
    assert 'PREDICTOR.read_text(encoding="utf-8")' in source.read_text(encoding="utf-8")
    text = predictor.read_text(encoding="utf-8")
    assert "read_text()" not in text and text.count('read_text(encoding="utf-8")') == 2
