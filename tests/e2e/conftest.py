"""Fixtures of the end-to-end tests: the real `mlflow` clients' virtualenvs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.mlflow_venvs import MLFLOW_VERSIONS, build, venv

MLFLOW_VERSION = MLFLOW_VERSIONS[-1]  # the tests that need MLflow 3's logged models


class ClientVenvs:
    """One virtualenv per mlflow version (`mlflow_venvs.py`), reused while it exists; the
    missing ones are built side by side (a thread each), each awaited when asked for."""

    def __init__(self, versions: set[str]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        missing = sorted(v for v in versions if not venv(v).joinpath("bin", "python").exists())
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(missing)))
        self.building = {v: self.pool.submit(build, v) for v in missing}

    def python(self, version: str) -> Path:
        """The venv's Python (skipped with pip's reason when pip could not install it)."""
        if version in self.building:
            failed = self.building[version].result()
            if failed is not None:
                pytest.skip(f"pip could not install mlflow=={version}: {failed}")
        return venv(version) / "bin" / "python"


@pytest.fixture(scope="session")
def mlflow_venvs(request: pytest.FixtureRequest) -> ClientVenvs:
    """The venvs of the client versions the selected tests use, their builds all started."""
    wanted = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "mlflow_version" in callspec.params:
            wanted.add(callspec.params["mlflow_version"])
        elif "mlflow_python" in getattr(item, "fixturenames", ()):
            wanted.add(MLFLOW_VERSION)
    return ClientVenvs(wanted)


@pytest.fixture(scope="session")
def mlflow_python(mlflow_venvs: ClientVenvs) -> Path:
    """The Python of a virtualenv holding mlflow==MLFLOW_VERSION."""
    return mlflow_venvs.python(MLFLOW_VERSION)
