"""Batch scoring, side by side in one run: shipyard (local executor), a plain pandas loop (what
one writes by hand: read a chunk, predict, write), and shipyard on Ray Data.

    .venv/bin/python benchmarks/batch.py                 # 1M rows x 30 features
    .venv/bin/python benchmarks/batch.py --rows 200000   # quicker

Same generated data (seeded), same fitted scikit-learn LogisticRegression, same output (the
input columns plus prediction and probabilities, Parquet, zstd). Prints rows/s and the ratios.
No peer library is needed (Ray is shipyard's own optional extra), so it runs in the project's
virtualenv.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def make_data(folder: Path, rows: int, features: int, files: int) -> list[str]:
    rng = np.random.default_rng(0)
    names = [f"f{i:02d}" for i in range(features)]
    per_file = rows // files
    for i in range(files):
        x = rng.normal(size=(per_file, features))
        table = pa.table({n: x[:, j] for j, n in enumerate(names)})
        pq.write_table(table, folder / f"part-{i}.parquet", row_group_size=100_000)
    return names


def fit_model(names: list[str]):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(20_000, len(names))), columns=names)
    y = (x.iloc[:, :5].sum(axis=1) + rng.normal(size=len(x)) > 0).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


def pandas_loop(model, data: Path, out: Path, chunk: int) -> int:  # type: ignore[no-untyped-def]
    out.mkdir()
    rows = 0
    for i, path in enumerate(sorted(data.glob("*.parquet"))):
        for j, batch in enumerate(pq.ParquetFile(path).iter_batches(batch_size=chunk)):
            df = batch.to_pandas()
            proba = model.predict_proba(df)
            df["_prediction"] = model.classes_[proba.argmax(axis=1)]
            for k, label in enumerate(model.classes_):
                df[f"_proba_{label}"] = proba[:, k]
            df.to_parquet(out / f"part-{i}-{j}.parquet", compression="zstd", index=False)
            rows += len(df)
    return rows


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def report(work: Path, results: dict[str, float]) -> None:
    """Rows per second of each way against the pandas loop, and whether they agree."""
    check = pd.read_parquet(sorted((work / "out-local").glob("part-*.parquet"))[0])
    ref = pd.read_parquet(sorted((work / "out-pandas").glob("part-*.parquet"))[0])
    agree = float((check["_prediction"].to_numpy() == ref["_prediction"].to_numpy()).mean())
    base = results["pandas loop (sklearn, 1 process)"]
    print(f"\n{'':42s} {'rows/s':>12s} {'vs pandas':>10s}")
    for name, rate in results.items():
        print(f"{name:42s} {rate:12,.0f} {rate / base:9.2f}x")
    print(f"\npredictions agreeing with the pandas loop (first file): {agree:.4%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sy-batch-bench-"))
    os.environ["SHIPYARD_HOME"] = str(work / "home")
    os.environ["SHIPYARD_RAY_TEMP_DIR"] = str(work / "ray")
    import shipyard as sy
    from shipyard.batch import score_files
    from shipyard.config import get_settings
    from shipyard.stores import open_stores

    data = work / "data"
    data.mkdir()
    names = make_data(data, args.rows, args.features, args.files)
    rows = args.rows // args.files * args.files
    model = fit_model(names)
    example = pd.DataFrame(np.zeros((5, len(names))), columns=names)
    mv = sy.Registry(open_stores()).register("bench", model, input_example=example, onnx=True)
    settings = get_settings()
    cores = os.cpu_count() or 1
    print(f"{rows:,} rows x {args.features} features in {args.files} Parquet files; {cores} cores")
    print(f"load average before: {load()}")

    results: dict[str, float] = {}
    start = time.perf_counter()
    n = pandas_loop(model, data, work / "out-pandas", args.chunk)
    results["pandas loop (sklearn, 1 process)"] = n / (time.perf_counter() - start)

    res = score_files(
        settings, f"bench/{mv.version}", data, work / "out-local", chunk_rows=args.chunk
    )
    assert res.rows == rows
    results[f"shipyard local ({cores} processes, ONNX)"] = res.rows_per_second

    if not args.no_ray:
        from shipyard.pipelines.executors import init_ray

        t0 = time.perf_counter()
        init_ray(settings)
        ray_init = time.perf_counter() - t0
        res = score_files(
            settings,
            f"bench/{mv.version}",
            data,
            work / "out-ray",
            chunk_rows=args.chunk,
            executor="ray",
        )
        assert res.rows == rows
        results["shipyard on Ray Data (local Ray)"] = res.rows_per_second
        print(f"ray.init: {ray_init:.1f} s (not counted)")

    report(work, results)
    print(f"load average after: {load()}")
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
