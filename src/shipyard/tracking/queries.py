"""Reading tracked runs: experiments, search, one run, a metric's history.

runs = RunQueries(open_stores())
runs.search('metrics.auc > 0.9', order_by=["metrics.auc DESC"], limit=10)
runs.metric_history("3f2a9c1b", "loss")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.stores import Stores
    from shipyard.stores.records import MetricPoint, RunRecord


class RunQueries:
    """Read-only questions about runs, over one set of stores (the edges' door to runs)."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self._runs = stores.metadata.runs

    def experiments(self) -> list[str]:
        """Every experiment's name, oldest first."""
        return self._runs.list_experiments()

    def search(
        self,
        filter: str | None = None,
        *,
        experiments: Sequence[str] | str | None = None,
        order_by: Sequence[str] | str | None = None,
        limit: int = 1000,
    ) -> list[RunRecord]:
        """Runs matching `filter`, ordered by `order_by` (default: newest first)."""
        from shipyard.tracking.search import parse_filter, parse_order_by

        clauses = parse_filter(filter)
        order = parse_order_by(order_by)
        if isinstance(experiments, str):
            experiments = [experiments]
        return self._runs.search_runs(
            experiments=experiments, clauses=clauses, order_by=order, limit=limit
        )

    def get(self, run_id: str) -> RunRecord:
        """One run by id or unique id prefix."""
        return self._runs.get_run(run_id)

    def kept_datasets(self, run_id: str) -> list[tuple[str, str, str]]:
        """(role, name, artifact digest) of the datasets the run kept the rows of
        (`log_dataset(..., keep_rows=True)`), in the order they were logged."""
        from shipyard.tracking.datasets import parse_rows_path

        out = []
        for artifact in self._runs.get_run(run_id).artifacts:
            found = parse_rows_path(artifact.path)
            if found is not None:
                out.append((*found, artifact.digest))
        return out

    def dataset_rows(self, digest: str) -> pd.DataFrame:
        """The rows of a kept dataset (its artifact digest, from `kept_datasets`)."""
        import io

        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.stores.artifacts.get_bytes(digest)))

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every logged value of a metric, by step then time."""
        return self._runs.metric_history(run_id, key)
