"""Batch scoring on Ray Data: the same job as the local executor, as a streaming
`read → map_batches(actor pool) → write` per input file.

Each actor loads the model once and scores `chunk_rows`-row batches; actors ask for a fraction
of a CPU (on a small machine, actors asking for whole CPUs starve the read tasks and the job
hangs without an error). Row order is preserved. A file's predictions are written to a staging
folder and moved into place when the file is done, so a rerun after a crash skips finished
files (the local executor resumes per chunk).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.config import Settings


class _Scorer:
    """A Ray Data actor: the model, loaded once per actor."""

    def __init__(self, settings_json: str, uri: str, trusted: bool, keep: list[str] | None):
        from shipyard.config import Settings
        from shipyard.registry import Registry
        from shipyard.stores import open_stores

        settings = Settings.model_validate_json(settings_json)
        self.model = Registry(open_stores(settings)).load(uri, trusted=trusted)
        self.keep = keep

    def __call__(self, batch: Any) -> Any:
        from shipyard.batch.scoring import score_table

        return score_table(self.model, batch, self.keep)


def score_on_ray(
    settings: Settings,
    pinned: str,
    files: list[Path],
    out: Path,
    *,
    chunk_rows: int,
    workers: int,
    keep: list[str] | None,
    trusted: bool,
    address: str | None,
    progress: Callable[[int], None] | None,
) -> tuple[int, int, int]:
    """Score `files` into `out`; returns (rows, files scored now, files skipped)."""
    import pyarrow.parquet as pq

    from shipyard.pipelines.executors import _import_ray, init_ray

    ray = _import_ray()
    init_ray(settings, address)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    rows = scored = skipped = 0
    for index, path in enumerate(files):
        done = out / f"part-{index:05d}.done"
        if done.exists():
            skipped += 1
            rows += int(done.read_text() or 0)
            if progress:
                progress(rows)
            continue
        if path.suffix.lower() == ".csv":
            ds = ray.data.read_csv(str(path))
        else:
            ds = ray.data.read_parquet(str(path))
        staging = out / f".staging-{index:05d}"
        shutil.rmtree(staging, ignore_errors=True)
        ds.map_batches(
            _Scorer,
            fn_constructor_args=(settings.model_dump_json(), pinned, trusted, keep),
            batch_size=chunk_rows,
            batch_format="pyarrow",
            concurrency=max(1, workers),
            num_cpus=0.5,
        ).write_parquet(str(staging), compression="zstd")
        n = 0
        for i, part in enumerate(sorted(staging.glob("*.parquet"))):
            n += pq.ParquetFile(part).metadata.num_rows
            os.replace(part, out / f"part-{index:05d}-{i:06d}.parquet")
        shutil.rmtree(staging, ignore_errors=True)
        done.write_text(str(n))
        rows += n
        scored += 1
        if progress:
            progress(rows)
    return rows, scored, skipped
