"""A bounded soak of `shipyard server` on loopback: measure its capacity for mixed traffic,
then hold ~80 % of it for N minutes (default 10) and report minute by minute.

    python benchmarks/soak.py                 # 10 minutes, after a 20 s capacity probe
    python benchmarks/soak.py --minutes 2 --json

Traffic (open loop, at a fixed rate, from this process): 70 % one-row predictions, 10 %
feedback for ids the server issued, 20 % control-plane reads (`/api/models/…`,
`/api/endpoints/…`); every minute the endpoint's alias moves to the other version (the server
reloads the model under load). The server runs in its own process on a free loopback port,
on a fresh SHIPYARD_HOME (SQLite). Pass/fail: no errors, p99 of the last minute within 1.5x
of the first, server RSS growth under 10 % from the end of the first minute to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prepare(home: Path) -> list[dict[str, Any]]:
    """Two versions of a breast-cancer model behind the alias `champion`, an endpoint on it."""
    os.environ["SHIPYARD_HOME"] = str(home)
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import shipyard as sy
    from shipyard.registry import Registry
    from shipyard.rollout.deployments import Deployments
    from shipyard.stores import open_stores

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    for model in (
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0),
    ):
        with sy.start_run(experiment="soak") as run:
            run.log_model(model.fit(X, y), name="soak", input_example=X[:5])
    Registry.wait_for_conversions(timeout=120)
    sy.set_alias("soak", "champion", 1, reason="soak start")
    Deployments(open_stores()).create("soak", "models:/soak@champion")
    return X.to_dict(orient="records")  # type: ignore[no-any-return]


class Load:
    def __init__(self, url: str, rows: list[dict[str, Any]]) -> None:
        self.url = url
        self.rows = rows
        self.ids: list[str] = []
        self.samples: list[tuple[float, str, int, float]] = []  # (t, kind, status, seconds)

    async def one(self, client: httpx.AsyncClient, kind: str) -> None:
        start = time.perf_counter()
        try:
            if kind == "predict":
                r = await client.post(
                    f"{self.url}/endpoints/soak/predict",
                    json={"instances": [random.choice(self.rows)]},
                )
                if r.status_code == 200:
                    self.ids.append(r.json()["request_id"])
                    del self.ids[:-1000]
            elif kind == "feedback" and self.ids:
                r = await client.post(
                    f"{self.url}/endpoints/soak/feedback",
                    json={"request_id": random.choice(self.ids), "label": random.randint(0, 1)},
                )
            else:
                path = random.choice(["/api/models/soak", "/api/endpoints/soak"])
                r = await client.get(self.url + path)
            status = r.status_code
        except httpx.HTTPError:
            status = 599
        self.samples.append((time.monotonic(), kind, status, time.perf_counter() - start))

    async def run(self, rate: float, seconds: float, on_minute: Any = None) -> None:
        kinds = ["predict"] * 7 + ["feedback"] + ["read"] * 2
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            start = time.monotonic()
            tasks: set[asyncio.Task[None]] = set()
            sent, minute = 0, 0
            while (now := time.monotonic()) - start < seconds:
                due = int((now - start) * rate)
                while sent < due:
                    task = asyncio.create_task(self.one(client, random.choice(kinds)))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    sent += 1
                if on_minute is not None and int((now - start) // 60) > minute:
                    minute = int((now - start) // 60)
                    await on_minute(client, minute)
                await asyncio.sleep(0.002)
            await asyncio.gather(*tasks)


def capacity(url: str, rows: list[dict[str, Any]], seconds: float) -> float:
    """Completed mixed requests per second with 32 requests always in flight."""
    load = Load(url, rows)
    kinds = ["predict"] * 7 + ["feedback"] + ["read"] * 2

    async def worker(client: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            await load.one(client, random.choice(kinds))

    async def main() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            until = time.monotonic() + seconds
            await asyncio.gather(*(worker(client, until) for _ in range(32)))

    asyncio.run(main())
    return len(load.samples) / seconds


def report(load: Load, rss: list[float], t0: float) -> dict[str, Any]:
    minutes: list[dict[str, Any]] = []
    for m in range(int(max(s[0] for s in load.samples) - t0) // 60 + 1):
        part = [s for s in load.samples if m * 60 <= s[0] - t0 < (m + 1) * 60]
        if not part:
            continue
        lat = np.array([s[3] for s in part]) * 1000
        minutes.append(
            {
                "minute": m + 1,
                "requests": len(part),
                "errors": sum(1 for s in part if s[2] >= 500 or s[2] == 599),
                "non_2xx": sum(1 for s in part if not 200 <= s[2] < 300),
                "p50_ms": round(float(np.percentile(lat, 50)), 2),
                "p99_ms": round(float(np.percentile(lat, 99)), 2),
                "rss_mb": round(rss[m], 1) if m < len(rss) else None,
            }
        )
    first, last = minutes[0], minutes[-1]
    rss_growth = (rss[-1] - rss[0]) / rss[0] if len(rss) > 1 else 0.0
    return {
        "minutes": minutes,
        "errors": sum(m["non_2xx"] for m in minutes),
        "p99_ratio_last_vs_first": round(last["p99_ms"] / first["p99_ms"], 2),
        "rss_growth": round(rss_growth, 3),
        "pass": sum(m["non_2xx"] for m in minutes) == 0
        and last["p99_ms"] <= 1.5 * first["p99_ms"]
        and rss_growth < 0.10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--capacity-seconds", type=float, default=20.0)
    parser.add_argument("--share", type=float, default=0.8, help="of the measured capacity")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="shipyard-soak-"))
    rows = prepare(home)
    port = _free_port()
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_MONITOR_INTERVAL_SECONDS": "30"}
    server = subprocess.Popen(
        [sys.executable, "-m", "shipyard.cli.main", "server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(home / "server.log", "w"),  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        cap = capacity(url, rows, args.capacity_seconds)
        rate = cap * args.share
        print(f"capacity {cap:.0f} req/s; soaking at {rate:.0f} req/s", file=sys.stderr)
        load, rss = Load(url, rows), [_rss_mb(server.pid)]
        t0 = time.monotonic()

        async def on_minute(client: httpx.AsyncClient, minute: int) -> None:
            rss.append(_rss_mb(server.pid))
            version = 1 + minute % 2
            r = await client.put(
                f"{url}/api/models/soak/aliases/champion",
                json={"version": version, "reason": f"soak minute {minute}"},
            )
            print(f"minute {minute}: alias -> {version} ({r.status_code})", file=sys.stderr)

        asyncio.run(load.run(rate, args.minutes * 60, on_minute))
        rss.append(_rss_mb(server.pid))
        out = {
            "capacity_rps": round(cap, 1),
            "rate_rps": round(rate, 1),
            "load_average": Path("/proc/loadavg").read_text().split()[:3],
            **report(load, rss[1:], t0),
        }
    finally:
        server.terminate()
        server.wait(30)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"capacity {out['capacity_rps']} req/s, soak at {out['rate_rps']} req/s")
    print("minute  requests  non-2xx  p50 ms  p99 ms  rss MB")
    for m in out["minutes"]:
        print(
            f"{m['minute']:>6}  {m['requests']:>8}  {m['non_2xx']:>7}  {m['p50_ms']:>6}  "
            f"{m['p99_ms']:>6}  {m['rss_mb']}"
        )
    print(
        f"p99 last/first {out['p99_ratio_last_vs_first']}, RSS growth "
        f"{out['rss_growth']:.1%}, load {' '.join(out['load_average'])}: "
        + ("PASS" if out["pass"] else "FAIL")
    )


if __name__ == "__main__":
    main()
