"""Fixtures of the deploy render tests: a registered model with an alias, an endpoint in a
canary, and the offline validators (hadolint, kubernetes-validate, helm, promtool…)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(params=["sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A render reads its facts once, through the registry and rollout capabilities, and never
    touches a store again: the render tests run on SQLite, and `test_facts_on_postgres` reads
    the same facts from PostgreSQL (the stores' own suites run every query on both)."""
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture
def churn(stores: Any, logreg: Any, breast_cancer: Any) -> Any:
    """Model 'churn': version 1 (alias champion) and version 2 (alias challenger), the same
    scikit-learn pipeline, both with a verified ONNX conversion."""
    from shipyard.registry import Registry

    X, _ = breast_cancer
    registry = Registry(stores)
    v1 = registry.register("churn", logreg, input_example=X[:5])
    v2 = registry.register("churn", logreg, input_example=X[:5])
    Registry.wait_for_conversions(timeout=120)
    registry.set_alias("churn", "champion", v1.version)
    registry.set_alias("churn", "challenger", v2.version)
    return registry


@pytest.fixture
def canary_endpoint(churn: Any, stores: Any) -> str:
    """Endpoint 'churn-api' serving churn@champion, in a canary of version 2 (5,25,50,100)."""
    from shipyard.rollout import Deployments

    deployments = Deployments(stores)
    deployments.create("churn-api", "models:/churn@champion")
    deployments.canary("churn-api", "models:/churn/2", steps=[5, 25, 50, 100])
    return "churn-api"


def tool(name: str, *, where: tuple[Path, ...] = ()) -> str:
    """The path of a validator. `.ci/run` installs them all: missing under CI is a failure;
    elsewhere the test skips, naming how to install it."""
    found = shutil.which(name) or next((str(p / name) for p in where if (p / name).exists()), None)
    venv_bin = Path(sys.executable).parent / name
    if found is None and venv_bin.exists():
        found = str(venv_bin)
    if found is None:
        message = f"{name} is not installed (bash .ci/validators and make .venv/.installed-dev do)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found
