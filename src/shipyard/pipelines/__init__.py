"""Pipelines: steps, a DAG runner with caching and lineage, data contracts, quality gates, and
local or Ray executors.

    import shipyard as sy

    @sy.step
    def train(df, C: float = 1.0): ...

    @sy.Pipeline
    def churn(C: float = 1.0):
        return train(load(), C=C)

    churn.run(params={"C": 2.0})
"""

from __future__ import annotations

from shipyard.pipelines.pipeline import Pipeline, pipeline
from shipyard.pipelines.results import PipelineResult, StepResult
from shipyard.pipelines.step import Output, Step, StepContext, current_step, step

__all__ = [
    "Output",
    "Pipeline",
    "PipelineResult",
    "Step",
    "StepContext",
    "StepResult",
    "current_step",
    "pipeline",
    "step",
]
