"""What an MLflow tracking store holds, as plain records: read from its REST API or its
database (`stores/mlflow_db.py`) and written into shipyard's (`stores/run_imports.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shipyard.stores.records import MetricPoint


@dataclass(frozen=True)
class MlflowExperiment:
    id: str
    name: str
    created_at: int
    lifecycle_stage: str = "active"
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MlflowDataset:
    """A dataset input of a run, as MLflow describes it (no rows come with it)."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str = ""
    profile: str = ""
    context: str = "input"


@dataclass
class MlflowRun:
    """A run with its params, tags, dataset inputs and, once read (`metrics`), every point of
    every metric's history; `latest` names the metrics it has (from the run's summary)."""

    id: str
    experiment_id: str
    name: str
    user: str
    status: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    latest: tuple[str, ...] = ()
    datasets: tuple[MlflowDataset, ...] = ()
    metrics: list[MetricPoint] | None = None


@dataclass(frozen=True)
class MlflowModel:
    name: str
    description: str
    created_at: int
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MlflowVersion:
    """A model version; `location` is where its model directory is (an artifact URI, or
    "models:/<id>" / "runs:/<id>/<path>" that the source resolves)."""

    name: str
    version: int
    description: str
    created_at: int
    run_id: str | None
    location: str
    status: str = "READY"
    tags: dict[str, str] = field(default_factory=dict)
