"""Copy an MLflow tracking server or database into shipyard: experiments, runs (params,
metrics with their whole history, tags, status and times, dataset inputs), run artifacts,
registered models, versions and aliases.

    summary = import_mlflow(open_stores(), "http://mlflow:5000")
    summary = import_mlflow(stores, "sqlite:///mlflow.db", artifacts_from="/srv/mlartifacts")
    print("\\n".join(summary.lines()))

Idempotent and resumable: runs keep their MLflow ids, a run's metadata is written in one
transaction and its files after (`runs.py`), and imported versions carry the MLflow version
they came from (`models.py`); a second import copies nothing, and one killed half way
finishes where it stopped. mlflow itself is not needed: a server is read over its REST API
(httpx), a database with SQLAlchemy (`shipyard.stores.mlflow_db`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.tracking.mlflow_import.sources import MlflowSource, open_source
from shipyard.tracking.mlflow_import.summary import ImportSummary, Progress, Skipped

if TYPE_CHECKING:
    from shipyard.stores import Stores

__all__ = ["ImportSummary", "MlflowSource", "Progress", "Skipped", "import_mlflow", "open_source"]


def import_mlflow(
    stores: Stores,
    uri: str,
    *,
    artifacts_from: str | None = None,
    models: bool = True,
    progress: Progress | None = None,
    source: MlflowSource | None = None,
) -> ImportSummary:
    """Copy what `uri` holds that shipyard does not have yet; returns what was done."""
    from shipyard.tracking.mlflow_import.models import ModelImport
    from shipyard.tracking.mlflow_import.runs import RunImport

    source = source or open_source(uri, artifacts_from=artifacts_from)
    summary = ImportSummary(source.label)
    report = progress or (lambda phase, done, total: None)
    try:
        runs = RunImport(stores, source, summary, report)
        runs.runs(runs.experiments())
        if models:
            ModelImport(stores, source, summary, report).run()
    finally:
        source.close()
    return summary
