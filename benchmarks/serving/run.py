"""Serving benchmark: shipyard's HTTP serving side by side with MLflow, BentoML and a
hand-written FastAPI + onnxruntime endpoint, in one run.

    python3.11 benchmarks/serving/run.py            # full run (~12 minutes on 2 cores)
    python3.11 benchmarks/serving/run.py --quick    # 1 s cells, no 2-worker row (~3 min)
    python3.11 benchmarks/serving/run.py --json     # results as JSON on stdout

The peers live in their own virtualenvs (`benchmarks/serving/.venv-{mlflow,bentoml,fastapi}`,
created on first use), never in shipyard's dependencies. shipyard runs from the repository's
`.venv` (or `benchmarks/serving/.venv-shipyard`, created with `pip install -e .`); this script
re-executes itself there. Every server is a subprocess bound to 127.0.0.1 on a free port, in a
process group of its own that is signalled by its leader's PID at the end. Load comes from
`wrk` (Debian package) with `wrk_post.lua`. See README.md for what is measured and caveats.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parents[1]
LUA = BENCH_DIR / "wrk_post.lua"
MODELS = ("logreg", "rf")
MODEL_TITLES = {
    "logreg": "StandardScaler + LogisticRegression",
    "rf": "RandomForestClassifier(100 trees, depth 8)",
}
PEER_VENVS: dict[str, list[str]] = {
    "mlflow": ["mlflow", "scikit-learn", "pandas"],
    "bentoml": ["bentoml>=1.4,<1.5", "scikit-learn", "pandas"],
    "fastapi": ["fastapi", "uvicorn[standard]", "orjson", "onnxruntime", "numpy"],
}
VERSION_PACKAGES = {
    "shipyard": ["shipyard", "fastapi", "starlette", "uvicorn", "onnxruntime", "scikit-learn"],
    "mlflow": ["mlflow", "fastapi", "uvicorn", "scikit-learn", "pandas"],
    "bentoml": ["bentoml", "starlette", "uvicorn", "scikit-learn", "pandas"],
    "fastapi": ["fastapi", "starlette", "uvicorn", "orjson", "onnxruntime", "numpy"],
}
QUIET_ENV = {  # no telemetry: this machine has no network, and it would add noise anyway
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class Config:
    concurrencies: tuple[int, ...] = (1, 16, 64)
    rows: tuple[int, ...] = (1, 32)
    rounds: int = 3
    seconds: int = 4
    warmup_seconds: int = 1
    two_workers: bool = True
    variants: bool = False  # diagnostic shipyard rows: --no-batching, prediction log off
    only: tuple[str, ...] = ()  # server keys to run (empty: all)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def loadavg() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]


# -- virtualenvs ------------------------------------------------------------------------------


def venv_python(name: str) -> Path:
    return BENCH_DIR / f".venv-{name}" / "bin" / "python"


def shipyard_python() -> Path:
    """The repository's dev venv if it has shipyard, else our own editable install."""
    repo_venv = REPO / ".venv" / "bin" / "python"
    if repo_venv.exists():
        probe = subprocess.run([repo_venv, "-c", "import shipyard, skl2onnx"], capture_output=True)
        if probe.returncode == 0:
            return repo_venv
    own = venv_python("shipyard")
    if not own.exists():
        make_venv("shipyard", ["-e", str(REPO)])
    return own


def make_venv(name: str, packages: list[str], upgrade: bool = False) -> None:
    python = venv_python(name)
    if python.exists() and not upgrade:
        return
    log(f"setting up {python.parent.parent.name}: pip install {' '.join(packages)}")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "-U", "pip"], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "-U", *packages], check=True)


def versions(python: Path, packages: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {'python': sys.version.split()[0]}\n"
        f"for p in {packages!r}:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = 'missing'\n"
        "print(json.dumps(out))"
    )
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


# -- preparing models and bodies --------------------------------------------------------------


def prepare(work: Path) -> dict[str, Any]:
    """Train the reference models, register them with shipyard (in WORK/shipyard), export the
    baseline's ONNX files, write the request bodies, and have the peer venvs log/save their
    own copies (checked to predict the same on all 569 rows)."""
    trained = train_reference(work)  # the peers check their copies against expected.json
    # the peers' setup runs while shipyard registers and converts
    peer_env = {**os.environ, **QUIET_ENV, "BENTOML_HOME": str(work / "bentoml")}
    mlflow_setup = subprocess.Popen(
        [venv_python("mlflow"), "mlflow_setup.py", str(work)],
        cwd=BENCH_DIR,
        env=peer_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    bentoml_setup = subprocess.Popen(
        [venv_python("bentoml"), "bentoml_service.py", str(work)],
        cwd=BENCH_DIR,
        env=peer_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    prep = register_and_export(work, trained)
    out, err = mlflow_setup.communicate()
    if mlflow_setup.returncode != 0:
        raise SystemExit(f"mlflow_setup.py failed:\n{err[-3000:]}")
    prep["mlflow_dirs"] = json.loads(out.strip().splitlines()[-1])
    _, err = bentoml_setup.communicate()
    if bentoml_setup.returncode != 0:
        raise SystemExit(f"bentoml_service.py (save) failed:\n{err[-3000:]}")
    return prep


def prepare_shipyard_and_baseline(work: Path) -> dict[str, Any]:
    """The part of `prepare` that needs no peer venv: models trained, registered with
    shipyard, exported to ONNX for the baseline, and the request bodies."""
    return register_and_export(work, train_reference(work))


def train_reference(work: Path) -> dict[str, Any]:
    """The reference models, the data and their labels on every row; the labels
    (expected.json) and the feature names (features.json) written to WORK."""
    from models import load_data, train  # benchmarks/serving/ is sys.path[0]

    X, y = load_data()
    trained = {name: train(name, X, y) for name in MODELS}
    expected = {name: [int(v) for v in m.predict(X)] for name, m in trained.items()}
    (work / "expected.json").write_text(json.dumps(expected))
    (work / "features.json").write_text(json.dumps(list(X.columns)))
    return {"models": trained, "X": X, "expected": expected}


def register_and_export(work: Path, trained: dict[str, Any]) -> dict[str, Any]:
    """`trained` registered with shipyard (alias champion), exported to ONNX for the
    baseline, and the request bodies written."""
    import numpy as np

    X, expected = trained["X"], trained["expected"]
    os.environ["SHIPYARD_HOME"] = str(work / "shipyard")
    from skl2onnx import to_onnx

    import shipyard

    for name, model in trained["models"].items():
        with shipyard.start_run(experiment="bench") as run:
            mv = run.log_model(model, name=name, input_example=X[:32], onnx=True)
        shipyard.set_alias(name, "champion", mv.version)
        x = X.to_numpy()[:1].astype(np.float32)
        onx = to_onnx(model, x, options={id(model): {"zipmap": False}})
        (work / f"{name}.onnx").write_bytes(onx.SerializeToString())

    bodies = {}
    for n in (1, 32):
        records = X.iloc[:n].to_dict(orient="records")
        for key in ("instances", "dataframe_records"):
            path = work / f"body-{key}-{n}.json"
            path.write_text(json.dumps({key: records}))
            bodies[key, n] = path
    return {"expected": expected, "bodies": bodies, "mlflow_dirs": {}}


# -- servers ----------------------------------------------------------------------------------


@dataclass
class Server:
    key: str
    label: str
    argv: list[str]
    predict_path: str
    health_path: str
    body_key: str  # "instances" or "dataframe_records"
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    failed: str | None = None
    early_errors: int = 0  # non-200 answers to predict requests after health said ready

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_venv_path(python: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment for a server from `python`'s venv (its bin/ first on PATH, since e.g.
    `mlflow models serve` starts `uvicorn` by name)."""
    path = f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, **QUIET_ENV, "PATH": path, **extra}


def servers_for(model: str, work: Path, prep: dict[str, Any], cfg: Config) -> list[Server]:
    shipyard_py = Path(sys.executable)
    shipyard_env = with_venv_path(shipyard_py, {"SHIPYARD_HOME": str(work / "shipyard")})
    shipyard_cmd = [str(shipyard_py), "-m", "shipyard", "serve", f"models:/{model}@champion"]
    bento_py = venv_python("bentoml")
    bento_env = with_venv_path(
        bento_py, {"BENTOML_HOME": str(work / "bentoml"), "BENCH_MODEL": model}
    )
    mlflow_py = venv_python("mlflow")
    out = [
        Server(
            "shipyard",
            "shipyard (1 worker)",
            [*shipyard_cmd, "--port", "{port}", "--log-level", "warning", "--workers", "1"],
            f"/endpoints/{model}/predict",
            "/health/ready",
            "instances",
            shipyard_env,
        ),
    ]
    if cfg.two_workers:
        out.append(
            Server(
                "shipyard-2w",
                "shipyard (2 workers)",
                [*shipyard_cmd, "--port", "{port}", "--log-level", "warning", "--workers", "2"],
                f"/endpoints/{model}/predict",
                "/health/ready",
                "instances",
                shipyard_env,
            )
        )
    if cfg.variants:
        no_log = {**shipyard_env, "SHIPYARD_PREDLOG_ENABLED": "false"}
        for key, label, extra, env in (
            ("shipyard-nobatch", "shipyard --no-batching", ["--no-batching"], shipyard_env),
            ("shipyard-nolog", "shipyard, no pred. log", [], no_log),
        ):
            argv = [*shipyard_cmd, "--port", "{port}", "--log-level", "warning", *extra]
            out.append(
                Server(key, label, argv, f"/endpoints/{model}/predict", "/health/ready",
                       "instances", env)
            )  # fmt: skip
    bento_serve = [str(bento_py.parent / "bentoml"), "serve", "--host", "127.0.0.1"]
    out += [
        Server(
            "mlflow",
            "MLflow",
            [
                str(mlflow_py.parent / "mlflow"),
                "models",
                "serve",
                "-m",
                prep["mlflow_dirs"].get(model, ""),
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ],
            "/invocations",
            "/ping",
            "dataframe_records",
            with_venv_path(mlflow_py, {}),
        ),
        Server(
            "bentoml",
            "BentoML",
            [*bento_serve, "bentoml_service:Plain", "--port", "{port}"],
            "/predict",
            "/readyz",
            "instances",
            bento_env,
        ),
        Server(
            "bentoml-batch",
            "BentoML batchable",
            [*bento_serve, "bentoml_service:Batched", "--port", "{port}"],
            "/predict",
            "/readyz",
            "instances",
            bento_env,
        ),
        Server(
            "fastapi",
            "FastAPI+onnxruntime",
            [
                str(venv_python("fastapi")),
                "fastapi_onnx.py",
                str(work / f"{model}.onnx"),
                str(work / "features.json"),
                "{port}",
            ],
            "/predict",
            "/health",
            "instances",
            with_venv_path(venv_python("fastapi"), {}),
        ),
    ]
    return [s for s in out if not cfg.only or s.key in cfg.only]


def start(server: Server, work: Path) -> None:
    server.port = free_port()
    server.log_path = work / f"{server.key}-{server.port}.log"
    argv = [a.replace("{port}", str(server.port)) for a in server.argv]
    with open(server.log_path, "wb") as fh:
        # a session of its own: stop() signals this process group (pgid = the PID started here),
        # which reaches the server's own workers and nothing else
        server.proc = subprocess.Popen(
            argv, cwd=BENCH_DIR, env=server.env, stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop(server: Server) -> None:
    proc = server.proc
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # workers that outlived their parent still carry its process group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    server.proc = None


def http(url: str, body: bytes | None = None, timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    if body:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(server: Server, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.proc is None or server.proc.poll() is not None:
            raise RuntimeError(f"exited early:\n{tail(server.log_path)}")
        with contextlib.suppress(OSError):
            status, _ = http(server.base + server.health_path, timeout=2)
            if status == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"not ready after the deadline:\n{tail(server.log_path)}")


def settle(server: Server, body: bytes, deadline: float, needed: int = 20) -> int:
    """Predict until `needed` answers in a row are 200. A server whose workers share one port
    can say ready (on the worker that answered) while another worker is still loading; the
    non-200 answers seen meanwhile are returned, and reported."""
    bad = streak = 0
    while streak < needed:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {needed} good answers in a row before the deadline")
        status, _ = http(server.base + server.predict_path, body)
        if status == 200:
            streak += 1
        else:
            bad, streak = bad + 1, 0
            time.sleep(0.1)
    return bad


def tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def check_predictions(server: Server, prep: dict[str, Any], model: str) -> None:
    """A 200 and the reference model's labels, for a 1-row and a 32-row request."""
    for n in (1, 32):
        body = prep["bodies"][server.body_key, n].read_bytes()
        status, raw = http(server.base + server.predict_path, body)
        if status != 200:
            raise RuntimeError(f"{n}-row request: HTTP {status}: {raw[:300]!r}")
        doc = json.loads(raw)
        labels = doc["predictions"] if isinstance(doc, dict) else doc
        got = [label_of(v) for v in labels]
        want = prep["expected"][model][:n]
        if got != want:
            raise RuntimeError(f"{n}-row request: predictions {got} differ from {want}")


def label_of(value: Any) -> int:
    """A label, a probability (rounded), or a row of per-class scores (its argmax: MLflow's
    PyTorch pyfunc answers the module's logits, as a list or a column → value mapping)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return max(range(len(value)), key=lambda i: float(value[i]))
    return round(float(value))


# -- load -------------------------------------------------------------------------------------


def run_wrk(server: Server, body: Path, concurrency: int, seconds: int) -> dict[str, Any]:
    url = server.base + server.predict_path
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    cmd += ["-s", str(LUA), url, "--", str(body)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((s for s in done.stdout.splitlines() if s.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    duration = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    ok = raw["requests"] - raw["status"]
    return {
        "rps": ok / duration if duration else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "requests": raw["requests"],
        "errors": errors,
        "error_kinds": {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")},
        "loadavg": loadavg(),
    }


def bench_model(model: str, work: Path, prep: dict[str, Any], cfg: Config) -> dict[str, Any]:
    servers = servers_for(model, work, prep, cfg)
    return bench_servers(model, MODEL_TITLES[model], servers, work, prep, cfg)


def bench_servers(
    model: str, title: str, servers: list[Server], work: Path, prep: dict[str, Any], cfg: Config
) -> dict[str, Any]:
    """Start `servers`, check each answers `prep["expected"][model]`, then measure every cell
    (also used by ../frameworks.py)."""
    log(f"\n[{model}] starting {len(servers)} servers; load average {loadavg()}")
    try:
        for s in servers:
            start(s, work)
        deadline = time.monotonic() + 180
        for s in servers:
            try:
                wait_ready(s, deadline)
                body = prep["bodies"][s.body_key, 1].read_bytes()
                s.early_errors = settle(s, body, deadline)
                if s.early_errors:
                    log(f"[{model}] {s.label}: {s.early_errors} non-200 answers after ready")
                check_predictions(s, prep, model)
            except (RuntimeError, OSError, ValueError, KeyError) as exc:
                s.failed = f"{type(exc).__name__}: {exc}"
                log(f"[{model}] {s.label} FAILED its check, not loaded: {s.failed}")
                stop(s)
        live = [s for s in servers if s.failed is None]
        log(f"[{model}] ready and correct: {', '.join(s.label for s in live)}")
        top = max(cfg.concurrencies)
        for s in live:  # warm-up (not recorded): both body sizes, the highest concurrency
            for n in cfg.rows:
                run_wrk(s, prep["bodies"][s.body_key, n], top, cfg.warmup_seconds)
        cells = []
        for c in cfg.concurrencies:
            for n in cfg.rows:
                rounds: dict[str, list[dict[str, Any]]] = {s.key: [] for s in live}
                for r in range(cfg.rounds):
                    order = live[r % len(live) :] + live[: r % len(live)]  # rotate each round
                    for s in order:
                        result = run_wrk(s, prep["bodies"][s.body_key, n], c, cfg.seconds)
                        rounds[s.key].append(result)
                cell = summarize_cell(c, n, rounds)
                cells.append(cell)
                log(f"[{model}] c={c:<3} rows={n:<3} load {loadavg()}  " + cell_line(cell, live))
        for s in live:
            code = s.proc.poll() if s.proc is not None else None
            if code is not None:
                s.failed = f"exited during the run (code {code}):\n{tail(s.log_path)}"
                log(f"[{model}] {s.label} {s.failed}")
        return {
            "title": title,
            "servers": {
                s.key: {"label": s.label, "failed": s.failed, "early_errors": s.early_errors}
                for s in servers
            },
            "cells": cells,
        }
    finally:
        for s in servers:
            stop(s)


def summarize_cell(c: int, n: int, rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Best round by req/s (machine noise only ever slows a round down); errors summed over
    every round, warm-up excluded."""
    out: dict[str, Any] = {"concurrency": c, "rows": n, "servers": {}}
    for key, results in rounds.items():
        best = max(results, key=lambda r: r["rps"])
        out["servers"][key] = {
            **{k: best[k] for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms")},
            "errors": sum(r["errors"] for r in results),
            "rounds": results,
        }
    return out


def cell_line(cell: dict[str, Any], live: list[Server]) -> str:
    return "  ".join(f"{s.key} {cell['servers'][s.key]['rps']:.0f}/s" for s in live)


# -- main -------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 s cells, no 2-worker row (~3 min)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--rounds", type=int, help="rounds per cell (default 3)")
    p.add_argument("--seconds", type=int, help="seconds per measurement (default 4, quick 1)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: logreg,rf")
    p.add_argument(
        "--variants",
        action="store_true",
        help="add diagnostic shipyard rows: --no-batching, and the prediction log off",
    )
    p.add_argument("--only", default="", help="comma-separated server keys, e.g. shipyard,fastapi")
    p.add_argument("--reinstall", action="store_true", help="pip install -U the peer venvs")
    p.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    python = shipyard_python()
    if Path(sys.prefix).resolve() != python.parent.parent.resolve():
        os.execv(python, [str(python), __file__, *sys.argv[1:]])
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    for name, packages in PEER_VENVS.items():
        make_venv(name, packages, upgrade=args.reinstall)

    cfg = Config(rounds=2, seconds=1, two_workers=False) if args.quick else Config()
    if args.rounds:
        cfg = replace(cfg, rounds=max(1, args.rounds))
    if args.seconds:
        cfg = replace(cfg, seconds=max(1, args.seconds))
    cfg = replace(cfg, variants=args.variants, only=tuple(k for k in args.only.split(",") if k))
    models = [m for m in args.models.split(",") if m]
    started = time.monotonic()
    load_start = loadavg()
    log(f"load average at start: {load_start}")
    if load_start[0] > 1.0:
        log("warning: the machine is busy (1-minute load > 1); figures will be noisy")

    info = {
        "shipyard": versions(python, VERSION_PACKAGES["shipyard"]),
        **{k: versions(venv_python(k), VERSION_PACKAGES[k]) for k in PEER_VENVS},
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
    }
    work = Path(tempfile.mkdtemp(prefix="shipyard-serving-bench-"))
    try:
        log(f"preparing models in {work}")
        prep = prepare(work)
        results = {m: bench_model(m, work, prep, cfg) for m in models}
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    from report import evaluate_targets, render

    report = {
        "config": cfg.__dict__,
        "loadavg": {"start": load_start, "end": loadavg()},
        "elapsed_s": round(time.monotonic() - started, 1),
        "cpus": os.cpu_count(),
        "versions": info,
        "models": results,
    }
    report["targets"] = evaluate_targets(results)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render(report))


if __name__ == "__main__":
    main()
