"""schemathesis over `shipyard server`'s whole OpenAPI document, every check on: no 5xx, no
answer outside the documented statuses, content types and schemas, on a real server process
with a model and an endpoint to reach. Bounded (25 examples an operation, a fixed seed, so a
failure reproduces with `st ... --seed`); tests/schemathesis.toml names the rejections that a
schema cannot express."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_ready

# schemathesis over every operation: on a busy shared machine it outlasts the default timeout
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

CONFIG = Path(__file__).parent.parent / "schemathesis.toml"
SEED = "3"


def _prepare(home: Path) -> None:
    """A registered model `breast-cancer` with a champion and an endpoint of the same name:
    the names tests/schemathesis.toml fills path parameters with."""
    script = """
import shipyard as sy
from shipyard.rollout.deployments import Deployments
from shipyard.stores import open_stores
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
X, y = load_breast_cancer(return_X_y=True, as_frame=True)
with sy.start_run(experiment="fuzz") as run:
    mv = run.log_model(LogisticRegression(max_iter=3000).fit(X, y), name="breast-cancer",
                       input_example=X[:5], onnx=False)
sy.set_alias("breast-cancer", "champion", mv.version)
Deployments(open_stores()).create("breast-cancer", "models:/breast-cancer@champion")
"""
    env = {**os.environ, "SHIPYARD_HOME": str(home)}
    env.pop("SHIPYARD_DB_URL", None)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)


def test_the_whole_api_under_schemathesis(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _prepare(home)
    port = free_port()
    env = {**os.environ, "SHIPYARD_HOME": str(home)}
    env.pop("SHIPYARD_DB_URL", None)
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "shipyard.cli.main", "server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server, timeout=120)
        spec = httpx.get(f"{url}/openapi.json").json()
        methods = {"get", "put", "post", "delete", "patch", "head", "options"}
        operations = sum(m in methods for item in spec["paths"].values() for m in item)
        st = Path(sys.executable).with_name("st")
        run = subprocess.run(
            [
                str(st),
                "--config-file",
                str(CONFIG),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "25",
                "--workers",
                "1",
                "--seed",
                SEED,
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        selected = re.search(r"Selected: (\d+)/(\d+)", run.stdout)
        tested = re.search(r"Tested: (\d+)", run.stdout)
        assert selected is not None and tested is not None, run.stdout[-3000:]
        # every documented operation was selected and fuzzed, none skipped or errored
        assert int(selected[1]) == int(selected[2]) == operations, run.stdout[-3000:]
        assert int(tested[1]) == operations, run.stdout[-3000:]
        assert server.poll() is None, "the server died under fuzzing"
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    assert "Traceback" not in (tmp_path / "server.log").read_text()
