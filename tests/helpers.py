"""Helpers several test modules share (fixtures live in conftest.py files): the CLI as a
subprocess, a free loopback port, waiting for a condition, the test Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SHIPYARD = [sys.executable, "-m", "shipyard.cli.main"]
REDIS_ENV = "SHIPYARD_TEST_REDIS_URL"


def redis_url() -> str:
    """The test Redis (CI sets it); skips the test when it is unset."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set (CI sets it; e.g. redis://127.0.0.1:6379/0)")
    return url


def free_port() -> int:
    """A loopback port nothing listens on (bound once, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """`predicate()`'s first true value, polled every 50 ms; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def wait_ready(url: str, proc: subprocess.Popen[Any] | None = None, timeout: float = 60) -> None:
    """Until `url`/health/ready answers 200; fails at once if `proc` (the server) exits."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"{url}/health/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} was not ready within {timeout:g} s")


def run_cli(
    home: Path,
    *args: str,
    check: bool = True,
    cwd: Path | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """`shipyard <args>` in a process of its own on `home` (SQLite, no Redis), as user e2e;
    `check`: assert it exits 0."""
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_USER": "e2e", "COLUMNS": "200"}
    env.pop("SHIPYARD_DB_URL", None)
    env.pop("SHIPYARD_REDIS_URL", None)
    out = subprocess.run(
        [*SHIPYARD, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out
