"""A 1 GiB artifact through MLflow's artifact proxy on `shipyard server` (a real process):
uploaded as a stream and downloaded back byte for byte, with the server's memory staying under
200 MB above its idle size the whole time (it is written and read in chunks, never held)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZE = 1 << 30  # 1 GiB
CHUNK = 1 << 20
MEMORY_BUDGET = 200 * 1024 * 1024


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakMemory:
    """Samples a process's resident size every 50 ms while in the `with` block."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss(self.pid))
            time.sleep(0.05)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _content(digest: hashlib._Hash) -> Iterator[bytes]:
    """1 GiB that no compression or deduplication shortcuts: each MiB differs."""
    block = os.urandom(CHUNK)
    for i in range(SIZE // CHUNK):
        chunk = i.to_bytes(8, "little") + block[8:]
        digest.update(chunk)
        yield chunk


def test_a_1gib_artifact_streams_through_the_proxy(tmp_path: Path) -> None:
    home = tmp_path / "home"
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
        api = httpx.Client(base_url=url + "/api/2.0/mlflow/", timeout=60)
        exp = api.post("experiments/create", json={"name": "big"}).json()["experiment_id"]
        run = api.post("runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
        file_url = f"{url}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/data/big.bin"
        # warm: the proxy's routes and a small file, so idle includes what any request loads
        assert httpx.put(file_url.replace("big.bin", "small"), content=b"x").status_code == 200
        assert httpx.get(file_url.replace("big.bin", "small")).content == b"x"
        idle = _rss(server.pid)

        sent = hashlib.sha256()
        started = time.perf_counter()
        with PeakMemory(server.pid) as upload:
            r = httpx.put(file_url, content=_content(sent), timeout=600)
        up_seconds = time.perf_counter() - started
        assert r.status_code == 200, r.text

        got, size = hashlib.sha256(), 0
        started = time.perf_counter()
        with PeakMemory(server.pid) as download, httpx.stream("GET", file_url, timeout=600) as r:
            assert r.status_code == 200
            for chunk in r.iter_bytes(CHUNK):
                got.update(chunk)
                size += len(chunk)
        down_seconds = time.perf_counter() - started
        listing = httpx.get(
            f"{url}/api/2.0/mlflow-artifacts/artifacts",
            params={"path": f"{exp}/{run}/artifacts/data"},
        ).json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    mib = 1 << 20
    print(
        f"1 GiB: upload {up_seconds:.1f} s (peak +{(upload.peak - idle) / mib:.0f} MiB), "
        f"download {down_seconds:.1f} s (peak +{(download.peak - idle) / mib:.0f} MiB), "
        f"idle {idle / mib:.0f} MiB"
    )
    assert size == SIZE and got.hexdigest() == sent.hexdigest()
    assert {"path": "big.bin", "is_dir": False, "file_size": SIZE} in listing["files"]
    assert upload.peak - idle < MEMORY_BUDGET, (upload.peak - idle) / mib
    assert download.peak - idle < MEMORY_BUDGET, (download.peak - idle) / mib
