"""What the run page reads, over real HTTP on SQLite and PostgreSQL: a metric downsampled by the
database to min/max buckets (a one-step spike kept), a step range, run artifacts answered so
that nothing in them runs under the server's origin, a climbing path refused, and the model
versions a run registered."""

from __future__ import annotations

import http.client
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from shipyard.stores.records import MetricPoint

STEPS = 10_000
SPIKE, DIP = (7_777, 50.0), (3_333, -50.0)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5c3e1f90000000049454e44ae426082"
)
HOSTILE_HTML = (
    "<html><body><h1>report</h1><script>window.__pwned=1</script>"
    '<img src="x" onerror="window.__pwned=1"></body></html>'
)
HOSTILE_YAML = "model: rf\nhook: !!js/function 'function () { window.__pwned = 1 }'\n"


def loss(step: int) -> float:
    return 1.0 / (1 + step / 100)


def log_long_run(experiment: str = "long") -> str:
    """A run of STEPS steps of `loss` with a spike and a dip, and `acc` with NaN at 500-599;
    written in one batch (the series, not the logging, is under test)."""
    with sy.start_run(experiment=experiment, name="long") as run:
        points = [MetricPoint("loss", loss(s), s, 1_000 + s) for s in range(STEPS)]
        points[SPIKE[0]] = MetricPoint("loss", SPIKE[1], SPIKE[0], 1_000 + SPIKE[0])
        points[DIP[0]] = MetricPoint("loss", DIP[1], DIP[0], 1_000 + DIP[0])
        points += [
            MetricPoint("acc", math.nan if 500 <= s < 600 else s / 1000, s, 1_000 + s)
            for s in range(1000)
        ]
        run.stores.metadata.runs.log_batch(run.id, metrics=points)
        return run.id


def log_artifacts(folder: Path) -> str:
    files = {
        "report.html": HOSTILE_HTML.encode(),
        "conf/params.yaml": HOSTILE_YAML.encode(),
        "data.csv": b'a,b\n1,"x, y"\n2,z\n',
        "plots/loss.png": PNG,
        "plots/icon.svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        "model.bin": bytes(range(256)) * 4,
        "big.log": b"line\n" * 300_000,  # 1.5 MB: a preview is its first MiB
    }
    with sy.start_run(experiment="arts", name="with-artifacts") as run:
        for name, data in files.items():
            src = folder / name.replace("/", "_")
            src.write_bytes(data)
            run.log_artifact(src, name=name)
        return run.id


@pytest.fixture
def server(settings: Settings) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_server_app(settings, refresh_seconds=5.0)) as srv:
        srv.wait_ready()
        yield srv


def series(server: BackgroundServer, run_id: str, key: str, **params: Any) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/api/runs/{run_id}/metrics/{key}", params=params)
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def test_a_long_metric_is_downsampled_by_the_database_and_keeps_its_spike(
    server: BackgroundServer,
) -> None:
    run_id = log_long_run()
    full = series(server, run_id, "loss")  # no max_points: every point, as before
    assert len(full["points"]) == STEPS and full["downsampled"] is False
    started = time.perf_counter()
    doc = series(server, run_id, "loss", max_points=500)
    elapsed = time.perf_counter() - started
    points = {(p["step"], p["value"]) for p in doc["points"]}
    assert doc["downsampled"] is True and len(doc["points"]) <= 500
    assert (doc["total"], doc["min_step"], doc["max_step"]) == (STEPS, 0, STEPS - 1)
    assert SPIKE in points and DIP in points
    assert (0, loss(0)) in points and (STEPS - 1, loss(STEPS - 1)) in points  # both ends
    steps = [p["step"] for p in doc["points"]]
    assert steps == sorted(steps)
    assert elapsed < 2.0, elapsed  # a generous bound: one indexed range, ranked in SQL

    zoom = series(server, run_id, "loss", max_points=500, min_step=7_000, max_step=8_000)
    assert zoom["downsampled"] is True and len(zoom["points"]) <= 500
    assert zoom["total"] == 1_001
    assert all(7_000 <= p["step"] <= 8_000 for p in zoom["points"])
    assert SPIKE in {(p["step"], p["value"]) for p in zoom["points"]}

    close = series(server, run_id, "loss", max_points=500, min_step=7_770, max_step=7_780)
    assert close["downsampled"] is False
    assert [p["step"] for p in close["points"]] == list(range(7_770, 7_781))


def test_a_bucket_of_nan_keeps_one_nan_point(server: BackgroundServer) -> None:
    run_id = log_long_run()
    doc = series(server, run_id, "acc", max_points=20)  # 10 buckets of 100 steps
    assert doc["downsampled"] is True and len(doc["points"]) == 19
    nan = [p for p in doc["points"] if p["value"] is None]  # NaN is null in JSON
    assert [p["step"] for p in nan] == [500]


def test_bad_series_arguments_are_400s_naming_them(server: BackgroundServer) -> None:
    run_id = log_long_run()
    url = f"{server.url}/api/runs/{run_id}/metrics/loss"
    small = httpx.get(url, params={"max_points": 1})
    assert small.status_code in (400, 422) and small.json()["field"] == "max_points"
    backwards = httpx.get(url, params={"min_step": 10, "max_step": 5})
    assert backwards.status_code == 400 and backwards.json()["field"] == "min_step"
    empty = series(server, run_id, "nothing", max_points=500)
    assert empty["points"] == [] and empty["total"] == 0


def test_a_metric_key_with_a_slash_is_asked_for_encoded(server: BackgroundServer) -> None:
    with sy.start_run(experiment="slash") as run:
        for step in range(3):
            run.log_metric("train/loss", 1 / (step + 1), step=step)
    doc = series(server, run.id, "train%2Floss", max_points=500)
    assert doc["key"] == "train/loss" and [p["step"] for p in doc["points"]] == [0, 1, 2]


def raw_get(server: BackgroundServer, target: str) -> tuple[int, dict[str, Any]]:
    """GET `target` exactly as written (httpx would resolve `..` before sending)."""
    import json

    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", target)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")
    finally:
        conn.close()


def test_artifact_paths_that_climb_are_400s_naming_path(
    server: BackgroundServer, tmp_path: Path
) -> None:
    run_id = log_artifacts(tmp_path)
    base = f"/api/runs/{run_id}/artifacts/"
    for bad in (
        "../x",
        "%2e%2e/x",
        "%2E%2E%2Fx",
        "conf/../../x",
        "..",
        "a/./b",
        "..%5Cx",
        "x%00.txt",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "C:%5Cwindows",
    ):
        status, body = raw_get(server, base + bad)
        assert (status, body.get("field")) == (400, "path"), (bad, status, body)
    status, body = raw_get(server, base + "missing.txt")
    assert status == 404 and "missing.txt" in body["error"]


def test_artifacts_are_answered_so_nothing_in_them_runs(
    server: BackgroundServer, tmp_path: Path
) -> None:
    run_id = log_artifacts(tmp_path)
    url = f"{server.url}/api/runs/{run_id}/artifacts/"
    cases = {
        # path: (type, disposition with ?inline=1)
        "report.html": ("text/html; charset=utf-8", "inline"),
        "plots/icon.svg": ("image/svg+xml", "inline"),
        "conf/params.yaml": ("text/plain; charset=utf-8", "inline"),
        "data.csv": ("text/plain; charset=utf-8", "inline"),
        "plots/loss.png": ("image/png", "inline"),
        "model.bin": ("application/octet-stream", "attachment"),
    }
    for path, (kind, disposition) in cases.items():
        for inline in (False, True):
            answer = httpx.get(url + path, params={"inline": 1} if inline else {})
            assert answer.status_code == 200, (path, answer.text)
            headers = answer.headers
            assert headers["content-type"] == kind, path
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["content-security-policy"].startswith("sandbox;")
            assert "script-src" not in headers["content-security-policy"]
            expected = disposition if inline else "attachment"
            assert headers["content-disposition"].split(";")[0] == expected, path
    yaml = httpx.get(url + "conf/params.yaml", params={"inline": 1})
    assert yaml.text == HOSTILE_YAML
    assert httpx.get(url + "plots/loss.png").content == PNG

    preview = httpx.get(url + "big.log", params={"preview": 1, "inline": 1})
    assert len(preview.content) == 1 << 20
    assert preview.headers["x-artifact-truncated"] == "1"
    assert preview.headers["x-artifact-size"] == str(1_500_000)
    whole = httpx.get(url + "big.log")
    assert len(whole.content) == 1_500_000


def register_version(run: Any, name: str) -> None:
    """A model version whose source run is `run`, as the registry records one (what the run
    page reads; saving a real model would only add seconds)."""
    digest, _ = run.stores.artifacts.put_bytes(b"a model")
    run.stores.metadata.models.create_version(
        name,
        actor="tester",
        flavor="sklearn",
        artifact_digest=digest,
        signature=None,
        run_id=run.id,
    )


def test_the_models_a_run_registered(server: BackgroundServer) -> None:
    with sy.start_run(experiment="m") as run:
        register_version(run, "churn")
    with sy.start_run(experiment="m") as other:
        pass
    found = httpx.get(f"{server.url}/api/runs/{run.id[:10]}/models").json()
    assert found["run_id"] == run.id
    assert [(v["name"], v["version"]) for v in found["versions"]] == [("churn", 1)]
    none = httpx.get(f"{server.url}/api/runs/{other.id}/models").json()
    assert none["versions"] == []
