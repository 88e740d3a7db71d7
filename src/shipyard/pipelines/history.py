"""Past pipeline runs: the list, newest first, and one run with its steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.stores.pipelines import PipelineRunRecord


def list_runs(
    name: str | None = None, limit: int = 20, *, settings: Settings | None = None
) -> list[PipelineRunRecord]:
    """Pipeline runs (of pipeline `name`), newest first."""
    from shipyard.stores import open_stores

    return open_stores(settings).metadata.pipelines.list_runs(name, limit)


def get_run(run_id: str, *, settings: Settings | None = None) -> PipelineRunRecord:
    """One pipeline run by id or unique prefix, with each step's status and outputs."""
    from shipyard.stores import open_stores

    return open_stores(settings).metadata.pipelines.get_run(run_id)
