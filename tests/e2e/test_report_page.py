"""The HTML drift report, opened in a real headless Chromium: it renders offline, shows the
verdict and one chart per column, and stays small."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    if path is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    return path


def test_report_renders_in_a_browser(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    ref = pd.DataFrame(
        {
            **{f"x{i}": rng.normal(0, 1, n) for i in range(8)},
            "plan": rng.choice(["basic", "pro", "team"], n),
        }
    )
    cur = ref.copy()
    cur["x0"] = cur["x0"] + 0.3
    cur["plan"] = rng.choice(["basic", "pro", "team", "<script>alert(1)</script>"], n)
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "shipyard.cli.main",
            "monitor",
            "report",
            "--reference",
            str(tmp_path / "ref.parquet"),
            "--current",
            str(tmp_path / "cur.parquet"),
            "--out",
            str(tmp_path / "report.html"),
            "--json-out",
            str(tmp_path / "report.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "2 of 9 column(s) drifted" in out.stdout
    page = (tmp_path / "report.html").read_text()
    assert len(page) < 500_000
    assert "<script>alert" not in page  # values are escaped
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # offline
    assert json.loads((tmp_path / "report.json").read_text())["drifted_columns"] == ["x0", "plan"]
    browser = chromium()
    dom = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            (tmp_path / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "2 of 9 columns drifted" in " ".join(dom.split())
    assert dom.count("<svg") == 9
    assert dom.count('class="verdict drift"') == 2
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            f"--screenshot={shot}",
            "--window-size=1200,900",
            (tmp_path / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000  # something was drawn
