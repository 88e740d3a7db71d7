"""Plain records the stores return. Frozen dataclasses: no session, no lazy loading."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FilterKind = Literal["metrics", "params", "tags", "attributes"]

# The largest model version number: the column is a 32-bit INTEGER on PostgreSQL (SQLite's
# would take 64 bits); one rule on both, checked wherever a version number comes in.
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class Clause:
    """One comparison of a run filter: `metrics.auc > 0.9` is Clause("metrics", "auc", ">", 0.9)."""

    kind: FilterKind
    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class OrderKey:
    kind: FilterKind
    key: str
    descending: bool = False


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class MetricSeries:
    """A metric's points in a step range (`stores/metric_series.py`): all of them, or min/max
    buckets when `downsampled`; `total` points lie in the range, from `min_step` to `max_step`."""

    key: str
    points: tuple[MetricPoint, ...]
    total: int
    min_step: int | None
    max_step: int | None
    downsampled: bool


@dataclass(frozen=True)
class DatasetRecord:
    digest: str
    name: str
    schema: dict[str, str]
    rows: int
    profile: dict[str, Any]
    role: str = "train"


@dataclass(frozen=True)
class ArtifactRecord:
    path: str
    digest: str
    size: int


@dataclass(slots=True)  # not frozen: frozen __init__ costs a setattr call per field
class RunRecord:
    id: str
    experiment: str
    name: str
    status: str
    start_time: int
    end_time: int | None
    user: str
    error: str | None = None
    source: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    environment_digest: str | None = None
    parent_run_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: tuple[DatasetRecord, ...] = ()
    artifacts: tuple[ArtifactRecord, ...] = ()
    lifecycle_stage: str = "active"  # "deleted": soft-deleted by an MLflow client

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class ModelVersionRecord:
    name: str
    version: int
    flavor: str
    artifact_digest: str
    signature: dict[str, Any] | None
    run_id: str | None
    description: str
    approval: str
    created_at: int
    created_by: str
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    onnx_status: str = "off"
    onnx_digest: str | None = None
    onnx_detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class RegisteredModelRecord:
    name: str
    description: str
    created_at: int
    updated_at: int
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class AuditRecord:
    id: int
    ts: int
    actor: str
    action: str
    subject_type: str
    subject: str
    before: Any
    after: Any
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class EndpointRecord:
    name: str
    model_uri: str
    policy: str
    config: dict[str, Any]
    generation: int
    created_at: int
    updated_at: int

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)
