"""What a pipeline run returns: one `StepResult` per node, gathered in a `PipelineResult` that
loads outputs from the artifact store on demand."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, StepFailedError
from shipyard.pipelines.step import Output

if TYPE_CHECKING:
    from shipyard.stores import Stores


@dataclass
class StepResult:
    name: str
    status: str  # FINISHED | CACHED | FAILED | SKIPPED
    outputs: list[dict[str, str]] = field(default_factory=list)
    cache_key: str = ""
    code_hash: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    run_id: str | None = None
    cached_from: str | None = None
    error: str | None = None
    seconds: float = 0.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def ok(self) -> bool:
        return self.status in ("FINISHED", "CACHED")


@dataclass
class PipelineResult:
    id: str
    name: str
    status: str
    params: dict[str, Any]
    executor: str
    run_id: str | None
    steps: dict[str, StepResult]
    returned: Any
    stores: Stores
    error: str | None = None
    failed_step: str | None = None
    key: bytes = b""  # verifies pickled outputs (see outputs.load_output)

    def __repr__(self) -> str:
        return f"<PipelineResult {self.name} {self.id[:8]} {self.status}>"

    @property
    def cached(self) -> list[str]:
        return [n for n, s in self.steps.items() if s.status == "CACHED"]

    @property
    def executed(self) -> list[str]:
        return [n for n, s in self.steps.items() if s.status == "FINISHED"]

    def output(self, ref: str | Output, index: int = 0) -> Any:
        """The value a step returned (its `index`-th output), loaded from the artifact store."""
        from shipyard.pipelines.outputs import load_output

        if isinstance(ref, Output):
            node, index = ref.node, ref.index
            ref = node
        if ref not in self.steps:
            from shipyard.errors import NotFoundError

            raise NotFoundError.for_name("step", ref, self.steps)
        step = self.steps[ref]
        if not step.ok:
            raise InvalidArgumentError(f"step '{ref}' has no output: it is {step.status}")
        return load_output(self.stores.artifacts, step.outputs[index], self.key)

    @property
    def value(self) -> Any:
        """What the pipeline function returned, with each Output replaced by its value."""
        return _map_outputs(self.returned, self.output)

    def digest(self, ref: str | Output, index: int = 0) -> str:
        if isinstance(ref, Output):
            node, index = ref.node, ref.index
            ref = node
        return self.steps[ref].outputs[index]["digest"]

    def raise_for_status(self) -> PipelineResult:
        if self.status != "FINISHED":
            raise StepFailedError(
                self.error or f"pipeline '{self.name}' failed",
                step=self.failed_step,
                pipeline_run=self.id,
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "params": self.params,
            "executor": self.executor,
            "run_id": self.run_id,
            "error": self.error,
            "failed_step": self.failed_step,
            "steps": {
                n: {
                    "status": s.status,
                    "outputs": s.outputs,
                    "cache_key": s.cache_key,
                    "run_id": s.run_id,
                    "cached_from": s.cached_from,
                    "seconds": round(s.seconds, 4),
                    "error": s.error,
                }
                for n, s in self.steps.items()
            },
        }


def _map_outputs(value: Any, fn: Callable[[Output], Any]) -> Any:
    if isinstance(value, Output):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(_map_outputs(v, fn) for v in value)
    if isinstance(value, list):
        return [_map_outputs(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_outputs(v, fn) for k, v in value.items()}
    return value
