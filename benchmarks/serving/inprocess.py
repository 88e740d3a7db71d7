"""Per-request cost of shipyard's data plane against the hand-written FastAPI + onnxruntime
endpoint, without the network: both ASGI apps are called directly, one request at a time, in
this process (the repository's `.venv`, which has every package both apps need).

    .venv/bin/python benchmarks/serving/inprocess.py                 # µs per request, both apps
    .venv/bin/python benchmarks/serving/inprocess.py --profile 32    # + cProfile of shipyard

What it shows is the serving layer's own overhead (routing, parsing, validation, logging,
metrics, the response), which the HTTP benchmark (`run.py`) measures through wrk and uvicorn.
A diagnostic, not a claim: the claim is `run.py`'s ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import runpy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


def scope_for(path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


async def call(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    message = {"type": "http.request", "body": body, "more_body": False}
    status = 0
    out: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(event: dict[str, Any]) -> None:
        nonlocal status
        if event["type"] == "http.response.start":
            status = event["status"]
        else:
            out.append(event.get("body", b""))

    await app(scope_for(path, body), receive, send)
    return status, b"".join(out)


async def per_request_us(
    apps: list[tuple[Any, str]], body: bytes, n: int, runs: int = 7
) -> list[tuple[float, float]]:
    """(best run, mean of runs) in µs per request for each (app, path), the apps' runs
    interleaved so machine noise falls on all alike. The mean includes the work a server does
    off the request path but in its process (the prediction log's flushes)."""
    for app, path in apps:
        for _ in range(200):  # warm-up
            status, raw = await call(app, path, body)
            assert status == 200, raw[:300]
    times: list[list[float]] = [[] for _ in apps]
    for _ in range(runs):
        for i, (app, path) in enumerate(apps):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                await call(app, path, body)
            times[i].append((time.perf_counter_ns() - t0) / n / 1000)
    return [(min(t), sum(t) / len(t)) for t in times]


def build(work: Path, model_name: str) -> tuple[Any, Any, dict[int, bytes]]:
    """The shipyard app (model registered as run.py does), the baseline app, the bodies."""
    import numpy as np
    from models import load_data, train
    from skl2onnx import to_onnx

    os.environ["SHIPYARD_HOME"] = str(work / "home")
    import shipyard
    from shipyard.config import get_settings
    from shipyard.serving import app as serving_app
    from shipyard.serving.app import create_serving_app

    X, y = load_data()
    model = train(model_name, X, y)
    with shipyard.start_run(experiment="inprocess") as run:
        mv = run.log_model(model, name=model_name, input_example=X[:32], onnx=True)
    shipyard.set_alias(model_name, "champion", mv.version)
    onx = to_onnx(
        model, X.to_numpy()[:1].astype(np.float32), options={id(model): {"zipmap": False}}
    )
    (work / "model.onnx").write_bytes(onx.SerializeToString())
    (work / "features.json").write_text(json.dumps(list(X.columns)))

    ours = create_serving_app(get_settings(), f"models:/{model_name}@champion")
    if hasattr(ours, "lifecycle"):  # the app's typed parts (older revisions: `state`)
        ours.lifecycle.preload()
        predlog = ours.dataplane.predlog
    else:
        ours.state.preload()
        predlog = ours.state.predlog
    if predlog is not None:
        predlog.start()

    argv = sys.argv
    sys.argv = ["fastapi_onnx.py", str(work / "model.onnx"), str(work / "features.json"), "0"]
    try:
        peer = runpy.run_path(str(BENCH_DIR / "fastapi_onnx.py"), run_name="baseline")["app"]
    finally:
        sys.argv = argv
    bodies = {
        n: json.dumps({"instances": X.iloc[:n].to_dict(orient="records")}).encode() for n in (1, 32)
    }
    # what uvicorn runs for `shipyard serve` (older revisions, measured for comparison, had
    # no outer entry: the app itself)
    entry = getattr(serving_app, "asgi_entry", lambda app: app)
    return entry(ours), peer, bodies


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="logreg", choices=("logreg", "rf"))
    p.add_argument("-n", type=int, default=2000, help="requests per timed run")
    p.add_argument("--profile", type=int, choices=(1, 32), help="cProfile shipyard, N-row body")
    p.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative)")
    args = p.parse_args()
    sys.path.insert(0, str(BENCH_DIR))
    with tempfile.TemporaryDirectory(prefix="shipyard-inprocess-") as tmp:
        ours, peer, bodies = build(Path(tmp), args.model)
        path = f"/endpoints/{args.model}/predict"

        async def measure() -> None:
            print(f"{args.model}: µs per request, 7 runs x {args.n}, in-process ASGI")
            print(f"{'rows':>4}  {'':>5}  {'shipyard':>9}  {'FastAPI+ORT':>11}  {'ratio':>6}")
            for n, body in bodies.items():
                ours_us, peer_us = await per_request_us(
                    [(ours, path), (peer, "/predict")], body, args.n
                )
                for i, what in enumerate(("best", "mean")):
                    a, b = ours_us[i], peer_us[i]
                    print(f"{n:>4}  {what:>5}  {a:>9.1f}  {b:>11.1f}  {b / a:>5.2f}x")
            if args.profile:
                import cProfile
                import pstats

                body = bodies[args.profile]
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(args.n):
                    await call(ours, path, body)
                prof.disable()
                stats = pstats.Stats(prof).sort_stats(args.sort)
                stats.print_stats(30)

        asyncio.run(measure())
        app = getattr(ours, "app", ours)  # the outer fast path wraps the app
        predlog = app.dataplane.predlog if hasattr(app, "dataplane") else app.state.predlog
        if predlog is not None:
            predlog.close()


if __name__ == "__main__":
    main()
