"""Frameworks benchmark: XGBoost, LightGBM (and a PyTorch MLP when shipyard's torch flavor is
installed) served by shipyard side by side with `mlflow models serve`, BentoML 1.4 (plain and
batchable) and a hand-written FastAPI endpoint calling the framework's own predict; plus the
parity of shipyard's served outputs and log_model + register time vs MLflow's log_model.

    python3.11 benchmarks/frameworks.py            # 100k training rows, 3 rounds x 4 s per cell
    python3.11 benchmarks/frameworks.py --quick    # 20k training rows, 1 round x 2 s per cell
    python3.11 benchmarks/frameworks.py --json     # results as JSON on stdout

The peers live in their own virtualenvs (`benchmarks/.venv-fw-{mlflow,bentoml,fastapi}`,
created on first use), never in shipyard's dependencies; trained models are cached in
`benchmarks/.fw-cache/<data spec>/` in their libraries' own formats. The serving machinery
(servers as process groups on 127.0.0.1, wrk, rounds) is serving/run.py's. See README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FW_DIR = HERE / "fwbench"
CACHE_ROOT = HERE / ".fw-cache"
sys.path[:0] = [str(HERE / "serving"), str(FW_DIR)]

import fwmodels  # noqa: E402
import fwreport  # noqa: E402
import run as srv  # noqa: E402  (benchmarks/serving/run.py)

BOOSTER_PKGS = ["xgboost-cpu", "lightgbm", "scikit-learn", "pandas"]
PEER_VENVS: dict[str, list[str]] = {
    "mlflow": ["mlflow", *BOOSTER_PKGS],
    # bentoml.xgboost looks up the `xgboost` distribution by name: not xgboost-cpu
    "bentoml": ["bentoml>=1.4,<1.5", "xgboost", *BOOSTER_PKGS[1:]],
    "fastapi": ["fastapi", "uvicorn[standard]", "orjson", "numpy", *BOOSTER_PKGS],
}
TORCH_WHEEL = "torch==2.13.0"  # the CPU wheel in /opt/wheels
VERSION_PACKAGES = {
    "shipyard": ["shipyard", "onnxruntime", "onnxmltools", "xgboost-cpu", "lightgbm", "torch"],
    "mlflow": ["mlflow", "xgboost-cpu", "lightgbm", "torch"],
    "bentoml": ["bentoml", "xgboost", "lightgbm", "torch"],
    "fastapi": ["fastapi", "uvicorn", "xgboost-cpu", "lightgbm", "torch"],
}
log = srv.log


def venv_python(name: str) -> Path:
    return HERE / f".venv-fw-{name}" / "bin" / "python"


def make_venv(name: str, packages: list[str], upgrade: bool = False) -> None:
    python = venv_python(name)
    if python.exists() and not upgrade:
        return
    log(f"setting up {python.parent.parent.name}: pip install {' '.join(packages)}")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "-U", "pip"], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "-U", *packages], check=True)


def has_package(python: Path, module: str) -> bool:
    probe = [
        python,
        "-c",
        f"import importlib.util as u; raise SystemExit(not u.find_spec({module!r}))",
    ]
    return subprocess.run(probe, capture_output=True).returncode == 0


def torch_flavor() -> str | None:
    """None when shipyard's torch flavor is installed, else why the torch rows are skipped."""
    if importlib.util.find_spec("shipyard.flavors.pytorch") is None:
        return "the shipyard[torch] flavor is not installed"
    if importlib.util.find_spec("torch") is None:
        return f"torch is not installed in shipyard's venv (pip install {TORCH_WHEEL})"
    return None


# -- models: trained once, cached -------------------------------------------------------------


def cached_models(spec: fwmodels.DataSpec, flavors: list[str]) -> Path:
    """benchmarks/.fw-cache/<spec>/: each flavor's model in its own format (for the peers), the
    trained wrapper (pickle, written and read only here, for shipyard's and the parity's side),
    the regressors, the test rows and every model's labels on them."""
    import pickle

    import numpy as np

    cache = CACHE_ROOT / spec.key
    cache.mkdir(parents=True, exist_ok=True)
    fwmodels.write_meta(cache, spec)
    labels_path = cache / "labels.json"
    labels = json.loads(labels_path.read_text()) if labels_path.exists() else {}
    X, y, X_test, _ = fwmodels.make_data(spec)
    np.save(cache / "test.npy", X_test.to_numpy())
    for flavor in flavors:
        if (cache / f"{flavor}.pkl").exists() and flavor in labels:
            continue
        log(f"training {flavor} on {spec.rows:,} rows x {spec.features} features")
        start = time.monotonic()
        model = fwmodels.train(flavor, spec, X, y)
        fwmodels.save(flavor, model, cache / fwmodels.FILES[flavor])
        (cache / f"{flavor}.pkl").write_bytes(pickle.dumps(model))
        labels[flavor] = fwmodels.labels(flavor, model, X_test)
        labels_path.write_text(json.dumps(labels))
        log(f"  trained in {time.monotonic() - start:.0f} s")
    Xr, yr, _, _ = fwmodels.make_data(spec, "regression")
    for flavor in (f for f in flavors if f in fwmodels.BOOSTERS):
        path = cache / f"{flavor}-regressor.pkl"
        if not path.exists():
            log(f"training the {flavor} regressor")
            path.write_bytes(pickle.dumps(fwmodels.train(flavor, spec, Xr, yr, "regression")))
    return cache


def load_wrapper(cache: Path, name: str) -> Any:
    import pickle

    return pickle.loads((cache / f"{name}.pkl").read_bytes())  # our own cache, written above


def test_rows(cache: Path, spec: fwmodels.DataSpec, task: str = "classification") -> Any:
    if task == "classification":
        import numpy as np
        import pandas as pd

        return pd.DataFrame(np.load(cache / "test.npy"), columns=fwmodels.columns(spec.features))
    return fwmodels.make_data(spec, task)[2]


def example_of(flavor: str, X: Any) -> Any:
    """Five rows by column name, so every flavor is served from the same request bodies."""
    return X.iloc[:5]


def to_log(flavor: str, model: Any) -> Any:
    """What shipyard logs: the MLP as a classifier of its two logits."""
    if flavor == "torch":
        import shipyard

        return shipyard.TorchClassifier(model, classes=[0, 1])
    return model


# -- log_model + register: shipyard vs MLflow ----------------------------------------------------


def time_shipyard_logging(cache: Path, spec: Any, flavors: list[str], reps: int) -> dict[str, Any]:
    """Per flavor, `reps` timed `run.log_model` (registers a version) after an untimed warm-up,
    with the default onnx="auto" (conversion in the background, waited for untimed between
    reps) and with onnx=True (conversion and its parity check timed). The last version gets the
    alias `champion` for serving."""
    import gc

    import shipyard
    from shipyard.errors import ConversionError
    from shipyard.registry import Registry

    X = test_rows(cache, spec)
    out: dict[str, Any] = {}
    for flavor in flavors:
        model = load_wrapper(cache, flavor)
        name = f"fw_{flavor}"
        times: dict[str, Any] = {"auto": [], "onnx": []}
        for mode in ("onnx", "auto"):  # the last version (auto) is the one served
            for i in range(reps + 1):
                gc.collect()
                start = time.perf_counter()
                try:
                    with shipyard.start_run(experiment="fwbench") as run:
                        mv = run.log_model(
                            to_log(flavor, model), name=name, input_example=example_of(flavor, X),
                            onnx=True if mode == "onnx" else "auto",
                        )  # fmt: skip
                except ConversionError as exc:  # onnx=True: the conversion failed its check
                    times["onnx_refused"] = str(exc)
                    break
                elapsed = time.perf_counter() - start
                Registry.wait_for_conversions()
                if i:  # the first is the warm-up
                    times[mode].append(elapsed)
        shipyard.set_alias(name, "champion", mv.version)
        out[flavor] = times
    return out


def run_peer_setup(cache: Path, work: Path, flavors: list[str], reps: int) -> dict[str, Any]:
    env = {**os.environ, **srv.QUIET_ENV, "BENTOML_HOME": str(work / "bentoml")}
    argv = [venv_python("mlflow"), "peer_mlflow.py", str(cache), str(work), str(reps)]
    done = subprocess.run(
        [*argv, ",".join(flavors)], cwd=FW_DIR, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"peer_mlflow.py failed:\n{done.stderr[-3000:]}")
    mlflow = json.loads(done.stdout.strip().splitlines()[-1])
    done = subprocess.run(
        [venv_python("bentoml"), "bentoml_fw.py", str(cache)],
        cwd=FW_DIR, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"bentoml_fw.py (save) failed:\n{done.stderr[-3000:]}")
    return mlflow  # type: ignore[no-any-return]


# -- parity -----------------------------------------------------------------------------------


def shipyard_server(uri: str, work: Path) -> srv.Server:
    python = Path(sys.executable)
    name = uri.removeprefix("models:/").split("@")[0]
    return srv.Server(
        "shipyard", "shipyard (1 worker)",
        [str(python), "-m", "shipyard", "serve", uri, "--port", "{port}", "--log-level",
         "warning", "--workers", "1"],
        f"/endpoints/{name}/predict", "/health/ready", "instances",
        srv.with_venv_path(python, {"SHIPYARD_HOME": str(work / "shipyard")}),
    )  # fmt: skip


def served_outputs(uri: str, X: Any, work: Path, proba: bool, chunk: int = 1000) -> Any:
    """shipyard's answers for every row of X from `shipyard serve URI`: probabilities (a
    classifier) or predictions."""
    import numpy as np

    server = shipyard_server(uri, work)
    srv.start(server, work)
    try:
        srv.wait_ready(server, time.monotonic() + 120)
        parts = []
        for i in range(0, len(X), chunk):
            records = X.iloc[i : i + chunk].to_dict(orient="records")
            body = json.dumps({"instances": records, "probabilities": proba}).encode()
            status, raw = srv.http(server.base + server.predict_path, body, timeout=60)
            if status != 200:
                raise RuntimeError(f"{uri}: HTTP {status}: {raw[:300]!r}")
            doc = json.loads(raw)
            parts.append(np.asarray(doc["probabilities" if proba else "predictions"], float))
        return np.concatenate(parts)
    finally:
        srv.stop(server)


def onnx_state(name: str, work: Path) -> str:
    env = {**os.environ, "SHIPYARD_HOME": str(work / "shipyard")}
    cmd = [sys.executable, "-m", "shipyard", "models", "show", name, "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return f"unknown ({done.stderr.strip()[:200]})"
    doc = json.loads(done.stdout)
    latest = max(doc["versions"], key=lambda v: int(v["version"]))
    return f"{latest.get('onnx_status')}: {latest.get('onnx_detail') or ''}".strip()


def parity(cache: Path, spec: Any, flavors: list[str], work: Path) -> list[dict[str, Any]]:
    """Classifiers: max |served probability - the framework's predict_proba| on the test rows.
    Regressors (boosters): registered with onnx=True; the max relative drift of the served
    predictions vs the framework's predict, or why the fast path was refused."""
    import numpy as np

    import shipyard
    from shipyard.errors import ConversionError

    X = test_rows(cache, spec)
    rows = []
    for flavor in flavors:
        model = load_wrapper(cache, flavor)
        got = served_outputs(f"models:/fw_{flavor}@champion", X, work, proba=True)
        if flavor == "torch":
            import torch

            with torch.no_grad():
                logits = model(torch.tensor(X.to_numpy(), dtype=torch.float32))
            want = torch.softmax(logits, dim=1).numpy()
        else:
            want = model.predict_proba(X)
        rows.append({
            "model": f"{flavor} classifier", "rows": len(X),
            "max_abs_diff": float(np.max(np.abs(got - want))),
            "label_flips": int(np.sum(got.argmax(axis=1) != np.asarray(want).argmax(axis=1))),
            "backend": onnx_state(f"fw_{flavor}", work),
        })  # fmt: skip
    Xr = test_rows(cache, spec, "regression")
    for flavor in (f for f in flavors if f in fwmodels.BOOSTERS):
        model = load_wrapper(cache, f"{flavor}-regressor")
        name = f"fw_{flavor}_reg"
        row: dict[str, Any] = {"model": f"{flavor} regressor", "rows": len(Xr)}
        try:
            with shipyard.start_run(experiment="fwbench") as run:
                mv = run.log_model(model, name=name, input_example=Xr.iloc[:32], onnx=True)
        except ConversionError as exc:
            row["note"] = f"fast path not used: the conversion was refused ({exc})"
            with shipyard.start_run(experiment="fwbench") as run:
                mv = run.log_model(model, name=name, input_example=Xr.iloc[:32], onnx=False)
        shipyard.set_alias(name, "champion", mv.version)
        got = served_outputs(f"models:/{name}@champion", Xr, work, proba=False)
        want = np.asarray(model.predict(Xr), float)
        row["max_abs_diff"] = float(np.max(np.abs(got - want)))
        row["max_rel_drift"] = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
        row["backend"] = onnx_state(name, work)
        rows.append(row)
    return rows


# -- serving ----------------------------------------------------------------------------------


def write_bodies(work: Path, X: Any, flavor: str) -> dict[tuple[str, int], Path]:
    """Request bodies of 1 and 32 rows: records by column name (`instances`,
    `dataframe_records`), and a 2-D list (`inputs`: MLflow's form for a tensor signature,
    which mlflow.pytorch infers from the MLP's array example)."""
    bodies = {}
    for n in (1, 32):
        docs = {
            "instances": X.iloc[:n].to_dict(orient="records"),
            "dataframe_records": X.iloc[:n].to_dict(orient="records"),
            "inputs": X.iloc[:n].to_numpy().tolist(),
        }
        for key, doc in docs.items():
            path = work / f"body-{flavor}-{key}-{n}.json"
            path.write_text(json.dumps({key: doc}))
            bodies[key, n] = path
    return bodies


def servers_for(flavor: str, cache: Path, work: Path, mlflow_dir: str, spec: Any) -> list[Any]:
    mlflow_py, bento_py, fastapi_py = (venv_python(k) for k in ("mlflow", "bentoml", "fastapi"))
    bento_env = srv.with_venv_path(bento_py, {
        "BENTOML_HOME": str(work / "bentoml"), "BENCH_FLAVOR": flavor, "BENCH_CACHE": str(cache),
    })  # fmt: skip
    bento = [str(bento_py.parent / "bentoml"), "serve", "--host", "127.0.0.1"]
    bento += ["--working-dir", str(FW_DIR), "--port", "{port}"]
    S = srv.Server
    return [
        shipyard_server(f"models:/fw_{flavor}@champion", work),
        S("mlflow", "MLflow",
          [str(mlflow_py.parent / "mlflow"), "models", "serve", "-m", mlflow_dir,
           "--env-manager", "local", "--host", "127.0.0.1", "--port", "{port}"],
          "/invocations", "/ping", "inputs" if flavor == "torch" else "dataframe_records",
          srv.with_venv_path(mlflow_py, {})),
        S("bentoml", "BentoML", [*bento, "bentoml_fw:Plain"], "/predict", "/readyz",
          "instances", bento_env),
        S("bentoml-batch", "BentoML batchable", [*bento, "bentoml_fw:Batched"], "/predict",
          "/readyz", "instances", bento_env),
        S("fastapi", "FastAPI+framework",
          [str(fastapi_py), str(FW_DIR / "fastapi_native.py"), flavor,
           str(cache / fwmodels.FILES[flavor]), str(spec.features), "{port}"],
          "/predict", "/health", "instances", srv.with_venv_path(fastapi_py, {})),
    ]  # fmt: skip


def bench_serving(
    cache: Path, spec: Any, flavors: list[str], work: Path, dirs: dict[str, str], cfg: Any
) -> dict[str, Any]:
    X = test_rows(cache, spec)
    expected = json.loads((cache / "labels.json").read_text())
    results = {}
    for flavor in flavors:
        prep = {"bodies": write_bodies(work, X, flavor), "expected": expected}
        servers = servers_for(flavor, cache, work, dirs[flavor], spec)
        servers = [s for s in servers if not cfg.only or s.key in cfg.only]
        title = fwmodels.TITLES[flavor]
        results[flavor] = srv.bench_servers(flavor, title, servers, work, prep, cfg)
    return results


# -- the optimizer table (shipyard models optimize) ---------------------------------------------


OPTIMIZATIONS = (
    ("--quantize dynamic", ["--quantize", "dynamic"]),
    ("--quantize static", ["--quantize", "static", "--calibration", "{train}"]),
    ("--prune", ["--prune"]),
    ("--distill", ["--distill", "--train-data", "{train}"]),
)
OPTIMIZE_TRAIN_ROWS = 20_000  # training/calibration rows handed to optimize (bounded time)


def champion_version(name: str, work: Path) -> int:
    env = {**os.environ, "SHIPYARD_HOME": str(work / "shipyard")}
    cmd = [sys.executable, "-m", "shipyard", "models", "show", name, "--json"]
    doc = json.loads(subprocess.run(cmd, env=env, capture_output=True, check=True).stdout)
    return max(int(v["version"]) for v in doc["versions"])


def optimizer_table(cache: Path, spec: Any, work: Path, flavors: list[str]) -> dict[str, Any]:
    """THE OPTIMIZER TABLE: `shipyard models optimize` on every flavor's served version with
    each technique, held-out data = the 10,000 test rows with their label, training and
    calibration rows = the first OPTIMIZE_TRAIN_ROWS training rows; from each new version's
    report: accuracy (headline metric) delta, p50 latency per row old → new, size old → new.
    A technique that does not apply (e.g. pruning an MLP) is reported with its one-line
    refusal."""
    env = {**os.environ, "SHIPYARD_HOME": str(work / "shipyard")}
    cmd = [sys.executable, "-m", "shipyard", "models", "optimize", "--help"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        return {"available": False, "note": "`shipyard models optimize` is not available yet"}
    X, y, X_test, y_test = fwmodels.make_data(spec)
    held, train = work / "holdout.parquet", work / "train.parquet"
    X_test.assign(y=y_test).to_parquet(held)
    X.iloc[:OPTIMIZE_TRAIN_ROWS].assign(y=y[:OPTIMIZE_TRAIN_ROWS]).to_parquet(train)
    rows = []
    for flavor in flavors:
        uri = f"models:/fw_{flavor}/{champion_version(f'fw_{flavor}', work)}"
        for label, opts in OPTIMIZATIONS:
            argv = [a.replace("{train}", str(train)) for a in opts]
            cmd = [sys.executable, "-m", "shipyard", "models", "optimize", uri, *argv]
            cmd += ["--data", str(held), "--target", "y", "--json"]
            log(f"optimize {flavor} {label}")
            row: dict[str, Any] = {"flavor": flavor, "technique": label}
            try:
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
                if done.returncode not in (0, 1):  # 1: made, but its quality gates failed
                    row["error"] = (done.stderr.strip().splitlines() or ["?"])[-1][:160]
                else:
                    row["report"] = json.loads(done.stdout)["report"]
            except (subprocess.TimeoutExpired, ValueError, KeyError) as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"[:160]
            rows.append(row)
    return {"available": True, "rows": rows, "train_rows": OPTIMIZE_TRAIN_ROWS}


# -- main -------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20k rows, 1 round x 2 s per cell")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--rows", type=int, help="training rows (default 100000, quick 20000)")
    p.add_argument("--trees", type=int, default=300, help="trees per booster (default 300)")
    p.add_argument("--depth", type=int, default=6, help="tree depth (default 6)")
    p.add_argument("--rounds", type=int, help="rounds per cell (default 3, quick 1)")
    p.add_argument("--seconds", type=int, help="seconds per measurement (default 4, quick 2)")
    p.add_argument("--reps", type=int, default=5, help="timed log_model repetitions (default 5)")
    p.add_argument("--flavors", default="xgboost,lightgbm,torch", help="comma-separated")
    p.add_argument("--only", default="", help="comma-separated server keys, e.g. shipyard,mlflow")
    p.add_argument("--no-serving", action="store_true", help="parity and log_model only")
    p.add_argument("--reinstall", action="store_true", help="pip install -U the peer venvs")
    p.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    return p.parse_args()


def setup(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """Peer venvs made (torch added when its rows run); the flavors to run and why torch's
    rows are skipped (None when they run)."""
    flavors = [f for f in args.flavors.split(",") if f]
    skip_torch = torch_flavor() if "torch" in flavors else None
    if skip_torch:
        flavors.remove("torch")
    for name, packages in PEER_VENVS.items():
        make_venv(name, packages, upgrade=args.reinstall)
        if "torch" in flavors and not has_package(venv_python(name), "torch"):
            subprocess.run(
                [venv_python(name), "-m", "pip", "install", "-q", TORCH_WHEEL], check=True
            )
    return flavors, skip_torch


def main() -> None:
    args = parse_args()
    python = srv.shipyard_python()
    if Path(sys.prefix).resolve() != python.parent.parent.resolve():
        os.execv(python, [str(python), __file__, *sys.argv[1:]])
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    flavors, skip_torch = setup(args)
    spec = fwmodels.DataSpec(
        rows=args.rows or (20_000 if args.quick else 100_000), trees=args.trees, depth=args.depth
    )
    cfg = srv.Config(rounds=1, seconds=2, two_workers=False) if args.quick else srv.Config()
    cfg = replace(cfg, two_workers=False, only=tuple(k for k in args.only.split(",") if k))
    if args.rounds:
        cfg = replace(cfg, rounds=max(1, args.rounds))
    if args.seconds:
        cfg = replace(cfg, seconds=max(1, args.seconds))
    started, load_start = time.monotonic(), srv.loadavg()
    log(f"load average at start: {load_start}")
    cache = cached_models(spec, flavors)
    work = Path(tempfile.mkdtemp(prefix="shipyard-fw-bench-"))
    os.environ["SHIPYARD_HOME"] = str(work / "shipyard")
    try:
        log("timing log_model + register (shipyard, then MLflow)")
        logging = {"shipyard": time_shipyard_logging(cache, spec, flavors, args.reps)}
        peers = run_peer_setup(cache, work, flavors, args.reps)
        logging["mlflow"] = peers["seconds"]
        log("parity of shipyard's served outputs")
        parity_rows = parity(cache, spec, flavors, work)
        serving = (
            {} if args.no_serving else bench_serving(cache, spec, flavors, work, peers["dirs"], cfg)
        )
        optimizer = optimizer_table(cache, spec, work, flavors)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "spec": spec.__dict__, "config": cfg.__dict__, "cpus": os.cpu_count(),
        "loadavg": {"start": load_start, "end": srv.loadavg()},
        "elapsed_s": round(time.monotonic() - started, 1),
        "versions": {
            k: srv.versions(python if k == "shipyard" else venv_python(k), pkgs)
            for k, pkgs in VERSION_PACKAGES.items()
        },
        "skipped": {"torch": skip_torch} if skip_torch else {},
        "serving": serving, "parity": parity_rows, "logging": logging, "optimizer": optimizer,
    }  # fmt: skip
    saved = CACHE_ROOT / "last-report.json"
    saved.write_text(json.dumps(report, indent=2, default=str))
    log(f"results saved in {saved}")
    print(json.dumps(report, indent=2, default=str) if args.json else fwreport.render(report))


if __name__ == "__main__":
    main()
