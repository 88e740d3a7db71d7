"""Per-request metrics with several workers: tallied in the process, published to
prometheus_client's shared files (its multiprocess mode, switched on by an environment variable
read when prometheus_client is imported, hence a fresh interpreter per case)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_SCRIPT = r"""
import asyncio, json, sys
from shipyard.serving import metrics as m

async def main():
    metrics = m.ServingMetrics()
    assert metrics.shared
    m.PUBLISH_SECONDS = 0.1
    calls = []
    publish = metrics.publish
    def counted():
        calls.append(asyncio.get_running_loop().time())
        return publish()
    metrics.publish = counted
    live = metrics.in_flight_for("churn")
    for seconds in (0.0004, 0.003, 0.003, 2.0):
        live.inc()
        live.dec()
        metrics.observe("churn", "churn", "3", 200, seconds, 2)
    metrics.observe("churn", "churn", "3", 422, 0.001, 0)
    live.inc()  # one request stays in flight
    for _ in range(10):  # scrapes, as /metrics makes them, while it is in flight
        metrics.render()
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)  # ~5 periods: one pending timer at a time, however many scrapes
    start = asyncio.get_running_loop().time()
    await asyncio.sleep(0.55)
    timers = sum(t >= start for t in calls)
    live.dec()
    await asyncio.sleep(0.35)
    text = metrics.render()[0].decode()
    print(json.dumps({"timers": timers, "text": text}))

asyncio.run(main())
"""


def _value(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def test_several_workers_publish_their_tallies_on_one_timer(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert 4 <= out["timers"] <= 7, out["timers"]  # ~5 in 0.55 s at 0.1 s, not 10 chains' worth
    text = out["text"]
    ok = 'shipyard_requests_total{endpoint="churn",model="churn",status="200",version="3"}'
    assert _value(text, ok) == 4
    assert _value(text, "shipyard_request_errors_total{") == 1
    assert _value(text, "shipyard_predicted_rows_total{") == 8
    assert _value(text, "shipyard_request_latency_seconds_count{") == 5
    assert _value(text, 'shipyard_request_latency_seconds_bucket{endpoint="churn",le="0.0005"') == 1
    assert _value(text, 'shipyard_request_latency_seconds_bucket{endpoint="churn",le="0.005"') == 4
    assert abs(_value(text, "shipyard_request_latency_seconds_sum{") - 2.0074) < 1e-9
    assert _value(text, "shipyard_requests_in_flight{") == 0
