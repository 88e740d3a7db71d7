"""One unchanged `mlflow` client script against `mlflow server` and `shipyard server`.

    .venv/bin/python benchmarks/mlflow_compat.py            # table
    .venv/bin/python benchmarks/mlflow_compat.py --json     # the results as JSON
    .venv/bin/python benchmarks/mlflow_compat.py --runs 20 --reps 1   # quicker

Run it with shipyard's own Python (the server side is this repository's `shipyard server`, with
whatever ONNX converters that environment holds). The MLflow side and the client script run in
an MLflow virtualenv: `--mlflow-python`, else the one the e2e tests make
(~/.cache/shipyard-tests/mlflow-3.18.0-onnx), else `benchmarks/.venv-mlflow` (created on first
use with the latest `mlflow` and scikit-learn). MLflow is never a dependency of shipyard.

Each repetition starts each server fresh in its own temporary directory with SQLite (shipyard:
`SHIPYARD_HOME=<tmp>`; MLflow: `--backend-store-uri sqlite:///<tmp>/mlflow.db
--artifacts-destination <tmp>/artifacts`, its artifact proxy), waits for `/health`, then runs
`mlflow_compat_client.py` against it (`MLFLOW_TRACKING_URI`) and stops the server. The order of
the two sides alternates between repetitions. The client times its own work (imports and
training excluded); the table shows the median over repetitions of each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
CLIENT = BENCH_DIR / "mlflow_compat_client.py"
E2E_VENV = Path.home() / ".cache" / "shipyard-tests" / "mlflow-3.18.0-onnx"
OWN_VENV = BENCH_DIR / ".venv-mlflow"
MODEL_NAME = "bench-model"  # the client's registered model
TARGET = 10.0  # the issue's: shipyard >= 10x faster end to end
PHASES = ("per_call", "batched", "register")


@dataclass(frozen=True)
class Config:
    runs: int = 20
    params: int = 10
    metrics: int = 5
    steps: int = 20
    models: int = 3
    reps: int = 2


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- the MLflow virtualenv -------------------------------------------------------------------------


def mlflow_python(given: str | None, reinstall: bool) -> Path:
    if given:
        return Path(given)
    if E2E_VENV.joinpath("bin", "python").exists() and not reinstall:
        return E2E_VENV / "bin" / "python"
    python = OWN_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {OWN_VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(OWN_VENV)], check=True)
        reinstall = True
    if reinstall:
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "mlflow", "scikit-learn"], check=True)
    return python


# -- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quiet_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    # no network in the measurement: MLflow's usage telemetry is off
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", **extra}


def server_command(side: str, python: Path, tmp: Path, port: int) -> list[str]:
    if side == "shipyard":
        return [sys.executable, "-m", "shipyard", "server", "--port", str(port)]
    return [
        str(python),
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
        "--artifacts-destination",
        str(tmp / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read() or b"null")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering /health")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                if answer.status == 200:
                    return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer from {url}/health in {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (MLflow's workers and job runner too), then
    SIGKILL to whatever of that group is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            break
    proc.wait()


def onnx_settled(url: str, versions: int, timeout: float = 300) -> tuple[float, list[str]]:
    """Seconds until every version's background ONNX conversion is no longer pending, and the
    statuses then (shipyard's own API)."""
    start = time.perf_counter()
    while True:
        found = [
            str(get_json(f"{url}/api/models/{MODEL_NAME}/versions/{v}").get("onnx_status"))
            for v in range(1, versions + 1)
        ]
        if "pending" not in found or time.perf_counter() - start > timeout:
            return time.perf_counter() - start, found
        time.sleep(0.05)


def run_side(side: str, python: Path, cfg: Config) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"mlflow-compat-{side}-") as name:
        tmp = Path(name)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = quiet_env(SHIPYARD_HOME=str(tmp / "home"))
        with open(tmp / "server.log", "wb") as server_log:
            proc = subprocess.Popen(
                server_command(side, python, tmp, port),
                cwd=tmp,
                env=env,
                stdout=server_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            started = wait_healthy(url, proc)
            load = loadavg()
            client = subprocess.run(
                [str(python), str(CLIENT), *map(str, astuple_client(cfg))],
                cwd=tmp,
                env=quiet_env(MLFLOW_TRACKING_URI=url, HOME=str(tmp)),
                capture_output=True,
                text=True,
                timeout=3600,
            )
            if client.returncode != 0:
                tail = (tmp / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{side} client failed:\n{client.stderr[-4000:]}\n{tail}")
            result = json.loads(client.stdout.strip().splitlines()[-1])
            result.update(server_start=started, load=load)
            if side == "shipyard":
                result["onnx_after"], result["onnx_status"] = onnx_settled(url, cfg.models)
        finally:
            stop(proc)
        return result


def astuple_client(cfg: Config) -> tuple[int, ...]:
    return (cfg.runs, cfg.params, cfg.metrics, cfg.steps, cfg.models)


# -- report -------------------------------------------------------------------------------------


def median_of(results: list[dict[str, Any]], *path: str) -> float:
    values = []
    for r in results:
        value: Any = r
        for key in path:
            value = value[key]
        values.append(float(value))
    return statistics.median(values)


def build_report(cfg: Config, python: Path) -> dict[str, Any]:
    load_start = loadavg()
    sides: dict[str, list[dict[str, Any]]] = {"shipyard": [], "mlflow": []}
    for rep in range(cfg.reps):
        order = ("mlflow", "shipyard") if rep % 2 == 0 else ("shipyard", "mlflow")
        for side in order:
            log(f"rep {rep + 1}/{cfg.reps}: {side} (load {' '.join(map(str, loadavg()))})")
            result = run_side(side, python, cfg)
            log(f"  {side}: {result['total']:.2f} s")
            sides[side].append(result)
    rows = []
    for phase in PHASES:
        sy, ml = (
            median_of(sides["shipyard"], "phases", phase, "wall"),
            median_of(sides["mlflow"], "phases", phase, "wall"),
        )
        rows.append({"phase": phase, "shipyard": sy, "mlflow": ml, "ratio": ml / sy})
    sy_total, ml_total = median_of(sides["shipyard"], "total"), median_of(sides["mlflow"], "total")
    onnx_after = median_of(sides["shipyard"], "onnx_after")
    rows.append({"phase": "total", "shipyard": sy_total, "mlflow": ml_total})
    rows[-1]["ratio"] = ml_total / sy_total
    with_onnx = sy_total + onnx_after
    rows.append(
        {"phase": "total + ONNX", "shipyard": with_onnx, "mlflow": ml_total},
    )
    rows[-1]["ratio"] = ml_total / with_onnx
    return {
        "config": asdict(cfg),
        "versions": {
            "python": platform.python_version(),
            "mlflow": sides["mlflow"][0]["mlflow"],
            "shipyard": shipyard_version(),
        },
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "rows": rows,
        "target": TARGET,
        "met": rows[3]["ratio"] >= TARGET,
        "client_cpu": {
            side: {p: median_of(sides[side], "phases", p, "cpu") for p in PHASES} for side in sides
        },
        "raw": sides,
    }


def shipyard_version() -> str:
    from importlib.metadata import version

    return version("shipyard")


def print_table(report: dict[str, Any]) -> None:
    cfg, v = report["config"], report["versions"]
    print(
        f"mlflow {v['mlflow']} client against mlflow server {v['mlflow']} and shipyard server "
        f"{v['shipyard']} (Python {v['python']}, SQLite, both fresh each repetition)"
    )
    requests = cfg["runs"] * (cfg["params"] + cfg["metrics"] * cfg["steps"])
    print(
        f"{cfg['runs']} runs x {cfg['params']} params x {cfg['metrics']} metrics x "
        f"{cfg['steps']} steps, per call ({requests:,} log requests) and batched; "
        f"{cfg['models']} x sklearn log_model + register, alias; median of {cfg['reps']} reps"
    )
    print("load average at start: {} {} {}".format(*report["loadavg_start"]))
    header = f"{'phase':<14}{'shipyard':>11}{'mlflow':>11}{'mlflow/shipyard':>17}"
    print(header)
    print("-" * len(header))
    for row in report["rows"]:
        print(
            f"{row['phase']:<14}{row['shipyard']:>10.2f}s{row['mlflow']:>10.2f}s"
            f"{row['ratio']:>16.1f}x"
        )
    total = report["rows"][3]["ratio"]
    verdict = "met" if report["met"] else "NOT MET"
    print(f"end to end: {total:.1f}x (target >= {report['target']:g}x: {verdict})")
    cpu = report["client_cpu"]
    print(
        "client CPU s (per_call/batched/register): "
        + "; ".join(f"{side} " + "/".join(f"{cpu[side][p]:.2f}" for p in PHASES) for side in cpu)
    )
    sy = report["raw"]["shipyard"]
    print(
        "shipyard ONNX conversions settled {} after the client finished: {}".format(
            ", ".join(f"{r['onnx_after']:.2f} s" for r in sy),
            "; ".join(",".join(r["onnx_status"]) for r in sy),
        )
    )
    checks = {side: report["raw"][side][0]["check"] for side in report["raw"]}
    print(f"read back: {json.dumps(checks)}")
    print("load average at end:   {} {} {}".format(*report["loadavg_end"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Config()
    for field in ("runs", "params", "metrics", "steps", "models", "reps"):
        parser.add_argument(f"--{field}", type=int, default=getattr(defaults, field))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--mlflow-python", help="Python of a virtualenv holding mlflow")
    parser.add_argument("--reinstall", action="store_true", help="(re)make benchmarks/.venv-mlflow")
    args = parser.parse_args(argv)
    cfg = Config(
        runs=args.runs,
        params=args.params,
        metrics=args.metrics,
        steps=args.steps,
        models=args.models,
        reps=args.reps,
    )
    python = mlflow_python(args.mlflow_python, args.reinstall)
    report = build_report(cfg, python)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
