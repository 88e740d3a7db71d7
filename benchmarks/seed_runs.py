"""Seeding many runs for the paged-search workload of `tracking.py`, the same rows on both sides.

Logging 100,000 runs through either client takes minutes (MLflow's ~50 runs/s, an hour), and
only the search is timed. So each side's database is created and migrated by that side's own
store (the schema is theirs, not ours), then the rows go straight in with `sqlite3`
`executemany` in one transaction: one run row, its params, its metrics (history and latest)
and, for MLflow, the tags its client writes for every run (`mlflow.runName`, `mlflow.user`).
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START_MS = 1_700_000_000_000


@dataclass(frozen=True)
class SeedRun:
    id: str
    start_time: int
    params: dict[str, str]
    metrics: dict[str, float]


def seed_runs(grid: list[tuple[dict[str, str], dict[str, float]]]) -> Iterator[SeedRun]:
    """The runs, with ids from a seeded generator (the same on both sides, so ties in the
    order break the same way) and one start time per millisecond."""
    rng = random.Random(3)
    for i, (params, metrics) in enumerate(grid):
        yield SeedRun(f"{rng.getrandbits(128):032x}", START_MS + i, params, metrics)


def _rows(runs: list[SeedRun]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    params = [(r.id, k, v) for r in runs for k, v in r.params.items()]
    metrics = [(r.id, k, v, r.start_time) for r in runs for k, v in r.metrics.items()]
    return params, metrics


def seed_shipyard(db_path: Path, experiment_id: int, runs: list[SeedRun]) -> None:
    """Rows in shipyard's schema (stores/schema.py): runs, params, metrics, latest_metrics."""
    params, metrics = _rows(runs)
    con = sqlite3.connect(db_path)
    try:
        with con:
            con.executemany(
                "INSERT INTO runs (id, experiment_id, name, status, start_time, end_time, user, "
                "lifecycle_stage) VALUES (?, ?, ?, 'FINISHED', ?, ?, 'bench', 'active')",
                [(r.id, experiment_id, r.id[:8], r.start_time, r.start_time + 1) for r in runs],
            )
            con.executemany("INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)", params)
            con.executemany(
                "INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, 0, ?)",
                metrics,
            )
            con.executemany(
                "INSERT INTO latest_metrics (run_id, key, value, step, timestamp) "
                "VALUES (?, ?, ?, 0, ?)",
                metrics,
            )
    finally:
        con.close()


def seed_mlflow(db_path: Path, experiment_id: int, artifact_root: str, runs: list[SeedRun]) -> None:
    """Rows in MLflow's schema: runs, params, metrics, latest_metrics and the run's tags."""
    params, metrics = _rows(runs)
    con = sqlite3.connect(db_path)
    try:
        with con:
            con.executemany(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
                "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
                "artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'bench', "
                "'FINISHED', ?, ?, '', 'active', ?, ?)",
                [
                    (
                        r.id,
                        r.id[:8],
                        r.start_time,
                        r.start_time + 1,
                        f"{artifact_root}/{r.id}/artifacts",
                        experiment_id,
                    )
                    for r in runs
                ],
            )
            con.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                [
                    (key, value, r.id)
                    for r in runs
                    for key, value in (("mlflow.runName", r.id[:8]), ("mlflow.user", "bench"))
                ],
            )
            con.executemany("INSERT INTO params (run_uuid, key, value) VALUES (?, ?, ?)", params)
            con.executemany(
                "INSERT INTO metrics (run_uuid, key, value, timestamp, step, is_nan) "
                "VALUES (?, ?, ?, ?, 0, 0)",
                metrics,
            )
            con.executemany(
                "INSERT INTO latest_metrics (run_uuid, key, value, timestamp, step, is_nan) "
                "VALUES (?, ?, ?, ?, 0, 0)",
                metrics,
            )
    finally:
        con.close()
