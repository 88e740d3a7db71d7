"""The MLflow client virtualenvs the e2e tests run real `mlflow` clients in, one per version,
under $SHIPYARD_TEST_CACHE or ~/.cache/shipyard-tests, each made whole or not at all.

Standard library only: `.ci/run` builds them all side by side before the tests, while the dev
install runs (`python3.11 tests/e2e/mlflow_venvs.py`); the tests' fixture builds what is
missing the same way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# the clients a team may still run: the last 2.x lines teams pinned (2.16, the newest 2.22
# patch), the first 3.x and the newest 3.x pip offered when this was written
MLFLOW_VERSIONS = ("2.16.2", "2.22.5", "3.0.1", "3.18.0")
# what a team's client environment holds besides mlflow: ONNX models load through onnxruntime
CLIENT_EXTRAS = ("onnx", "onnxruntime")


def cache_dir() -> Path:
    root = os.environ.get("SHIPYARD_TEST_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "shipyard-tests"


def venv(version: str) -> Path:
    return cache_dir() / f"mlflow-{version}-onnx"


def build(version: str) -> str | None:
    """Make the venv if missing (whole or not at all); returns why pip could not, or None."""
    started = time.perf_counter()
    target = venv(version)
    if (target / "bin" / "python").exists():
        return None
    building = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(building)], check=True)
    pip = subprocess.run(
        [
            str(building / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            f"mlflow=={version}",
            *CLIENT_EXTRAS,
        ],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        return " | ".join(pip.stderr.strip().splitlines()[-3:])
    try:
        building.rename(target)  # a half-made venv is never reused
    except OSError:  # another process made it meanwhile
        shutil.rmtree(building, ignore_errors=True)
    print(f"mlflow {version} venv: {time.perf_counter() - started:.0f} s", flush=True)
    return None


def main() -> int:
    with ThreadPoolExecutor(max_workers=len(MLFLOW_VERSIONS)) as pool:
        failures = dict(zip(MLFLOW_VERSIONS, pool.map(build, MLFLOW_VERSIONS), strict=True))
    for version, why in failures.items():
        if why:
            print(f"mlflow {version}: pip failed: {why}", file=sys.stderr)
    return 0  # the tests build (or skip with pip's reason) what is still missing


if __name__ == "__main__":
    sys.exit(main())
