"""Drift benchmark: shipyard and Evidently side by side, on the same generated data.

    python3.11 benchmarks/drift.py                               # 10k, 100k and 1M rows
    python3.11 benchmarks/drift.py --sizes 10000,100000 --json   # the results as JSON

Evidently is not a dependency of shipyard. The first run creates `benchmarks/.venv-drift`,
installs Evidently 0.7.x, pandas, numpy and this repository (editable) into it, and re-executes
itself there. For each size the parent generates the data once (fixed seed, untimed) and writes
it to Parquet; each side then runs in its own fresh subprocess, which reads the files, warms up
on a small slice (untimed), measures, and sends its figures back as one JSON line on stdout.

Sides:
  evidently      `Report([DataDriftPreset()], include_tests=True).run(current, reference)`,
                 the per-column drift flags read from the snapshot's tests
  shipyard-raw   `detect_drift(reference_df, current_df)` (alpha 0.05, Holm)
  shipyard-live  `detect_drift(reference_profile, current_df)`; the parent computes
                 `Profile.from_frame(reference_df)` beforehand, untimed, and stores it as JSON, as
                 training would; this side loads that profile and never sees the reference frame

Data: 20 numeric and 5 categorical columns, reference and current n rows each. 7 columns drift:
5 numeric shifted by 0.1 standard deviation (normal, lognormal, exponential, gamma, beta) and 2
categorical with slightly changed frequencies; the other 18 are drawn from the same distribution
on both sides.

Figures per side and size: wall time (`time.perf_counter`) and CPU time (`time.process_time`,
all threads, plus children) of the drift verdict for all columns, the median over `--reps`
repetitions; peak RSS while measuring (VmHWM: `ru_maxrss` without the parent's peak that it
inherits at exec), and its increase over the RSS after imports, data loading and the warm-up
(the high-water mark is reset there via /proc/self/clear_refs); columns found (of 7) and false
alarms (of 18).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV = BENCH_DIR / ".venv-drift"
VENV_PYTHON = VENV / "bin" / "python"
RESULT_MARKER = "BENCH_RESULT "
# Evidently 0.7.x imports pandas.core.dtypes.common.infer_dtype_from_object, gone in pandas 3.
REQUIREMENTS = ["evidently>=0.7,<0.8", "pandas<3", "numpy"]

SIDES = ("evidently", "shipyard-raw", "shipyard-live")
LABELS = {
    "evidently": "Evidently",
    "shipyard-raw": "shipyard raw",
    "shipyard-live": "shipyard live",
}
SEED = 20_240_601
SHIFT_SD = 0.1  # the drifted numeric columns move by this many standard deviations
WARMUP_ROWS = 5_000
TARGET_ROWS = 1_000_000
TARGETS = {"raw_speedup": 50.0, "live_speedup": 150.0, "memory_ratio": 0.5}
QUIET_LOAD = 1.5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the data both sides see ---------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "numeric" or "categorical"
    drifted: bool


def _numeric(rng: Any, family: str, n: int) -> tuple[Any, float]:
    """n draws from a distribution family, and the family's standard deviation."""
    import numpy as np

    if family == "normal":
        return rng.normal(10.0, 2.0, n), 2.0
    if family == "lognormal":
        s = 0.5
        return rng.lognormal(0.0, s, n), float(np.sqrt((np.exp(s * s) - 1) * np.exp(s * s)))
    if family == "exponential":
        return rng.exponential(1.0, n), 1.0
    if family == "gamma":
        return rng.gamma(2.0, 1.5, n), float(np.sqrt(2.0) * 1.5)
    if family == "beta":
        a, b = 2.0, 5.0
        return rng.beta(a, b, n), float(np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))))
    if family == "uniform":
        return rng.uniform(-1.0, 1.0, n), float(2.0 / np.sqrt(12.0))
    if family == "student_t":
        return rng.standard_t(5.0, n), float(np.sqrt(5.0 / 3.0))
    if family == "poisson":  # integer-valued: many ties
        return rng.poisson(3.0, n).astype(np.float64), float(np.sqrt(3.0))
    raise ValueError(family)


def _zipf(k: int) -> list[float]:
    w = [1.0 / (i + 1) for i in range(k)]
    return [x / sum(w) for x in w]


# (name, family) — drifted columns by a mean shift of SHIFT_SD standard deviations
NUMERIC_DRIFTED = ["normal", "lognormal", "exponential", "gamma", "beta"]
NUMERIC_STABLE = [
    "normal",
    "normal",
    "lognormal",
    "lognormal",
    "exponential",
    "exponential",
    "gamma",
    "gamma",
    "beta",
    "uniform",
    "uniform",
    "student_t",
    "student_t",
    "poisson",
    "poisson",
]
# (name, reference frequencies, current frequencies)
CATEGORICAL_DRIFTED = [
    ("cat4_drift", [0.5, 0.3, 0.15, 0.05], [0.45, 0.32, 0.17, 0.06]),
    (
        "cat8_drift",
        [0.30, 0.20, 0.15, 0.12, 0.10, 0.06, 0.04, 0.03],
        [0.27, 0.21, 0.16, 0.12, 0.10, 0.07, 0.04, 0.03],
    ),
]
CATEGORICAL_STABLE = [("cat3", _zipf(3)), ("cat10", _zipf(10)), ("cat50", _zipf(50))]


def generate(n: int) -> tuple[Any, Any, list[Column]]:
    """Reference and current frames of n rows each, and which columns drift."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([SEED, n])
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    columns: list[Column] = []
    for family in NUMERIC_DRIFTED:
        name = f"{family}_drift"
        ref[name], sd = _numeric(rng, family, n)
        cur[name] = _numeric(rng, family, n)[0] + SHIFT_SD * sd
        columns.append(Column(name, "numeric", True))
    for i, family in enumerate(NUMERIC_STABLE):
        name = f"{family}_{i:02d}"
        ref[name] = _numeric(rng, family, n)[0]
        cur[name] = _numeric(rng, family, n)[0]
        columns.append(Column(name, "numeric", False))

    def categories(p: list[float]) -> Any:
        labels = np.array([f"c{i}" for i in range(len(p))], dtype=object)
        return labels[rng.choice(len(p), size=n, p=np.asarray(p) / sum(p))]

    for name, p_ref, p_cur in CATEGORICAL_DRIFTED:
        ref[name], cur[name] = categories(p_ref), categories(p_cur)
        columns.append(Column(name, "categorical", True))
    for name, p in CATEGORICAL_STABLE:
        ref[name], cur[name] = categories(p), categories(p)
        columns.append(Column(name, "categorical", False))
    return pd.DataFrame(ref), pd.DataFrame(cur), columns


def write_data(n: int, directory: Path) -> dict[str, Any]:
    """Write both samples to Parquet, and the reference's profile to JSON as training would
    store it (shipyard-live reads that profile and never sees the reference frame)."""
    import pandas as pd

    from shipyard.monitoring import Profile

    ref, cur, columns = generate(n)
    ref.to_parquet(directory / "reference.parquet", index=False)
    cur.to_parquet(directory / "current.parquet", index=False)
    (directory / "columns.json").write_text(json.dumps([asdict(c) for c in columns]))
    del ref, cur
    ref = pd.read_parquet(directory / "reference.parquet")
    started = time.perf_counter()
    profile = json.dumps(Profile.from_frame(ref).to_dict())
    profile_s = time.perf_counter() - started
    (directory / "reference_profile.json").write_text(profile)
    return {"columns": columns, "profile_s": profile_s, "profile_kb": len(profile) / 1024}


# -- one side each (in its own process) ----------------------------------------------------------


def rss_mb() -> float:
    """Resident set size now."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """Peak RSS of this process: VmHWM, the high-water mark that `ru_maxrss` reports too, but
    without the floor `ru_maxrss` inherits across exec. subprocess starts workers with vfork,
    so at exec a worker's ru_maxrss takes the parent's peak (the parent that just generated a
    million rows), and clearing the high-water mark below cannot lower it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak() -> bool:
    """Reset the RSS high-water mark (VmHWM) to the current RSS (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def evidently_side(ref: Any, cur: Any, columns: list[Column]) -> tuple[Callable, str]:
    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[c.name for c in columns if c.kind == "numeric"],
        categorical_columns=[c.name for c in columns if c.kind == "categorical"],
    )

    def verdict(ref: Any = ref, cur: Any = cur) -> dict[str, dict[str, Any]]:
        snapshot = Report([DataDriftPreset()], include_tests=True).run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        out: dict[str, dict[str, Any]] = {}
        result = snapshot.dict()
        for metric in result["metrics"]:
            config = metric["config"]
            if config.get("type", "").endswith("ValueDrift"):
                out[config["column"]] = {
                    "method": config.get("method"),
                    "threshold": config.get("threshold"),
                    "score": metric["value"],
                }
        for test in result["tests"]:
            column = test["metric_config"]["params"].get("column")
            if column in out:  # the per-column test fails when the column drifts
                out[column]["drifted"] = test["status"] == "FAIL"
        return out

    return verdict, evidently.__version__


def shipyard_side(reference: Any, cur: Any) -> Callable:
    from shipyard.monitoring import detect_drift

    def verdict(reference: Any = reference, cur: Any = cur) -> dict[str, dict[str, Any]]:
        report = detect_drift(reference, cur)
        return {
            name: {
                "test": c.test,
                "statistic": c.statistic,
                "p_adjusted": c.p_adjusted,
                "effect_size": c.effect_size,
                "drifted": c.drifted,
            }
            for name, c in report.columns.items()
        }

    return verdict


def run_side(side: str, data_dir: Path, reps: int) -> dict[str, Any]:
    started = time.perf_counter()
    import numpy as np
    import pandas as pd
    import scipy

    import shipyard

    if side == "evidently":
        import evidently  # noqa: F401  (imports are not timed)
    else:
        import shipyard.monitoring
    import_s = time.perf_counter() - started

    columns = [Column(**c) for c in json.loads((data_dir / "columns.json").read_text())]
    started = time.perf_counter()
    if side == "shipyard-live":
        from shipyard.monitoring import Profile

        profile = Profile.from_dict(json.loads((data_dir / "reference_profile.json").read_text()))
    else:
        ref = pd.read_parquet(data_dir / "reference.parquet")
    cur = pd.read_parquet(data_dir / "current.parquet")
    load_s = time.perf_counter() - started

    versions = {
        "shipyard": shipyard.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }
    if side == "evidently":
        warm, _ = evidently_side(ref.head(WARMUP_ROWS), cur.head(WARMUP_ROWS), columns)
        verdict, versions["evidently"] = evidently_side(ref, cur, columns)
    elif side == "shipyard-raw":
        warm = shipyard_side(ref.head(WARMUP_ROWS), cur.head(WARMUP_ROWS))
        verdict = shipyard_side(ref, cur)
    else:
        warm = shipyard_side(profile, cur.head(WARMUP_ROWS))
        verdict = shipyard_side(profile, cur)
    warm()  # lazy imports and first-call costs, untimed
    del warm

    gc.collect()
    process_peak = peak_mb()
    base = rss_mb()
    reset = reset_peak()
    walls: list[float] = []
    cpus: list[float] = []
    result: dict[str, dict[str, Any]] = {}
    for _ in range(reps):  # the last repetition's verdict is the one reported
        result = {}
        gc.collect()
        cpu0, child0, wall0 = time.process_time(), children_cpu(), time.perf_counter()
        result = verdict()
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0 + children_cpu() - child0)
    peak = peak_mb()
    return {
        "side": side,
        "rows": len(cur),
        "versions": versions,
        "import_s": import_s,
        "load_s": load_s,
        "reps": len(walls),
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "wall_all": walls,
        "cpu_all": cpus,
        "baseline_rss_mb": base,
        "peak_mb": peak if reset else max(peak, process_peak),
        "increase_mb": max(peak - base, 0.0),
        "process_peak_mb": max(peak, process_peak),
        "peak_reset": reset,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "columns": result,
    }


# -- the parent: venv, data, subprocesses, tables ------------------------------------------------


def in_bench_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv(reinstall: bool) -> None:
    """Create benchmarks/.venv-drift with Evidently 0.7.x and this repo (editable), if needed."""
    if not VENV_PYTHON.exists():
        base = shutil.which("python3.11") or (
            sys.executable if sys.version_info >= (3, 11) else None
        )
        if base is None:
            sys.exit("need python3.11 (or run this script with Python >= 3.11)")
        log(f"creating {VENV} with {base}")
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
        reinstall = True
    probe = (
        "import evidently, pandas, pyarrow, shipyard, sys; "
        "ok = evidently.__version__.startswith('0.7.') and "
        f"shipyard.__file__.startswith({str(REPO / 'src')!r}); "
        "sys.exit(0 if ok else 1)"
    )
    ok = subprocess.run([str(VENV_PYTHON), "-c", probe], capture_output=True, check=False)
    if reinstall or ok.returncode != 0:
        log(f"installing {' '.join(REQUIREMENTS)} and shipyard (editable) into {VENV.name}")
        pip = [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "--upgrade", *REQUIREMENTS, "-e", str(REPO)], check=True)
    version = subprocess.run(
        [str(VENV_PYTHON), "-c", "import evidently; print(evidently.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    log(f"evidently {version} in {VENV.name}")


def wait_for_quiet(max_wait: float) -> float:
    """Wait (up to max_wait seconds) until the 1-minute load average is below QUIET_LOAD."""
    deadline = time.monotonic() + max_wait
    load = os.getloadavg()[0]
    if load >= QUIET_LOAD and max_wait > 0:
        log(f"  load {load:.2f} ≥ {QUIET_LOAD}: waiting up to {max_wait:.0f} s")
    while load >= QUIET_LOAD and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    return load


def spawn_side(side: str, data_dir: Path, reps: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", side]
    cmd += ["--data", str(data_dir), "--reps", str(reps)]
    env = dict(os.environ, DO_NOT_TRACK="1")  # no Evidently usage telemetry
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True, timeout=7200)
    elapsed = time.perf_counter() - started
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or not lines:
        log(proc.stdout[-4000:])
        log(proc.stderr[-8000:])
        sys.exit(f"the {side} side failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARKER) :])
    result["process_s"] = elapsed
    return result


def score(result: dict[str, Any], columns: list[Column]) -> None:
    """Add found / false alarms against the known drifted columns."""
    flagged = {name for name, c in result["columns"].items() if c.get("drifted")}
    truth = {c.name for c in columns if c.drifted}
    result["found"] = len(flagged & truth)
    result["missed"] = sorted(truth - flagged)
    result["false_alarms"] = sorted(flagged - truth)
    result["n_drifted"] = len(truth)
    result["n_stable"] = len(columns) - len(truth)


def default_reps(n: int, side: str) -> int:
    """Timed calls per side: fewer for Evidently at large sizes (a call takes minutes)."""
    if side == "evidently":
        return 5 if n <= 10_000 else 3 if n <= 100_000 else 1
    return 5 if n <= 100_000 else 3


def build_report(sizes: list[int], reps: int | None, max_wait: float) -> dict[str, Any]:
    report: dict[str, Any] = {"loadavg_start": os.getloadavg(), "sizes": {}}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix=f"drift-bench-{n}-") as tmp:
            data_dir = Path(tmp)
            started = time.perf_counter()
            data = write_data(n, data_dir)
            columns = data["columns"]
            log(f"{n:,} rows: data written in {time.perf_counter() - started:.1f} s (untimed)")
            per_side: dict[str, Any] = {}
            for side in SIDES:
                side_reps = max(reps if reps is not None else default_reps(n, side), 1)
                load = wait_for_quiet(max_wait)
                log(f"  {side}: 1-min load {load:.2f}")
                result = spawn_side(side, data_dir, side_reps)
                result["loadavg_before"] = load
                score(result, columns)
                log(
                    f"  {side}: wall {result['wall_s']:.3f} s, CPU {result['cpu_s']:.3f} s, "
                    f"peak {result['peak_mb']:.0f} MB, found {result['found']}/7, "
                    f"false alarms {len(result['false_alarms'])}"
                )
                per_side[side] = result
        report["sizes"][str(n)] = {
            "sides": per_side,
            "ratios": ratios(per_side),
            "profile_s": data["profile_s"],
            "profile_kb": data["profile_kb"],
        }
    report["loadavg_end"] = os.getloadavg()
    report["targets"] = check_targets(report)
    first = next(iter(report["sizes"].values()))["sides"]
    report["versions"] = {
        **first["shipyard-raw"]["versions"],
        "evidently": first["evidently"]["versions"]["evidently"],
    }
    return report


def ratios(sides: dict[str, Any]) -> dict[str, float]:
    ev = sides["evidently"]
    out = {}
    for short, side in (("raw", "shipyard-raw"), ("live", "shipyard-live")):
        sy = sides[side]
        out[f"{short}_wall"] = ev["wall_s"] / sy["wall_s"]
        out[f"{short}_cpu"] = ev["cpu_s"] / sy["cpu_s"]
        out[f"{short}_peak"] = sy["peak_mb"] / ev["peak_mb"]
        out[f"{short}_increase"] = sy["increase_mb"] / max(ev["increase_mb"], 1e-9)
    return out


def check_targets(report: dict[str, Any]) -> dict[str, Any] | None:
    entry = report["sizes"].get(str(TARGET_ROWS))
    if entry is None:
        return None
    r, sides = entry["ratios"], entry["sides"]

    def quality(side: str) -> bool:
        s = sides[side]
        return s["found"] == s["n_drifted"] and not s["false_alarms"]

    return {
        "raw_wall": r["raw_wall"] >= TARGETS["raw_speedup"],
        "raw_cpu": r["raw_cpu"] >= TARGETS["raw_speedup"],
        "live_wall": r["live_wall"] >= TARGETS["live_speedup"],
        "live_cpu": r["live_cpu"] >= TARGETS["live_speedup"],
        "raw_peak": r["raw_peak"] <= TARGETS["memory_ratio"],
        "live_peak": r["live_peak"] <= TARGETS["memory_ratio"],
        "raw_quality": quality("shipyard-raw"),
        "live_quality": quality("shipyard-live"),
    }


def print_tables(report: dict[str, Any]) -> None:
    v = report["versions"]
    print(
        f"evidently {v['evidently']}, shipyard {v['shipyard']}, pandas {v['pandas']}, "
        f"numpy {v['numpy']}, scipy {v['scipy']}, Python {v['python']}, "
        f"{os.cpu_count()} CPUs"
    )
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*report["loadavg_start"]))
    for n, entry in report["sizes"].items():
        sides = entry["sides"]
        print()
        print(f"== {int(n):,} rows each in reference and current; 25 columns (7 drift) ==")
        print(
            f"{'side':<14} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'+MB':>7} "
            f"{'found/7':>8} {'false/18':>9} {'load':>5} {'runs':>4}"
        )
        for side in SIDES:
            s = sides[side]
            print(
                f"{LABELS[side]:<14} {s['wall_s']:>8.3f} {s['cpu_s']:>8.3f} "
                f"{s['peak_mb']:>8.0f} {s['increase_mb']:>7.0f} "
                f"{s['found']:>6}/{s['n_drifted']} {len(s['false_alarms']):>6}/{s['n_stable']}"
                f" {s['loadavg_before']:>5.2f} {s['reps']:>4}"
            )
        r = entry["ratios"]
        print(
            f"Evidently ÷ shipyard time: raw {r['raw_wall']:.1f}x wall, {r['raw_cpu']:.1f}x CPU; "
            f"live {r['live_wall']:.1f}x wall, {r['live_cpu']:.1f}x CPU"
        )
        print(
            f"shipyard ÷ Evidently memory: raw peak {r['raw_peak']:.2f}, "
            f"increase {r['raw_increase']:.3f}; "
            f"live peak {r['live_peak']:.2f}, increase {r['live_increase']:.3f}"
        )
        for side in SIDES:
            s = sides[side]
            if s["missed"] or s["false_alarms"]:
                print(
                    f"  {LABELS[side]}: missed {', '.join(s['missed']) or '-'}; "
                    f"false alarms {', '.join(s['false_alarms']) or '-'}"
                )
        methods: dict[str, int] = {}
        for c in sides["evidently"]["columns"].values():
            key = f"{c['method']}, threshold {c['threshold']}"
            methods[key] = methods.get(key, 0) + 1
        print("  Evidently's tests: " + ", ".join(f"{k} ({v} columns)" for k, v in methods.items()))
        print(
            f"  times are medians of 'runs' calls; the reference profile took "
            f"{entry['profile_s']:.2f} s to build (untimed), {entry['profile_kb']:.0f} kB as JSON"
        )
    targets = report["targets"]
    print()
    if targets is None:
        print(f"targets are set at {TARGET_ROWS:,} rows, which were not run")
    else:
        r = report["sizes"][str(TARGET_ROWS)]["ratios"]
        sides = report["sizes"][str(TARGET_ROWS)]["sides"]

        def mark(ok: bool) -> str:
            return "met" if ok else "MISSED"

        print(f"targets at {TARGET_ROWS:,} rows:")
        print(
            f"  raw frames ≥ {TARGETS['raw_speedup']:.0f}x faster:    "
            f"wall {r['raw_wall']:.1f}x {mark(targets['raw_wall'])}, "
            f"CPU {r['raw_cpu']:.1f}x {mark(targets['raw_cpu'])}"
        )
        print(
            f"  with profile ≥ {TARGETS['live_speedup']:.0f}x faster: "
            f"wall {r['live_wall']:.1f}x {mark(targets['live_wall'])}, "
            f"CPU {r['live_cpu']:.1f}x {mark(targets['live_cpu'])}"
        )
        print(
            f"  peak memory ≤ ½ of Evidently's: raw {r['raw_peak']:.2f} "
            f"{mark(targets['raw_peak'])}, live {r['live_peak']:.2f} {mark(targets['live_peak'])}"
        )
        for short, side in (("raw", "shipyard-raw"), ("live", "shipyard-live")):
            s = sides[side]
            print(
                f"  7/7 found, 0 false alarms ({short}): {s['found']}/7, "
                f"{len(s['false_alarms'])} {mark(targets[f'{short}_quality'])}"
            )
    print("load average at end:   {:.2f} {:.2f} {:.2f}".format(*report["loadavg_end"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="rows per sample")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--reps", type=int, default=None, help="timed runs per side (default 5/3/1 by size)"
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=180.0,
        help=f"seconds to wait for the 1-minute load to drop below {QUIET_LOAD} before each side",
    )
    parser.add_argument("--reinstall", action="store_true", help="reinstall the benchmark venv")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = run_side(args.worker, args.data, args.reps)
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return

    if not in_bench_venv():
        ensure_venv(args.reinstall)
        argv_out = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--reinstall"]
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *argv_out])

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    log("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    report = build_report(sizes, args.reps, args.max_wait)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_tables(report)


if __name__ == "__main__":
    main()
