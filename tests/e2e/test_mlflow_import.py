"""`shipyard import mlflow` against a real MLflow server (its own virtualenv, SQLite backend,
proxied artifacts) filled with a few hundred runs and registered models: everything the
`mlflow` client reads from the server is what shipyard's Python API reads after the import,
field by field; a second import copies nothing; one killed with SIGKILL and started again
ends with the same copy, without duplicates; the server's database imports the same way."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from tests.helpers import SHIPYARD, free_port, run_cli, wait_for

# a real server filled by a real client, ONNX conversions of the imported versions: minutes
# one worker runs the module: its MLflow server is filled once (minutes), not once per worker
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.xdist_group("mlflow-import"),
]

SCRIPTS = Path(__file__).parent / "mlflow_scripts"
RUNS = 300
IMPORT_TAGS = ("shipyard.imported_from", "shipyard.import_pending")


def _client_env(url: str, home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }


@pytest.fixture(scope="module")
def mlflow_server(
    mlflow_python: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """A running `mlflow server`, filled by fill_server.py; yields its URL, database,
    artifact folder and what the `mlflow` client reads from it (dump_server.py)."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(mlflow_python),
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=_client_env(url, root),
        stdout=subprocess.DEVNULL,
        stderr=open(root / "server.log", "w"),  # noqa: SIM115
        start_new_session=True,  # its workers stop with it (killpg below)
    )
    try:
        _wait_healthy(url, server)
        for script, args in (
            ("fill_server.py", [str(RUNS)]),
            ("dump_server.py", [str(root / "truth.json")]),
        ):
            done = subprocess.run(
                [str(mlflow_python), str(SCRIPTS / script), *args],
                env=_client_env(url, root),
                cwd=root,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-4000:]
        truth = json.loads((root / "truth.json").read_text())
        yield {
            "url": url,
            "db": root / "mlflow.db",
            "artifacts": root / "artifacts",
            "truth": truth,
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow server exited"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("mlflow server did not start")


def _import(home: Path, *args: str) -> dict[str, Any]:
    out = run_cli(home, "import", "mlflow", *args, "--json", timeout=600)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _stores(home: Path) -> Any:
    from shipyard.stores import open_stores

    return open_stores(Settings(home=home, user="tester"))


def _value(v: float) -> float | str:
    return "NaN" if math.isnan(v) else v


def _check_runs(truth: dict[str, Any], home: Path) -> None:
    """Every run of the server, field by field, through shipyard's Python API."""
    from shipyard.tracking import RunQueries

    queries = RunQueries(_stores(home))
    names = {i: ("default" if i == "0" else e["name"]) for i, e in truth["experiments"].items()}
    assert len(truth["runs"]) == RUNS + 1 + 6  # the filled runs, a child, six model trainings
    for run_id, want in truth["runs"].items():
        got = queries.get(run_id)
        assert got.id == run_id
        assert got.experiment == names[want["experiment_id"]]
        assert (got.name, got.user, got.status) == (want["name"], want["user"], want["status"])
        assert (got.start_time, got.end_time) == (want["start_time"], want["end_time"])
        assert got.lifecycle_stage == want["lifecycle_stage"]
        assert got.params == want["params"]
        assert {k: v for k, v in got.tags.items() if k not in IMPORT_TAGS} == want["tags"]
        assert got.tags["shipyard.imported_from"] and "shipyard.import_pending" not in got.tags
        assert got.parent_run_id == want["tags"].get("mlflow.parentRunId")
        for key, points in want["metrics"].items():
            history = queries.metric_history(run_id, key)
            assert sorted([p.step, p.timestamp, _value(p.value)] for p in history) == sorted(
                points, key=lambda p: (p[0], p[1], str(p[2]))
            ), (run_id, key)
        assert set(got.metrics) == set(want["metrics"])
        datasets = sorted(
            [d.name, d.profile["mlflow"]["digest"], {"mlflow.data.context": d.role}]
            for d in got.datasets
        )
        assert datasets == sorted(want["datasets"])
        assert sorted([a.path, a.size] for a in got.artifacts) == want["artifacts"]


def _check_models(truth: dict[str, Any], home: Path, summary: dict[str, Any]) -> None:
    """Every registered model, version (description, tags, source run) and alias; the
    versions load in shipyard and predict what they predicted in MLflow."""
    import numpy as np

    from shipyard.registry import Registry

    registry = Registry(_stores(home))
    notes = {n["what"]: n["why"] for n in summary["notes"]}
    assert "pickle" in notes["fraud/2 → 2"]  # cloudpickle: kept, loads only when trusted
    assert set(truth["models"]) == {m.name for m in registry.list_models()}
    rows = np.arange(40.0).reshape(20, 2)[::4]
    for name, want in truth["models"].items():
        model = registry.get_model(name)
        assert model.description == want["description"]
        assert model.tags == want["tags"]
        by_source = {
            mv.tags["shipyard.imported_version"]: mv for mv in registry.list_versions(name)
        }
        assert set(by_source) == set(want["versions"])
        for number, version in want["versions"].items():
            mv = by_source[number]
            assert mv.description == version["description"]
            assert {k: v for k, v in mv.tags.items() if k != "shipyard.imported_version"} == (
                version["tags"]
            )
            assert mv.run_id == version["run_id"]
            loaded = registry.load(f"models:/{name}/{mv.version}", trusted=True)
            assert list(loaded.predict(rows)) == version["predictions"], (name, number)
        assert model.aliases == {a: by_source[v].version for a, v in want["aliases"].items()}


def test_a_server_is_imported_field_by_field_and_a_second_import_copies_nothing(
    mlflow_server: dict[str, Any], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    started = time.perf_counter()
    first = _import(home, "--from", mlflow_server["url"])
    print(f"import of {RUNS} runs: {time.perf_counter() - started:.1f} s")
    assert first["copied"]["runs"] == len(mlflow_server["truth"]["runs"])
    assert first["copied"]["experiments"] == 4
    _check_runs(mlflow_server["truth"], home)
    second = _import(home, "--from", mlflow_server["url"])
    assert second["copied"] == {}, second
    assert second["unchanged"]["runs"] == len(mlflow_server["truth"]["runs"])
    _check_models(mlflow_server["truth"], home, first)


def test_an_import_killed_half_way_finishes_without_duplicates(
    mlflow_server: dict[str, Any], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_USER": "e2e"}
    env.pop("SHIPYARD_DB_URL", None)
    proc = subprocess.Popen(
        [*SHIPYARD, "import", "mlflow", "--from", mlflow_server["url"], "--no-models"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and _runs_in(home) < 100:
        time.sleep(0.05)
    assert proc.poll() is None, "the import finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < _runs_in(home) < len(mlflow_server["truth"]["runs"])
    again = _import(home, "--from", mlflow_server["url"], "--no-models")
    assert again["copied"]["runs"] + again["unchanged"]["runs"] + again["copied"].get(
        "runs resumed", 0
    ) == len(mlflow_server["truth"]["runs"])
    _check_runs(mlflow_server["truth"], home)
    assert _import(home, "--from", mlflow_server["url"], "--no-models")["copied"] == {}


def _runs_in(home: Path) -> int:
    db = home / "shipyard.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("select count(*) from runs").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_the_server_database_is_imported_the_same_way(
    mlflow_server: dict[str, Any], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    source = ["--from", f"sqlite:///{mlflow_server['db']}"]
    first = _import(home, *source, "--artifacts-from", str(mlflow_server["artifacts"]))
    assert first["copied"]["runs"] == len(mlflow_server["truth"]["runs"])
    _check_runs(mlflow_server["truth"], home)
    assert _import(home, *source, "--artifacts-from", mlflow_server["url"])["copied"] == {}
    _check_models(mlflow_server["truth"], home, first)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("http://127.0.0.1:{closed}", "cannot reach MLflow at http://127.0.0.1:"),
        ("sqlite:///{not_mlflow}", "is not an MLflow tracking database"),
        ("sqlite:///{missing}", "no MLflow database at"),
        ("ftp://example.org/x", "--from must be an MLflow server"),
        ("http://127.0.0.1:{not_mlflow_server}", "does not answer MLflow's REST API"),
    ],
)
def test_bad_sources_are_one_line_with_exit_code_2(
    tmp_path: Path, source: str, message: str
) -> None:
    not_mlflow = tmp_path / "other.db"
    with sqlite3.connect(not_mlflow) as conn:
        conn.execute("create table runs (id text)")
    port = free_port()
    other = subprocess.Popen(  # any HTTP server but MLflow's
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}"))
        where = source.format(
            closed=free_port(),
            not_mlflow=not_mlflow,
            missing=tmp_path / "no.db",
            not_mlflow_server=port,
        )
        out = run_cli(tmp_path / "home", "import", "mlflow", "--from", where, check=False)
    finally:
        other.terminate()
        other.wait()
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.postgres
def test_an_mlflow_database_on_postgresql_is_imported(
    mlflow_server: dict[str, Any], pg_url: str, tmp_path: Path
) -> None:
    """The server's tables copied into PostgreSQL (as `mlflow db upgrade` would have made
    them there): the same import, through the same reflected tables."""
    _copy_tables(mlflow_server["db"], pg_url)
    home = tmp_path / "home"
    source = ["--from", pg_url, "--artifacts-from", str(mlflow_server["artifacts"])]
    first = _import(home, *source)
    assert first["copied"]["runs"] == len(mlflow_server["truth"]["runs"])
    _check_runs(mlflow_server["truth"], home)
    _check_models(mlflow_server["truth"], home, first)
    assert _import(home, *source)["copied"] == {}


MLFLOW_TABLES = [
    "alembic_version",
    "experiments",
    "experiment_tags",
    "runs",
    "params",
    "metrics",
    "latest_metrics",
    "tags",
    "datasets",
    "inputs",
    "input_tags",
    "registered_models",
    "registered_model_tags",
    "registered_model_aliases",
    "model_versions",
    "model_version_tags",
    "logged_models",
]


def _copy_tables(sqlite_path: Path, url: str) -> None:
    import sqlalchemy as sa

    source = sa.create_engine(f"sqlite:///{sqlite_path}")
    target = sa.create_engine(url)
    found = sa.MetaData()
    found.reflect(source, only=MLFLOW_TABLES)
    made = sa.MetaData()
    for name in MLFLOW_TABLES:
        table = found.tables[name]
        copy = sa.Table(
            name, made, *(sa.Column(c.name, c.type, primary_key=c.primary_key) for c in table.c)
        )
        made.create_all(target, tables=[copy])
        with source.connect() as read, target.begin() as write:
            rows = [dict(r) for r in read.execute(sa.select(table)).mappings()]
            if rows:
                write.execute(copy.insert(), rows)
    source.dispose()
    target.dispose()
