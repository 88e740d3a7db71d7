"""Experiment tracking: runs, params, metrics, datasets, artifacts, search.

run = shipyard.start_run(experiment="churn", params={"C": 1.0})
shipyard.search_runs(filter='metrics.auc > 0.9 and params.model = "rf"',
                     order_by=["metrics.auc DESC"], max_results=10)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shipyard.tracking.experiments import Experiments
from shipyard.tracking.queries import RunQueries
from shipyard.tracking.remote import RemoteRuns
from shipyard.tracking.runs import Run, start_run

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.stores.records import MetricPoint, RunRecord


def search_runs(
    filter: str | None = None,
    *,
    experiments: Sequence[str] | str | None = None,
    order_by: Sequence[str] | str | None = None,
    max_results: int = 1000,
    settings: Settings | None = None,
) -> list[RunRecord]:
    """Runs matching `filter`, ordered by `order_by` (default: newest first)."""
    from shipyard.stores import open_stores

    return RunQueries(open_stores(settings)).search(
        filter, experiments=experiments, order_by=order_by, limit=max_results
    )


def get_run(run_id: str, *, settings: Settings | None = None) -> RunRecord:
    from shipyard.stores import open_stores

    return RunQueries(open_stores(settings)).get(run_id)


def get_metric_history(
    run_id: str, key: str, *, settings: Settings | None = None
) -> list[MetricPoint]:
    from shipyard.stores import open_stores

    return RunQueries(open_stores(settings)).metric_history(run_id, key)


__all__ = [
    "Experiments",
    "RemoteRuns",
    "Run",
    "RunQueries",
    "get_metric_history",
    "get_run",
    "search_runs",
    "start_run",
]
