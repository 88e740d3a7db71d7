"""Feature store benchmark: shipyard and Feast side by side, on the same generated data.

    python3.11 benchmarks/features.py                 # the full run (issue #7's sizes)
    python3.11 benchmarks/features.py --small         # 1,000 entities, 10,000-row entity frame
    python3.11 benchmarks/features.py --skip-feast-file   # Feast's file store is slow (~20 s)

Feast is not a dependency of shipyard. The first run creates `benchmarks/.venv-features`,
installs Feast 0.67 (with its duckdb and redis extras) and this repository (editable, without
its model-serving dependencies) into it, and re-executes itself there. The parent generates the
data once (fixed seed, untimed) as Parquet; each measurement runs in its own fresh subprocess,
which sets its store up and warms it (untimed), measures, and prints one JSON line.

Data: 10,000 entities x 100 event times x 10 float features (1,000,000 rows), event times in
the last 100 hours; an entity frame of 100,000 rows (random entity, random time in that range,
duplicates included).

Figures:
  point-in-time join   wall time (median of 3 runs; 1 for Feast's slow file store) and peak RSS
                       growth (VmHWM over the RSS before a 1,000-row warm-up join) of the
                       100k x 1M join to a pandas DataFrame; rows out and rows lost
                       sides: shipyard (DuckDB), Feast duckdb offline store, Feast file store
  materialize          wall time to load the latest value of every entity from the 1M rows
                       into a fresh online store (SQLite and Redis, each side); median of 3
                       runs in one process, and the first (cold) run
  online lookup        p50 / p99 latency, in-process, of 10 features for 1 entity and for 100
                       entities (SQLite and Redis, each side), over --lookups calls (a quarter
                       of that for 100 entities); the median of 3 rounds
  CLI                  `shipyard features --help` wall time (median of 5)

Ratios are Feast / shipyard (above 1: shipyard is faster). The load average is printed
before and after: the machine is shared, so read figures next to it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV = BENCH_DIR / ".venv-features"
VENV_PYTHON = VENV / "bin" / "python"
RESULT_MARKER = "BENCH_RESULT "
REQUIREMENTS = [
    "feast[duckdb,redis]==0.67.0",
    "hiredis",
    "orjson",
    "pydantic-settings",
    "alembic",
    "typer",
]
SEED = 20_261_122
FEATURES = [f"f{i}" for i in range(10)]
TTL_DAYS = 30
ROUNDS = 3


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "?"


# -- data ----------------------------------------------------------------------------------------


def generate(data: Path, entities: int, times: int, entity_rows: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(SEED)
    end = pd.Timestamp.now(tz="UTC").floor("s")
    start = end - pd.Timedelta(hours=times)
    n = entities * times
    ids = np.repeat(np.arange(entities, dtype=np.int64), times)
    offsets = np.tile(np.arange(times, dtype=np.int64) * 3600, entities)
    offsets += rng.integers(0, 3600, n)
    frame = pd.DataFrame(
        {
            "driver_id": ids,
            # microseconds: Feast's duckdb store cannot cast nanosecond aware timestamps
            "event_timestamp": (start + pd.to_timedelta(offsets, unit="s")).astype(
                "datetime64[us, UTC]"
            ),
            **{f: rng.random(n) for f in FEATURES},
        }
    )
    frame.to_parquet(data / "stats.parquet", row_group_size=100_000)
    span = int((end - start).total_seconds())
    pd.DataFrame(
        {
            "driver_id": rng.integers(0, entities, entity_rows),
            "event_timestamp": (
                start + pd.to_timedelta(rng.integers(0, span, entity_rows), unit="s")
            ).astype("datetime64[us, UTC]"),
        }
    ).to_parquet(data / "entities.parquet")
    (data / "meta.json").write_text(
        json.dumps({"start": start.isoformat(), "end": end.isoformat(), "entities": entities})
    )


# -- measuring -----------------------------------------------------------------------------------


def reset_peak() -> int:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return rss_kb("VmRSS")


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": statistics.median(samples) * 1000,
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000,
    }


# -- shipyard ------------------------------------------------------------------------------------


def shipyard_store(work: Path, data: Path, redis_url: str | None, tag: str = "") -> Any:
    import datetime as dt

    from shipyard.config import Settings
    from shipyard.features import Entity, FeatureStore, FeatureView, Source
    from shipyard.stores.online import RedisOnlineStore

    settings = Settings(home=work / "home", user="bench", redis_url=redis_url)
    online = None
    if redis_url:
        online = RedisOnlineStore(redis_url, prefix=f"bench-{os.getpid()}-{tag}")
    store = FeatureStore(settings, online=online, registry_ttl_seconds=3600)
    driver = Entity("driver", ["driver_id"])
    view = FeatureView(
        "driver_stats",
        entity=driver,
        source=Source.parquet(data / "stats.parquet"),
        features=dict.fromkeys(FEATURES, "double"),
        ttl=dt.timedelta(days=TTL_DAYS),
    )
    store.apply([driver, view])
    return store


def feast_store(work: Path, data: Path, offline: str, online: str, tag: str = "") -> Any:
    import datetime as dt

    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64

    online_cfg: dict[str, Any] = {"type": "sqlite", "path": str(work / "online.db")}
    if online == "redis":
        online_cfg = {"type": "redis", "connection_string": "127.0.0.1:6379"}
    config = RepoConfig(
        project=f"bench{os.getpid()}{tag}",
        registry=str(work / "registry.db"),
        provider="local",
        offline_store={"type": offline},
        online_store=online_cfg,
        entity_key_serialization_version=3,
        repo_path=str(work),
    )
    store = FeatureStore(config=config)
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="driver_stats",
        entities=[driver],
        ttl=dt.timedelta(days=TTL_DAYS),
        schema=[Field(name=f, dtype=Float64) for f in FEATURES],
        source=FileSource(path=str(data / "stats.parquet"), timestamp_field="event_timestamp"),
        online=True,
    )
    store.apply([driver, view])
    return store


def run_pit(side: str, data: Path, work: Path, reps: int) -> dict[str, Any]:
    import pandas as pd

    entity_df = pd.read_parquet(data / "entities.parquet")
    refs = [f"driver_stats:{f}" for f in FEATURES]
    if side == "shipyard":
        store = shipyard_store(work, data, None)

        def join(df: pd.DataFrame) -> pd.DataFrame:
            return store.get_training_frame(df, refs)

    else:
        fstore = feast_store(work, data, "duckdb" if side == "feast-duckdb" else "file", "sqlite")

        def join(df: pd.DataFrame) -> pd.DataFrame:
            return fstore.get_historical_features(entity_df=df, features=refs).to_df()

    # the peak counts from before the warm-up: what a warm-up leaves behind (caches, a
    # database holding the source's blocks) is part of what the join costs
    base = reset_peak()
    join(entity_df.iloc[:1000].copy())  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = join(entity_df)
        times.append(time.perf_counter() - t0)
    peak = rss_kb("VmHWM")
    return {
        "seconds": statistics.median(times),
        "all_seconds": times,
        "peak_mb": max(peak - base, 0) / 1024,
        "rows_in": len(entity_df),
        "rows_out": len(out),
        "lost_rows": max(len(entity_df) - len(out), 0),
        "nonnull_f0": int(out["f0"].notna().sum()),
    }


def run_online(side: str, data: Path, work: Path, lookups: int) -> dict[str, Any]:
    """Materialize into a fresh store `ROUNDS` times (the median counts), then time lookups on
    the last one."""
    import random

    import pandas as pd

    meta = json.loads((data / "meta.json").read_text())
    start = pd.Timestamp(meta["start"]).to_pydatetime()
    end = (pd.Timestamp(meta["end"]) + pd.Timedelta(seconds=1)).to_pydatetime()
    refs = [f"driver_stats:{f}" for f in FEATURES]
    backend = side.split("-")[-1]

    def make(rep: int) -> tuple[Any, Any, Any]:
        where = work / f"rep{rep}"
        where.mkdir()
        if side.startswith("shipyard"):
            url = "redis://127.0.0.1:6379/0" if backend == "redis" else None
            store = shipyard_store(where, data, url, tag=str(rep))

            def materialize() -> None:
                store.materialize(start, end)

            def lookup(rows: list[dict[str, Any]]) -> Any:
                return store.get_online_features(refs, rows)

            def cleanup() -> None:
                if backend == "redis":
                    store.online.drop("driver_stats@1")

            return materialize, lookup, cleanup
        fstore = feast_store(where, data, "duckdb", backend, tag=str(rep))

        def feast_materialize() -> None:
            fstore.materialize(start, end)

        def feast_lookup(rows: list[dict[str, Any]]) -> Any:
            return fstore.get_online_features(features=refs, entity_rows=rows).to_dict()

        return feast_materialize, feast_lookup, fstore.teardown

    times = []
    for rep in range(ROUNDS):
        materialize, lookup, cleanup = make(rep)
        t0 = time.perf_counter()
        materialize()
        times.append(time.perf_counter() - t0)
        if rep < ROUNDS - 1:
            cleanup()
    mat = statistics.median(times)
    rng = random.Random(SEED)
    n = int(meta["entities"])
    check = lookup([{"driver_id": 3}])
    assert check["f0"][0] is not None, check
    result: dict[str, Any] = {"materialize_s": mat, "materialize_all_s": times}
    for batch, calls in ((1, lookups), (100, max(lookups // 4, 50))):
        rows_list = [[{"driver_id": rng.randrange(n)} for _ in range(batch)] for _ in range(calls)]
        for rows in rows_list[:50]:
            lookup(rows)  # warm-up
        rounds = []
        for _ in range(ROUNDS):  # the machine is shared: keep the median of a few rounds
            samples = []
            for rows in rows_list:
                t = time.perf_counter()
                lookup(rows)
                samples.append(time.perf_counter() - t)
            rounds.append(percentiles(samples))
        rounds.sort(key=lambda r: r["p50_ms"])
        result[f"lookup_{batch}"] = rounds[len(rounds) // 2]
    cleanup()
    return result


# -- the parent ----------------------------------------------------------------------------------


def in_bench_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv(reinstall: bool) -> None:
    if not VENV_PYTHON.exists():
        base = shutil.which("python3.11") or sys.executable
        log(f"creating {VENV} with {base}")
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
        reinstall = True
    probe = (
        "import feast, duckdb, redis, shipyard.features, sys; "
        "sys.exit(0 if feast.__version__ == '0.67.0' else 1)"
    )
    ok = subprocess.run([str(VENV_PYTHON), "-c", probe], capture_output=True, check=False)
    if reinstall or ok.returncode != 0:
        log(f"installing {' '.join(REQUIREMENTS)} and shipyard (editable) into {VENV.name}")
        pip = [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *REQUIREMENTS], check=True)
        subprocess.run([*pip, "--no-deps", "-e", str(REPO)], check=True)


def worker(task: str, side: str, data: Path, lookups: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as tmp:
        work = Path(tmp)
        if task == "pit":
            return run_pit(side, data, work, 1 if side == "feast-file" else 3)
        return run_online(side, data, work, lookups)


def spawn(task: str, side: str, data: Path, lookups: int) -> dict[str, Any] | None:
    cmd = [
        str(VENV_PYTHON),
        str(Path(__file__).resolve()),
        "--worker",
        f"{task}:{side}",
        "--data",
        str(data),
        "--lookups",
        str(lookups),
    ]
    log(f"  {task} {side} (load {loadavg().split()[0]})")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1800)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return dict(json.loads(line[len(RESULT_MARKER) :]))
    log(f"  {task} {side} failed:\n{proc.stderr[-3000:]}")
    return None


def cli_help_seconds() -> float:
    exe = REPO / ".venv" / "bin" / "shipyard"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "shipyard.cli.main"]
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([*cmd, "features", "--help"], capture_output=True, check=True)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def ratio(feast: float | None, ours: float | None) -> str:
    if not feast or not ours:
        return "-"
    return f"{feast / ours:.1f}x"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1,000 entities, 10k entity rows")
    parser.add_argument("--skip-feast-file", action="store_true", help="skip Feast's file store")
    parser.add_argument("--lookups", type=int, default=2000, help="timed 1-entity lookups")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--reinstall", action="store_true", help="reinstall the benchmark venv")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        task, side = args.worker.split(":")
        result = worker(task, side, args.data, args.lookups)
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return
    if not in_bench_venv():
        ensure_venv(args.reinstall)
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--reinstall"]
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *rest])

    entities, entity_rows = (1_000, 10_000) if args.small else (10_000, 100_000)
    log(f"load average before: {loadavg()}")
    results: dict[str, Any] = {"load_before": loadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-features-data-") as tmp:
        data = Path(tmp)
        log(f"generating {entities:,} entities x 100 times x 10 features; {entity_rows:,} rows")
        generate(data, entities, 100, entity_rows)
        pit_sides = ["shipyard", "feast-duckdb"] + ([] if args.skip_feast_file else ["feast-file"])
        results["pit"] = {side: spawn("pit", side, data, args.lookups) for side in pit_sides}
        online_sides = ["shipyard-sqlite", "feast-sqlite", "shipyard-redis", "feast-redis"]
        results["online"] = {
            side: spawn("online", side, data, args.lookups) for side in online_sides
        }
    results["cli_help_s"] = cli_help_seconds()
    results["load_after"] = loadavg()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    report(results, entities * 100, entity_rows)


def report(results: dict[str, Any], source_rows: int, entity_rows: int) -> None:
    pit = results["pit"]
    ours = pit.get("shipyard") or {}
    print(f"\npoint-in-time join, {entity_rows:,} entity rows x {source_rows:,} feature rows")
    print(f"  {'side':<14} {'seconds':>8} {'peak MB':>8} {'rows out':>9} {'lost':>6}  vs shipyard")
    for side, r in pit.items():
        if r is None:
            print(f"  {side:<14} failed")
            continue
        print(
            f"  {side:<14} {r['seconds']:>8.2f} {r['peak_mb']:>8.0f} {r['rows_out']:>9,} "
            f"{r['lost_rows']:>6,}  {ratio(r['seconds'], ours.get('seconds'))}"
        )
    online = results["online"]
    for backend in ("sqlite", "redis"):
        s = online.get(f"shipyard-{backend}") or {}
        f = online.get(f"feast-{backend}") or {}
        print(f"\nonline store: {backend}")
        print(f"  {'figure':<26} {'shipyard':>10} {'Feast':>10} {'ratio':>7}")

        def row(label: str, a: float | None, b: float | None, fmt: str = "{:>10.3f}") -> None:
            sa = fmt.format(a) if a is not None else f"{'-':>10}"
            sb = fmt.format(b) if b is not None else f"{'-':>10}"
            print(f"  {label:<26} {sa} {sb} {ratio(b, a):>7}")

        row(
            f"materialize {source_rows:,} rows (s)",
            s.get("materialize_s"),
            f.get("materialize_s"),
            "{:>10.2f}",
        )
        row(  # the first of the three: a fresh process's DuckDB reads the source cold
            "  first of the 3 runs (s)",
            (s.get("materialize_all_s") or [None])[0],
            (f.get("materialize_all_s") or [None])[0],
            "{:>10.2f}",
        )
        for batch in (1, 100):
            key = f"lookup_{batch}"
            for pct in ("p50_ms", "p99_ms"):
                row(
                    f"lookup {batch:>3} entit{'y' if batch == 1 else 'ies'} {pct[:3]} (ms)",
                    (s.get(key) or {}).get(pct),
                    (f.get(key) or {}).get(pct),
                )
    print(f"\n`shipyard features --help`: {results['cli_help_s']:.3f} s")
    print(f"load average before: {results['load_before']}")
    print(f"load average after:  {results['load_after']}")


if __name__ == "__main__":
    main()
