"""A bounded soak of `shipyard server` on loopback: measure its capacity for mixed traffic,
then hold ~80 % of it for N minutes (default 10) and report minute by minute.

    python benchmarks/soak.py                 # 10 minutes, after a 20 s capacity probe
    python benchmarks/soak.py --minutes 2 --json

Traffic (paced to a fixed rate, from --procs load processes on keep-alive connections;
a late request goes at once, so a slow server shows as latency): 70 % one-row predictions, 10 %
feedback for ids the server issued, 20 % control-plane reads (`/api/models/…`,
`/api/endpoints/…`); every minute the endpoint's alias moves to the other version (the server
reloads the model under load). The server runs in its own process on a free loopback port,
on a fresh SHIPYARD_HOME (SQLite). Pass/fail: no errors, p99 of the last minute within 1.5x
of the first, server RSS growth under 10 % from the end of the first minute to the end.
"""

from __future__ import annotations

import argparse
import http.client
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


KINDS = ["predict"] * 7 + ["feedback"] + ["read"] * 2


class Client:
    """One keep-alive connection (http.client: the load generator must cost far less CPU per
    request than the server, or it measures itself), mixed traffic, samples kept locally."""

    def __init__(self, port: int, rows: list[dict[str, Any]], seed: int) -> None:
        self.port, self.rows, self.rng = port, rows, random.Random(seed)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.ids: list[str] = []
        self.samples: list[tuple[float, str, int, float]] = []  # (t, kind, status, seconds)

    def _call(self, method: str, path: str, doc: Any = None) -> tuple[int, bytes]:
        body = json.dumps(doc).encode() if doc is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self.conn.request(method, path, body=body, headers=headers)
            r = self.conn.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            return 599, b""

    def one(self) -> None:
        kind = self.rng.choice(KINDS)
        start = time.perf_counter()
        if kind == "predict":
            row = self.rng.choice(self.rows)
            status, body = self._call("POST", "/endpoints/soak/predict", {"instances": [row]})
            if status == 200:
                self.ids.append(json.loads(body)["request_id"])
                del self.ids[:-1000]
        elif kind == "feedback" and self.ids:
            doc = {"request_id": self.rng.choice(self.ids), "label": self.rng.randint(0, 1)}
            status, _ = self._call("POST", "/endpoints/soak/feedback", doc)
        else:
            path = self.rng.choice(["/api/models/soak", "/api/endpoints/soak"])
            status, _ = self._call("GET", path)
        self.samples.append((time.time(), kind, status, time.perf_counter() - start))


def _drive(port: int, rows: list[dict[str, Any]], seed: int, rate: float, until: float) -> list:
    """One load process: `rate` requests a second (0: as fast as answers come) until `until`
    (wall clock). A late request is sent at once, so a slow server shows as latency."""
    client = Client(port, rows, seed)
    due = time.time()
    while (now := time.time()) < until:
        if rate and now < due:
            time.sleep(due - now)
        client.one()
        due += 1 / rate if rate else 0
    return client.samples


def drive(port: int, rows: list[dict[str, Any]], rate: float, seconds: float, procs: int) -> list:
    """Samples of `procs` load processes sharing `rate` (0: closed loop, full speed)."""
    from concurrent.futures import ProcessPoolExecutor

    until = time.time() + seconds
    with ProcessPoolExecutor(procs) as pool:
        futures = [
            pool.submit(_drive, port, rows, seed, rate / procs, until) for seed in range(procs)
        ]
        return [s for f in futures for s in f.result()]


def capacity(port: int, rows: list[dict[str, Any]], seconds: float, procs: int) -> float:
    """Completed mixed requests per second with every load process sending back to back."""
    return len(drive(port, rows, 0, seconds, procs)) / seconds


def report(samples: list, rss: list[float], t0: float) -> dict[str, Any]:
    minutes: list[dict[str, Any]] = []
    for m in range(int(max(s[0] for s in samples) - t0) // 60 + 1):
        part = [s for s in samples if m * 60 <= s[0] - t0 < (m + 1) * 60]
        if not part:
            continue
        lat = np.array([s[3] for s in part]) * 1000
        minutes.append(
            {
                "minute": m + 1,
                "requests": len(part),
                "rps": round(len(part) / (min(60.0, part[-1][0] - t0 - m * 60) or 1.0), 1),
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


def soak(
    url: str, port: int, rows: list[dict[str, Any]], rate: float, args: Any, pid: int
) -> tuple[list, list[float]]:
    """Hold `rate` for the whole soak; every minute read the server's RSS and move the alias
    to the other version (the server reloads the model under load)."""
    from concurrent.futures import ProcessPoolExecutor

    seconds = args.minutes * 60
    rss = [_rss_mb(pid)]
    until = time.time() + seconds
    with ProcessPoolExecutor(args.procs) as pool:
        futures = [
            pool.submit(_drive, port, rows, seed, rate / args.procs, until)
            for seed in range(100, 100 + args.procs)
        ]
        start = time.time()
        for minute in range(1, int(seconds // 60) + 1):
            time.sleep(max(0.0, start + 60 * minute - time.time()))
            rss.append(_rss_mb(pid))
            if minute < seconds / 60:
                version = 1 + minute % 2
                r = httpx.put(
                    f"{url}/api/models/soak/aliases/champion",
                    json={"version": version, "reason": f"soak minute {minute}"},
                    timeout=30,
                )
                print(f"minute {minute}: alias -> {version} ({r.status_code})", file=sys.stderr)
        samples = [s for f in futures for s in f.result()]
    rss.append(_rss_mb(pid))
    return sorted(samples), rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--capacity-seconds", type=float, default=20.0)
    parser.add_argument("--share", type=float, default=0.8, help="of the measured capacity")
    parser.add_argument("--procs", type=int, default=4, help="load generator processes")
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
        cap = capacity(port, rows, args.capacity_seconds, args.procs)
        rate = cap * args.share
        print(f"capacity {cap:.0f} req/s; soaking at {rate:.0f} req/s", file=sys.stderr)
        samples, rss = soak(url, port, rows, rate, args, server.pid)
        out = {
            "capacity_rps": round(cap, 1),
            "rate_rps": round(rate, 1),
            "load_average": Path("/proc/loadavg").read_text().split()[:3],
            **report(samples, rss[1:], samples[0][0] if samples else time.time()),
        }
    finally:
        server.terminate()
        server.wait(30)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"capacity {out['capacity_rps']} req/s, soak at {out['rate_rps']} req/s")
    print("minute  requests   req/s  non-2xx  p50 ms  p99 ms  rss MB")
    for m in out["minutes"]:
        print(
            f"{m['minute']:>6}  {m['requests']:>8}  {m['rps']:>6}  {m['non_2xx']:>7}  "
            f"{m['p50_ms']:>6}  {m['p99_ms']:>6}  {m['rss_mb']}"
        )
    print(
        f"p99 last/first {out['p99_ratio_last_vs_first']}, RSS growth "
        f"{out['rss_growth']:.1%}, load {' '.join(out['load_average'])}: "
        + ("PASS" if out["pass"] else "FAIL")
    )


if __name__ == "__main__":
    main()
