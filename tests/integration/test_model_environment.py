"""The environment a model version was saved with: locked at log time, compared at load and
serve time (a framework's other major version refuses, other differences warn), printed as a
requirements file, and made into a virtualenv that can load the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard.errors import ModelLoadError
from shipyard.flavors.environment import EnvironmentWarning
from shipyard.stores import open_stores
from tests.helpers import SHIPYARD, free_port, run_cli, wait_ready


def _log_iris() -> tuple[shipyard.Registry, object]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=300).fit(X, y)
    with shipyard.start_run(experiment="env") as run:
        run.log_model(model, name="iris", input_example=X[:5], onnx=False)
    return shipyard.Registry(open_stores()), X


def _edit_lock(registry: shipyard.Registry, **versions: str) -> None:
    """Point version 1 at a copy of its manifest whose lock says other versions (what a model
    saved in another environment looks like)."""
    import sqlalchemy as sa

    from shipyard.flavors import read_manifest

    mv = registry.get_version("iris", 1)
    manifest = read_manifest(registry.stores.artifacts, mv.artifact_digest)
    manifest["environment"]["packages"].update(versions)
    digest = registry.stores.artifacts.put_bytes(json.dumps(manifest).encode())[0]
    with registry.stores.metadata.db.write() as conn:
        conn.execute(
            sa.text("UPDATE model_versions SET artifact_digest = :d WHERE name = 'iris'"),
            {"d": digest},
        )


def _bump(installed: str, part: int) -> str:
    release = [int(p) for p in installed.split(".")[:3]]
    release[part] += 1
    return ".".join(map(str, release))


def test_the_lock_holds_the_framework_and_what_it_requires(tmp_home: Path) -> None:
    registry, _ = _log_iris()
    env = registry.environment("models:/iris/1")
    assert env.framework == ("scikit-learn", "skops")
    for dist in ("scikit-learn", "skops", "numpy", "scipy", "joblib", "threadpoolctl"):
        assert env.packages[dist] == version(dist), dist
    printed = run_cli(tmp_home, "models", "env", "models:/iris/1").stdout
    assert f"scikit-learn=={version('scikit-learn')}" in printed.splitlines()
    assert printed == env.requirements_txt()
    assert registry.check_environment("models:/iris/1") == []


def test_a_major_difference_of_the_framework_refuses_to_load(tmp_home: Path) -> None:
    registry, X = _log_iris()
    installed = version("scikit-learn")
    wanted = _bump(installed, 0)
    _edit_lock(registry, **{"scikit-learn": wanted})
    expected = f"scikit-learn wanted {wanted}, installed {installed} (framework, major)"
    with pytest.raises(ModelLoadError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        shipyard.load_model("models:/iris/1")
    with pytest.warns(EnvironmentWarning, match="scikit-learn wanted"):
        model = shipyard.load_model("models:/iris/1", ignore_env=True)
    assert len(model.predict(X[:3])) == 3
    # the CLI: serve refuses at once, in one line; the env command shows the difference
    out = run_cli(tmp_home, "serve", "models:/iris/1", "--port", "0", check=False)
    assert out.returncode == 2 and expected in out.stderr and "Traceback" not in out.stderr
    _serves_with_ignore_env(tmp_home, X.iloc[:2].to_dict("records"))
    shown = json.loads(run_cli(tmp_home, "models", "env", "models:/iris/1", "--json").stdout)
    assert shown["differences"] == [
        {
            "package": "scikit-learn",
            "wanted": wanted,
            "installed": installed,
            "level": "major",
            "framework": True,
        }
    ]


def _serves_with_ignore_env(home: Path, rows: list[dict[str, float]]) -> None:
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [*SHIPYARD, "serve", "models:/iris/1", "--port", str(port), "--ignore-env"],
        env={**os.environ, "SHIPYARD_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        answer = httpx.post(f"{url}/endpoints/iris/predict", json={"instances": rows})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 2
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b"warning: models:/iris/1 was saved in another environment: scikit-learn wanted" in err


def test_a_minor_difference_or_another_package_only_warns(tmp_home: Path) -> None:
    registry, X = _log_iris()
    minor = _bump(version("scikit-learn"), 1)
    numpy_major = _bump(version("numpy"), 0)
    _edit_lock(registry, **{"scikit-learn": minor, "numpy": numpy_major})
    with pytest.warns(EnvironmentWarning) as caught:
        model = shipyard.load_model("models:/iris/1")
    message = str(caught[0].message)
    assert f"scikit-learn wanted {minor}" in message and "(framework, minor)" in message
    assert f"numpy wanted {numpy_major}" in message and "(major)" in message
    assert len(model.predict(X[:3])) == 3


def test_venv_dry_run_says_what_it_would_install(tmp_home: Path, tmp_path: Path) -> None:
    _log_iris()
    folder = tmp_path / "iris-env"
    out = run_cli(
        tmp_home, "models", "env", "models:/iris/1", "--venv", str(folder), "--dry-run"
    ).stdout
    assert f"-m venv {folder}" in out
    # the model's packages from wheels only (a wheel runs no code when installed)
    pip = f"{folder}/bin/python -m pip install"
    assert f"{pip} --only-binary=:all: -r {folder}/model-requirements.txt" in out
    assert f"scikit-learn=={version('scikit-learn')}" in out
    assert not folder.exists()
    bad = run_cli(tmp_home, "models", "env", "models:/iris/1", "--dry-run", check=False)
    assert bad.returncode == 2 and "--dry-run goes with --venv" in bad.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)  # pip installs shipyard and its dependencies into a new virtualenv
def test_the_venv_it_creates_loads_the_model(tmp_home: Path, tmp_path: Path) -> None:
    _, X = _log_iris()
    folder = tmp_path / "iris-env"
    run_cli(tmp_home, "models", "env", "models:/iris/1", "--venv", str(folder), timeout=1700)
    script = (
        "import json, shipyard; m = shipyard.load_model('models:/iris/1');"
        f"print(json.dumps(m.predict({X[:3].to_dict('list')!r}).tolist()))"
    )
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_home)}
    out = subprocess.run(
        [str(folder / "bin" / "python"), "-W", "error::UserWarning", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 3
    assert sys.prefix != str(folder)


def test_runs_uris_take_the_short_run_id_the_cli_shows(tmp_home: Path) -> None:
    from shipyard.errors import InvalidArgumentError
    from shipyard.tracking import RunQueries

    registry, X = _log_iris()
    run_id = registry.get_version("iris", 1).run_id
    assert run_id is not None
    short = run_id[:8]
    loaded = shipyard.load_model(f"runs:/{short}/model")
    assert loaded.version == 1 and len(loaded.predict(X[:3])) == 3
    printed = run_cli(tmp_home, "models", "env", f"runs:/{short}/model").stdout
    assert printed == registry.environment("models:/iris/1").requirements_txt()
    # 17 runs: two of them share a first character, a prefix that names no one run
    for _ in range(16):
        with shipyard.start_run(experiment="env"):
            pass
    runs = RunQueries(registry.stores)
    ids = [r.id for r in runs.search(experiments=["env"])]
    first = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    with pytest.raises(InvalidArgumentError, match=rf"run id prefix '{first}' matches several"):
        runs.get(first)


def test_other_answers_in_another_environment_refuse_or_warn_loudly(tmp_home: Path) -> None:
    """What XGBoost 2 reading an XGBoost 3 model looks like: the lock differs and the model
    answers otherwise on its example rows than it did when logged."""
    import sqlalchemy as sa

    from shipyard.flavors import read_manifest

    registry, _ = _log_iris()
    mv = registry.get_version("iris", 1)
    manifest = read_manifest(registry.stores.artifacts, mv.artifact_digest)
    stored = manifest["example_outputs"]
    assert stored["rows"] == 5 and len(stored["proba"]) == 5  # recorded at log time
    manifest["environment"]["packages"]["scikit-learn"] = _bump(version("scikit-learn"), 1)
    manifest["example_outputs"]["proba"][2][0] += 0.25  # what the other version answered
    digest = registry.stores.artifacts.put_bytes(json.dumps(manifest).encode())[0]
    with registry.stores.metadata.db.write() as conn:
        conn.execute(
            sa.text("UPDATE model_versions SET artifact_digest = :d WHERE name = 'iris'"),
            {"d": digest},
        )
    with pytest.raises(ModelLoadError, match=r"probabilities differ by up to 0\.25"):
        shipyard.load_model("models:/iris/1")
    with pytest.warns(EnvironmentWarning, match="PREDICTIONS ARE WRONG.*differ by up to 0.25"):
        shipyard.load_model("models:/iris/1", ignore_env=True)
