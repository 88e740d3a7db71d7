"""CPU work per request, counted: shipyard against the hand-written FastAPI + onnxruntime
endpoint, the same models and requests, one connection, each server under valgrind's
callgrind, which counts the instructions every thread of the server executes.

    python3.11 benchmarks/serving/instructions.py                  # logreg and rf, 1-row bodies
    python3.11 benchmarks/serving/instructions.py --rows 32 --requests 500

Requests per second at one connection move by ±10 % from one second to the next on a shared
machine, more than the difference being measured; an instruction count does not (two runs
of the same request count agree within ~1 %). It counts user-space work only: the kernel's
part of a request (the TCP round trip over loopback) is the same for both servers and is not
in it. The prediction log's flushes, metrics and everything else the server does while
answering are, and overstated: under valgrind a server runs ~50x slower, so its timers (the
log's flush every 2 s) fire far more often per request than in service, which counts against
shipyard (the baseline keeps no log); fewer requests per run weigh them more (300 requests:
~8 % more per request than 1,000). Counting starts after a warm-up (`callgrind_control -i on`)
and stops after the measured requests.

Needs valgrind (`apt-get install -y valgrind`) and the FastAPI venv that `run.py` makes; it
runs in the repository's `.venv` like `run.py` (re-executing itself there).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import (
    BENCH_DIR,
    PEER_VENVS,
    Config,
    Server,
    check_predictions,
    loadavg,
    log,
    make_venv,
    prepare_shipyard_and_baseline,
    servers_for,
    shipyard_python,
    start,
    stop,
    tail,
    wait_ready,
)


def drive(server: Server, body: bytes, requests: int) -> None:
    """`requests` POSTs on one keep-alive connection, each checked."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        for _ in range(requests):
            conn.request("POST", server.predict_path, body, {"Content-Type": "application/json"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{server.label}: HTTP {answer.status}")
    finally:
        conn.close()


def count(server: Server, work: Path, prep: dict, model: str, rows: int, requests: int) -> int:
    """Instructions per request of `server` under callgrind."""
    out = work / f"callgrind-{server.key}-{model}-{rows}"
    server.argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        *server.argv,
    ]
    start(server, work)
    assert server.proc is not None
    try:
        wait_ready(server, time.monotonic() + 900)  # everything runs ~50x slower under valgrind
        check_predictions(server, prep, model)
        body = prep["bodies"][server.body_key, rows].read_bytes()
        drive(server, body, 200)  # warm-up, not counted
        control = ["callgrind_control"]
        subprocess.run(
            [*control, "-i", "on", str(server.proc.pid)], check=True, capture_output=True
        )
        drive(server, body, requests)
        subprocess.run(
            [*control, "-i", "off", str(server.proc.pid)], check=True, capture_output=True
        )
        subprocess.run([*control, "-d", str(server.proc.pid)], check=True, capture_output=True)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"{server.label}: {exc}\n{tail(server.log_path)}") from exc
    finally:
        stop(server)
    total = 0
    for path in work.glob(f"{out.name}*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
    if total == 0:
        raise SystemExit(f"{server.label}: callgrind counted nothing ({out})")
    return total // requests


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="logreg,rf", help="comma-separated: logreg,rf")
    p.add_argument("--rows", type=int, default=1, choices=(1, 32), help="rows per request")
    p.add_argument("--requests", type=int, default=2000, help="counted requests per server")
    args = p.parse_args()
    python = shipyard_python()
    if Path(sys.prefix).resolve() != python.parent.parent.resolve():
        os.execv(python, [str(python), __file__, *sys.argv[1:]])
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install -y valgrind")
    make_venv("fastapi", PEER_VENVS["fastapi"])
    log(f"load average at start: {loadavg()}")
    work = Path(tempfile.mkdtemp(prefix="shipyard-instructions-"))
    try:
        prep = prepare_shipyard_and_baseline(work)
        what = f"{args.rows}-row bodies, {args.requests} requests, 1 connection"
        print(f"instructions per request ({what})")
        print(f"{'model':<8} {'shipyard':>12} {'FastAPI+ORT':>12} {'ratio':>7}")
        for model in args.models.split(","):
            counts = {}
            for server in servers_for(model, work, prep, Config(only=("shipyard", "fastapi"))):
                log(f"[{model}] {server.label} under callgrind ...")
                counts[server.key] = count(server, work, prep, model, args.rows, args.requests)
            ours, peer = counts["shipyard"], counts["fastapi"]
            print(f"{model:<8} {ours:>12,} {peer:>12,} {peer / ours:>6.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"load average at end: {loadavg()} (instruction counts do not depend on it)")


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    main()
