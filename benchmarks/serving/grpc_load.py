"""The serving benchmark's gRPC rows: shipyard's V2 gRPC port (`shipyard serve … --grpc-port`)
vs MLServer's gRPC for the same model, the same V2 `ModelInfer` messages, a bounded number of
requests per cell.

    python3.11 benchmarks/serving/grpc_load.py                    # logreg, 2000 requests a cell
    python3.11 benchmarks/serving/grpc_load.py --requests 500 --models logreg,rf --json

MLServer lives in its own virtualenv (`benchmarks/serving/.venv-mlserver`: `mlserver
mlserver-sklearn scikit-learn pandas`, created on first use), never in shipyard's
dependencies. The load comes from this process: a closed loop of C concurrent calls on one
grpc.aio channel (one HTTP/2 connection, as tritonclient's gRPC client uses), each sending its
next request when the previous answer arrives. See README.md ("gRPC rows").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from run import (
    BENCH_DIR,
    QUIET_ENV,
    free_port,
    loadavg,
    log,
    make_venv,
    register_and_export,
    shipyard_python,
    stop,
    tail,
    train_reference,
    venv_python,
    versions,
    with_venv_path,
)
from run import Server as _Server  # the process bookkeeping only (start/stop/logs)
from run import wait_ready as _wait_ready

MLSERVER_PACKAGES = ["mlserver", "mlserver-sklearn", "scikit-learn", "pandas"]


@dataclass
class Peer:
    label: str
    server: _Server
    grpc_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def start_peer(peer: Peer, work: Path) -> None:
    """Start the peer's process on its ports (the HTTP port is the one `run.wait_ready` polls)."""
    server = peer.server
    server.log_path = work / f"{server.key}.log"
    with open(server.log_path, "wb") as fh:
        server.proc = subprocess.Popen(
            server.argv, cwd=BENCH_DIR, env=server.env, stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def peers_for(model: str, work: Path) -> list[Peer]:
    python = Path(sys.executable)
    http, grpc_port = free_port(), free_port()
    shipyard = _Server(
        "shipyard-grpc",
        "shipyard gRPC (1 worker)",
        [str(python), "-m", "shipyard", "serve", f"models:/{model}@champion", "--port",
         str(http), "--grpc-port", str(grpc_port), "--log-level", "warning"],
        "",
        "/health/ready",
        "",
        with_venv_path(python, {"SHIPYARD_HOME": str(work / "shipyard")}),
        port=http,
    )  # fmt: skip
    ml_http, ml_grpc, ml_metrics = free_port(), free_port(), free_port()
    ml_python = venv_python("mlserver")
    setup = subprocess.run(
        [ml_python, "mlserver_setup.py", str(work), model, str(ml_http), str(ml_grpc),
         str(ml_metrics)],
        cwd=BENCH_DIR, capture_output=True, text=True, env={**os.environ, **QUIET_ENV},
    )  # fmt: skip
    if setup.returncode != 0:
        raise SystemExit(f"mlserver_setup.py failed:\n{setup.stderr[-3000:]}")
    root = setup.stdout.strip().splitlines()[-1]
    mlserver = _Server(
        "mlserver-grpc",
        "MLServer gRPC",
        [str(ml_python.parent / "mlserver"), "start", root],
        "",
        "/v2/health/ready",
        "",
        with_venv_path(ml_python, {}),
        port=ml_http,
    )
    return [Peer(shipyard.label, shipyard, grpc_port), Peer(mlserver.label, mlserver, ml_grpc)]


# -- the load ---------------------------------------------------------------------------------


def infer_request(model: str, rows: Any, raw: bool = False) -> Any:
    """One V2 ModelInferRequest: an [n, 30] FP64 tensor in the typed `fp64_contents`, or with
    `raw` as `raw_input_contents` (how tritonclient's gRPC client sends every tensor)."""
    from shipyard.serving.grpc_v2.proto import pb

    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="input", datatype="FP64", shape=list(rows.shape))
    if raw:
        request.raw_input_contents.append(rows.astype("<f8").tobytes())
    else:
        tensor.contents.fp64_contents.extend(rows.ravel().tolist())
    return request


def labels(response: Any) -> list[int]:
    """The first output's values, raw or typed."""
    import numpy as np

    from shipyard.serving.grpc_v2.convert import CONTENTS_FIELD

    out = response.outputs[0]
    if response.raw_output_contents:
        dtype = {"INT64": "<i8", "INT32": "<i4", "FP64": "<f8", "FP32": "<f4"}[out.datatype]
        values = np.frombuffer(response.raw_output_contents[0], dtype=dtype).tolist()
    else:
        values = list(getattr(out.contents, CONTENTS_FIELD[out.datatype]))
    return [round(float(v)) for v in values]


async def closed_loop(address: str, request: Any, concurrency: int, total: int) -> dict[str, Any]:
    """`total` calls, `concurrency` at a time on one channel; req/s of OK answers, p50/p99."""
    import grpc
    from tritonclient.grpc.service_pb2_grpc import GRPCInferenceServiceStub

    latencies: list[float] = []
    errors = 0
    left = total
    async with grpc.aio.insecure_channel(address) as channel:
        stub = GRPCInferenceServiceStub(channel)

        async def caller() -> None:
            nonlocal left, errors
            while left > 0:
                left -= 1
                began = time.perf_counter()
                try:
                    await stub.ModelInfer(request, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "requests": total,
        "errors": errors,
        "loadavg": loadavg(),
    }


async def check(peer: Peer, model: str, X: Any, expected: list[int]) -> None:
    """The reference labels for 1 and 32 rows, over gRPC."""
    import grpc
    from tritonclient.grpc.service_pb2_grpc import GRPCInferenceServiceStub

    async with grpc.aio.insecure_channel(peer.address) as channel:
        stub = GRPCInferenceServiceStub(channel)
        for n in (1, 32):
            answer = await stub.ModelInfer(infer_request(model, X[:n]), timeout=30)
            if labels(answer) != expected[:n]:
                raise RuntimeError(f"{peer.label}: {n}-row labels differ from the reference")


def bench_model(model: str, work: Path, trained: dict[str, Any], args: Any) -> dict[str, Any]:
    X = trained["X"].to_numpy(dtype="float64")
    peers = peers_for(model, work)
    cells: list[dict[str, Any]] = []
    try:
        for peer in peers:
            start_peer(peer, work)
        deadline = time.monotonic() + 180
        for peer in peers:
            _wait_ready(peer.server, deadline)
            asyncio.run(check(peer, model, X, trained["expected"][model]))
        log(f"[{model}] ready and correct: {', '.join(p.label for p in peers)}")
        for c in args.concurrency:
            for n in args.rows:
                request = infer_request(model, X[:n], args.raw)
                for peer in peers:  # warm-up, not recorded
                    asyncio.run(closed_loop(peer.address, request, c, min(200, args.requests)))
                rounds: dict[str, list[dict[str, Any]]] = {p.label: [] for p in peers}
                for r in range(args.rounds):  # rounds alternate the order of the servers
                    for peer in peers[r % 2 :] + peers[: r % 2]:
                        result = asyncio.run(closed_loop(peer.address, request, c, args.requests))
                        rounds[peer.label].append(result)
                cell = {"concurrency": c, "rows": n, "servers": {}}
                for label, results in rounds.items():  # the best round; errors of all rounds
                    best = max(results, key=lambda r: r["rps"])
                    errors = sum(r["errors"] for r in results)
                    cell["servers"][label] = {**best, "errors": errors, "rounds": results}
                cells.append(cell)
                line = "  ".join(f"{k} {v['rps']:.0f}/s" for k, v in cell["servers"].items())
                log(f"[{model}] c={c:<3} rows={n:<3} load {loadavg()}  {line}")
        for peer in peers:
            if peer.server.proc is not None and peer.server.proc.poll() is not None:
                logs = tail(peer.server.log_path)
                raise RuntimeError(f"{peer.label} exited during the run:\n{logs}")
    finally:
        for peer in peers:
            stop(peer.server)
    return {"cells": cells}


def render(report: dict[str, Any]) -> str:
    lines = [
        f"gRPC rows: {report['requests']} requests per measurement ({report['inputs']}), best of "
        f"{report['rounds']} rounds; load average {report['loadavg']['start']} -> "
        f"{report['loadavg']['end']}",
        f"versions: {json.dumps(report['versions'])}",
    ]
    for model, result in report["models"].items():
        lines += ["", f"## {model}", "", "| C | rows | server | req/s | p50 ms | p99 ms | errors |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for cell in result["cells"]:
            for label, s in cell["servers"].items():
                lines.append(
                    f"| {cell['concurrency']} | {cell['rows']} | {label} | {s['rps']:.0f} | "
                    f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['errors']} |"
                )
            rps = [s["rps"] for s in cell["servers"].values()]
            if len(rps) == 2 and rps[1]:
                lines.append(f"|  |  | shipyard ÷ MLServer | {rps[0] / rps[1]:.2f}x |  |  |  |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="logreg", help="comma-separated: logreg,rf")
    p.add_argument("--requests", type=int, default=2000, help="calls per measurement")
    p.add_argument("--rounds", type=int, default=2, help="measurements per server and cell")
    p.add_argument("--concurrency", default="1,16", help="comma-separated concurrencies")
    p.add_argument("--rows", default="1,32", help="comma-separated rows per request")
    p.add_argument("--raw", action="store_true", help="send raw_input_contents, not fp64_contents")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = p.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.rows = [int(n) for n in args.rows.split(",") if n]
    return args


def main() -> None:
    args = parse_args()
    python = shipyard_python()
    if Path(sys.prefix).resolve() != python.parent.parent.resolve():
        os.execv(python, [str(python), __file__, *sys.argv[1:]])
    try:
        make_venv("mlserver", MLSERVER_PACKAGES)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"MLServer could not be installed ({exc}): see pip above") from exc
    load_start = loadavg()
    log(f"load average at start: {load_start}")
    work = Path(tempfile.mkdtemp(prefix="shipyard-grpc-bench-"))
    try:
        trained = train_reference(work)
        register_and_export(work, trained)
        models = [m for m in args.models.split(",") if m]
        results = {m: bench_model(m, work, trained, args) for m in models}
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "requests": args.requests,
        "inputs": "raw_input_contents" if args.raw else "fp64_contents",
        "rounds": args.rounds,
        "loadavg": {"start": load_start, "end": loadavg()},
        "cpus": os.cpu_count(),
        "versions": {
            "shipyard": versions(python, ["shipyard", "grpcio", "protobuf", "onnxruntime"]),
            "mlserver": versions(
                venv_python("mlserver"), ["mlserver", "mlserver-sklearn", "grpcio", "scikit-learn"]
            ),
        },
        "models": results,
    }
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(report, indent=2) if args.json else render(report))


if __name__ == "__main__":
    main()
