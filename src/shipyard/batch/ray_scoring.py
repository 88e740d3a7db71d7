"""Batch scoring on Ray Data: the same job as the local executor, as a streaming
`read → map_batches(actor pool) → write` over the input files (one dataset per format).

Each actor loads the model once and scores `chunk_rows`-row batches; actors ask for a fraction
of a CPU (on a small machine, actors asking for whole CPUs starve the read tasks and the job
hangs without an error). Row order is preserved: the scored blocks stream back in order and are
written here, each atomically; the finished files are recorded in `_ray_done.json` when their
dataset is done, so a rerun skips them (the local executor resumes per chunk).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.batch.features import FeatureJoin
    from shipyard.config import Settings


class _Scorer:
    """A Ray Data actor: the model, loaded once per actor."""

    def __init__(
        self,
        settings_json: str,
        uri: str,
        trusted: bool,
        keep: list[str] | None,
        features: FeatureJoin | None = None,
        proba: bool = True,
    ):
        from shipyard.batch.features import joiner
        from shipyard.config import Settings
        from shipyard.registry import Registry
        from shipyard.stores import open_stores

        settings = Settings.model_validate_json(settings_json)
        self.model = Registry(open_stores(settings)).load(uri, trusted=trusted)
        self.keep = keep
        self.proba = proba
        self.join = joiner(settings, features) if features is not None else None

    def __call__(self, batch: Any) -> Any:
        from shipyard.batch.scoring import score_table

        return score_table(self.model, batch, self.keep, self.join, proba=self.proba)


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
    features: FeatureJoin | None = None,
    proba: bool = True,
) -> tuple[int, int, int]:
    """Score `files` into `out`; returns (rows, files scored now, files skipped)."""
    from shipyard.batch.scoring import write_parquet
    from shipyard.pipelines.executors import import_ray, init_ray

    ray = import_ray()
    init_ray(settings, address)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    done_file = out / "_ray_done.json"
    done: dict[str, int] = json.loads(done_file.read_text()) if done_file.exists() else {}
    pending = [p for p in files if str(p) not in done]
    rows = sum(done.get(str(p), 0) for p in files)
    skipped = len(files) - len(pending)
    if progress:
        progress(rows)
    # one streaming dataset per input format: actors start (and load the model) once
    for g, (kind, group) in enumerate(
        (
            ("parquet", [p for p in pending if p.suffix.lower() != ".csv"]),
            ("csv", [p for p in pending if p.suffix.lower() == ".csv"]),
        )
    ):
        if not group:
            continue
        paths = [str(p) for p in group]
        ds = ray.data.read_csv(paths) if kind == "csv" else ray.data.read_parquet(paths)
        scored_ds = ds.map_batches(
            _Scorer,
            fn_constructor_args=(
                settings.model_dump_json(),
                pinned,
                trusted,
                keep,
                features,
                proba,
            ),
            batch_size=chunk_rows,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
            num_cpus=0.5,
        )
        # stream the scored blocks back in order and write them here: file names then follow
        # row order, which Ray's own writer does not promise
        for stale in out.glob(f"part-ray-{g}-*.parquet"):  # an interrupted earlier attempt
            stale.unlink()
        n = 0
        for i, table in enumerate(
            scored_ds.iter_batches(batch_size=chunk_rows, batch_format="pyarrow")
        ):
            target = out / f"part-ray-{g}-{i:06d}.parquet"
            write_parquet(table, f"{target}.tmp")
            os.replace(f"{target}.tmp", target)
            n += table.num_rows
            if progress:
                progress(rows + n)
        counted = [_rows(p) for p in group]
        sizes = [n] + [0] * (len(group) - 1) if None in counted else [c or 0 for c in counted]
        done.update(zip(paths, sizes, strict=True))  # CSV: the group's rows on its first file
        done_file.write_text(json.dumps(done, indent=2))
        rows += n
        if progress:
            progress(rows)
    return rows, len(pending), skipped


def _rows(path: Path) -> int | None:
    from shipyard.batch.scoring import rows_of

    return rows_of(path)
