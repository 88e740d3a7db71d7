"""`shipyard ui` on a local store: prints where the UI is, serves it and the API that feeds it,
and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import shipyard as sy

pytestmark = pytest.mark.e2e


def test_shipyard_ui_serves_the_local_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(tmp_path / "home")
    monkeypatch.setenv("SHIPYARD_HOME", env["SHIPYARD_HOME"])
    from shipyard.config import reset_settings

    reset_settings()
    with sy.start_run(experiment="local", name="first") as run:
        run.log_metrics({"auc": 0.9})
    cli = Path(sys.executable).parent / "shipyard"
    proc = subprocess.Popen(
        [str(cli), "ui", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline() if proc.stderr else ""
            found = re.search(r"(http://127\.0\.0\.1:\d+/ui/)", line)
            url = found.group(1) if found else None
        assert url, "shipyard ui did not say where it listens"
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "/ui/assets/app.js" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        runs = httpx.get(url.replace("/ui/", "/api/runs"), params={"experiment": "local"})
        assert [r["name"] for r in runs.json()["runs"]] == ["first"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
