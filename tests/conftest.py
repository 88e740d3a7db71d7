"""Shared fixtures. Services come from environment variables that `.ci/run` sets:

    SHIPYARD_TEST_POSTGRES_URL   e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test
    SHIPYARD_TEST_REDIS_URL      e.g. redis://127.0.0.1:6379/0

A test that needs one skips with the variable's name when it is unset.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.config import Settings, reset_settings

PG_ENV = "SHIPYARD_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No test reads or writes the developer's ~/.shipyard."""
    for key in list(os.environ):
        if key.startswith("SHIPYARD_") and not key.startswith("SHIPYARD_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path_factory.mktemp("default-home")))
    monkeypatch.setenv("SHIPYARD_USER", "tester")
    reset_settings()
    yield
    reset_settings()
    _quiesce()


def _quiesce() -> None:
    """Close every open store: a background ONNX conversion still running (it writes to the
    test's stores) finishes, queued ones are given back, then every engine is disposed, so
    nothing holds a lock on a database the test is about to drop."""
    from shipyard.stores import close_all

    close_all(cancel_pending=True)


@pytest.fixture
def tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SHIPYARD_HOME pointed at a fresh temporary directory."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    reset_settings()
    return home


def postgres_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(
            f"{PG_ENV} is not set (CI sets it; e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    import sqlalchemy as sa

    base = postgres_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    _quiesce()
    for attempt in range(5):  # a straggling connection may still deadlock the DROP; retry
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            break
        except sa.exc.OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def settings(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on a fresh database (SQLite and PostgreSQL) and artifact folder; also exported
    to the environment so the module-level API (`shipyard.start_run`) uses them."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_DB_URL", db_url)
    reset_settings()
    return Settings(home=home, db_url=db_url, user="tester")


@pytest.fixture
def stores(settings: Settings):  # type: ignore[no-untyped-def]
    from shipyard.stores import open_stores

    return open_stores(settings)


@pytest.fixture(scope="session")
def breast_cancer():  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def logreg(breast_cancer):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = breast_cancer
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)


@pytest.fixture(scope="session")
def forest(breast_cancer):  # type: ignore[no-untyped-def]
    from sklearn.ensemble import RandomForestClassifier

    X, y = breast_cancer
    return RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
