"""The HTTP wire tests on the lowest and the highest uvicorn that pyproject allows (each
installed into a folder of its own, first on PYTHONPATH of a pytest subprocess), and on a
uvicorn older than the fence supports: there the fast path is off, with one log line, and
the data plane still answers (uvicorn's own protocol)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WIRE_TESTS = [
    "tests/integration/test_serving_http.py",
    "tests/integration/test_transport_limits.py",
]
OLDER = "0.44.0"  # the last release without `_start_asgi_task`, which the fast path hooks


def bounds() -> tuple[str, str]:
    """The lowest allowed and the highest tested uvicorn, read from pyproject's bound."""
    text = (REPO / "pyproject.toml").read_text()
    found = re.search(r'"uvicorn\[standard\]>=([0-9.]+),<([0-9.]+)"', text)
    assert found is not None, "pyproject bounds uvicorn as >=LOW,<NEXT"
    low, upper = found.groups()
    major, minor = upper.split(".")[:2]
    return (low if low.count(".") == 2 else f"{low}.0"), f"{major}.{int(minor) - 1}.0"


def install(version: str, folder: Path) -> Path:
    target = folder / f"uvicorn-{version}"
    if not (target / "uvicorn").exists():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
             str(target), f"uvicorn=={version}"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"pip cannot install uvicorn=={version}: {done.stderr.strip()[-300:]}")
    return target


def env_with(target: Path) -> dict[str, str]:
    path = os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path}


def uvicorn_version(env: dict[str, str]) -> str:
    code = "import uvicorn; print(uvicorn.__version__)"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize("which", ["lowest", "highest"])
def test_the_wire_tests_pass_on_the_lowest_and_highest_supported_uvicorn(
    which: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    version = bounds()[0 if which == "lowest" else 1]
    env = env_with(install(version, tmp_path_factory.getbasetemp()))
    assert uvicorn_version(env) == version
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *WIRE_TESTS],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, f"uvicorn {version}:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


_OLDER_CHECK = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s", stream=sys.stdout)
from shipyard.serving import uvicorn_fence
from shipyard.serving.transport import ConnectionLimits
print("http:", uvicorn_fence.protocol_class(None, ConnectionLimits()))
"""


def test_an_older_uvicorn_runs_its_own_protocol_and_everything_answers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    env = env_with(install(OLDER, tmp_path_factory.getbasetemp()))
    assert uvicorn_version(env) == OLDER
    check = subprocess.run(
        [sys.executable, "-c", _OLDER_CHECK], env=env, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in check.stdout.splitlines() if line.startswith("shipyard.serving")]
    assert len(lines) == 1 and "_start_asgi_task" in lines[0], check.stdout + check.stderr
    assert "http: auto" in check.stdout
    # the wire tests that do not count requests on shipyard's own protocol (the direct path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", WIRE_TESTS[0],
         "-k", "not pipelined and not in_pieces and not http_1_0 and not direct_path "
               "and not never_reads"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, f"uvicorn {OLDER}:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
