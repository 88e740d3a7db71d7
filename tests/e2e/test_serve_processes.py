"""`shipyard serve` as processes: several workers on one port without Nagle delays, and a
SIGTERM that turns readiness off, keeps answering while draining, then exits cleanly."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import SHIPYARD, free_port, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("procs")
    code = (
        "import shipyard as sy\n"
        "from sklearn.datasets import load_breast_cancer\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X, y = load_breast_cancer(return_X_y=True, as_frame=True)\n"
        "m = LogisticRegression(max_iter=5000).fit(X, y)\n"
        "with sy.start_run(experiment='p') as run:\n"
        "    mv = run.log_model(m, name='bc', input_example=X[:5], onnx=True)\n"
        "sy.set_alias('bc', 'champion', mv.version)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "SHIPYARD_HOME": str(home)}
    )
    return home


def serve(home: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            *SHIPYARD,
            "serve",
            "models:/bc@champion",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
        ],
        env={**os.environ, "SHIPYARD_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
    except AssertionError:
        proc.kill()
        raise
    return proc, url


@pytest.fixture
def body(home: Path) -> dict[str, object]:
    return {"instances": [{f: 1.0 for f in FEATURES}]}


FEATURES = [
    "mean radius",
    "mean texture",
    "mean perimeter",
    "mean area",
    "mean smoothness",
    "mean compactness",
    "mean concavity",
    "mean concave points",
    "mean symmetry",
    "mean fractal dimension",
    "radius error",
    "texture error",
    "perimeter error",
    "area error",
    "smoothness error",
    "compactness error",
    "concavity error",
    "concave points error",
    "symmetry error",
    "fractal dimension error",
    "worst radius",
    "worst texture",
    "worst perimeter",
    "worst area",
    "worst smoothness",
    "worst compactness",
    "worst concavity",
    "worst concave points",
    "worst symmetry",
    "worst fractal dimension",
]


def median_latency(url: str, body: dict[str, object], n: int = 300) -> float:
    with httpx.Client(base_url=url) as client:  # one keep-alive connection
        for _ in range(20):
            client.post("/endpoints/bc/predict", json=body)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            r = client.post("/endpoints/bc/predict", json=body)
            times.append(time.perf_counter() - start)
            assert r.status_code == 200
    return statistics.median(times)


@pytest.fixture
def stop() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_workers_keep_latency_low(
    home: Path, body: dict[str, object], stop: list[subprocess.Popen[str]]
) -> None:
    one, url1 = serve(home)
    stop.append(one)
    single = median_latency(url1, body)
    one.send_signal(signal.SIGTERM)
    assert one.wait(timeout=30) == 0
    two, url2 = serve(home, "--workers", "2")
    stop.append(two)
    multi = median_latency(url2, body)
    # every scrape, whichever worker answers it, counts the requests of both workers: each
    # publishes what it counted within PUBLISH_SECONDS of a request
    from shipyard.serving.metrics import PUBLISH_SECONDS

    time.sleep(PUBLISH_SECONDS + 0.5)

    def total(text: str, prefix: str, match: str = "") -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(prefix) and match in line
        )

    for _ in range(4):
        text = httpx.get(f"{url2}/metrics").text
        assert total(text, "shipyard_requests_total{", 'status="200"') == 320, text[:2000]
        assert total(text, "shipyard_request_latency_seconds_count{") == 320, text[:2000]
        assert total(text, "shipyard_request_latency_seconds_bucket{", 'le="+Inf"') == 320
        assert total(text, "shipyard_predicted_rows_total{") == 320 * len(body["instances"])  # type: ignore[arg-type]
        assert total(text, "shipyard_requests_in_flight{") == 0
    # Nagle's algorithm with delayed ACKs would add ~40 ms per request; both stay in ms.
    assert multi < max(2 * single, 0.005), (single, multi)
    two.send_signal(signal.SIGTERM)
    assert two.wait(timeout=30) == 0


def test_sigterm_drains(
    home: Path, body: dict[str, object], stop: list[subprocess.Popen[str]]
) -> None:
    proc, url = serve(home, "--drain", "1.5")
    stop.append(proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    ready = httpx.get(f"{url}/health/ready")
    assert ready.status_code == 503 and ready.json()["draining"] is True
    assert httpx.post(f"{url}/endpoints/bc/predict", json=body).status_code == 200
    assert proc.wait(timeout=30) == 0
