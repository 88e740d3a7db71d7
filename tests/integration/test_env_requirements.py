"""The environment of a model must not make pip run code (red team findings 3 and 7): a
`pip_requirements` direct URL is refused when logging, every line of a stored lock is checked
again when `models env` prints it or makes a virtualenv (a manifest can be changed in the
store), `--venv` installs wheels only, and a malformed lock or `--venv` path is one line,
exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard.errors import InvalidArgumentError, ModelLoadError
from shipyard.stores import open_stores
from tests.helpers import run_cli


def _log_iris(**kwargs: Any) -> shipyard.Registry:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=300).fit(X, y)
    with shipyard.start_run(experiment="env") as run:
        run.log_model(model, name="iris", input_example=X[:5], onnx=False, **kwargs)
    return shipyard.Registry(open_stores())


def _replace_environment(registry: shipyard.Registry, environment: Any) -> None:
    """Point version 1 at a copy of its manifest with another `environment` (what someone
    who can write the stores can do)."""
    import sqlalchemy as sa

    from shipyard.flavors import read_manifest

    mv = registry.get_version("iris", 1)
    manifest = read_manifest(registry.stores.artifacts, mv.artifact_digest)
    manifest["environment"] = environment(manifest["environment"])
    digest = registry.stores.artifacts.put_bytes(json.dumps(manifest).encode())[0]
    with registry.stores.metadata.db.write() as conn:
        conn.execute(
            sa.text("UPDATE model_versions SET artifact_digest = :d WHERE name = 'iris'"),
            {"d": digest},
        )


@pytest.mark.parametrize(
    "url",
    [
        "evilpkg @ file:///tmp/evilpkg",
        "evilpkg @ https://example.invalid/evilpkg-1.0.tar.gz",
        "evilpkg @ git+https://example.invalid/evil.git",
    ],
)
def test_a_direct_url_requirement_is_refused_when_logging(tmp_home: Path, url: str) -> None:
    with pytest.raises(InvalidArgumentError, match="is a direct URL") as caught:
        _log_iris(pip_requirements=[url])
    assert caught.value.details["field"] == "pip_requirements"


def _pip_options(env: dict[str, Any]) -> dict[str, Any]:
    env["packages"]["numpy\n--index-url http://127.0.0.1:9/simple\n-e git+https://x/y.git"] = "1"
    env["unpinned"] = ["-r /etc/passwd"]
    return env


def test_a_stored_lock_with_pip_options_is_never_written(tmp_home: Path, tmp_path: Path) -> None:
    _replace_environment(_log_iris(), _pip_options)
    folder = tmp_path / "env"
    for args in ((), ("--venv", str(folder), "--dry-run"), ("--venv", str(folder))):
        out = run_cli(tmp_home, "models", "env", "models:/iris/1", *args, check=False)
        assert out.returncode == 2, out
        assert "--index-url" in out.stderr and "not a package requirement" in out.stderr
        assert "--index-url" not in out.stdout and len(out.stderr.strip().splitlines()) == 1
    assert not folder.exists()


def test_a_malformed_environment_is_a_model_load_error(tmp_home: Path) -> None:
    registry = _log_iris()
    _replace_environment(registry, lambda env: "oops")
    out = run_cli(tmp_home, "models", "env", "models:/iris/1", check=False)
    assert out.returncode == 2 and "'environment' is str, not an object" in out.stderr
    with pytest.raises(ModelLoadError, match="'environment' is str"):
        shipyard.load_model("models:/iris/1")
    _replace_environment(registry, lambda env: {"python": "3.11", "packages": ["numpy"]})
    with pytest.raises(ModelLoadError, match=r"'environment\.packages' is list"):
        shipyard.load_model("models:/iris/1")


def test_venv_paths_that_cannot_be_a_virtualenv_are_one_line(
    tmp_home: Path, tmp_path: Path
) -> None:
    _log_iris()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for folder, says in ((a_file, "is not a folder"), (a_file / "x", "could not create")):
        out = run_cli(
            tmp_home, "models", "env", "models:/iris/1", "--venv", str(folder), check=False
        )
        assert out.returncode == 2, out
        assert says in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "Traceback" not in out.stderr


def test_source_builds_are_allowed_only_when_asked(tmp_home: Path, tmp_path: Path) -> None:
    _log_iris()
    folder = str(tmp_path / "env")
    args = ("models", "env", "models:/iris/1", "--venv", folder, "--dry-run")
    assert "--only-binary=:all: -r" in run_cli(tmp_home, *args).stdout
    opened = run_cli(tmp_home, *args, "--allow-source-builds").stdout
    assert "--only-binary" not in opened and "pip install -r" in opened
