"""`Pipeline`: steps composed by the data passed between them, run with caching and lineage.

    @sy.Pipeline
    def churn(path: str = "data.csv", C: float = 1.0):
        df = load(path)
        train_df, test_df = split(df)
        model = train(train_df, C=C)
        return evaluate(model, test_df)

    result = churn.run(params={"C": 2.0})            # or executor="ray"
    result.output("evaluate")                          # the value, loaded from the artifact store

Calling the pipeline function under tracing records one node per step call; an argument that
is another step's output is an edge. Each node's outputs are stored content-addressed under a
cache key = hash(step code, input digests, constant arguments, seed); an unchanged node is
skipped on the next run (`cache=False` forces it). Every node runs in a child tracking run of
the pipeline's run; a failed node stops its dependants, names itself and keeps its traceback.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError
from shipyard.pipelines.results import PipelineResult as PipelineResult
from shipyard.pipelines.results import StepResult as StepResult
from shipyard.pipelines.runner import Job, Runner, progress_ticks
from shipyard.pipelines.step import Output, Step

if TYPE_CHECKING:
    from shipyard.config import Settings


@dataclass
class Node:
    name: str
    step: Step
    args: dict[str, Any]  # argument name -> constant, or Output of another node

    @property
    def upstream(self) -> list[str]:
        return sorted({v.node for v in self.args.values() if isinstance(v, Output)})


class _Trace:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def add(self, step: Step, args: dict[str, Any]) -> Output | tuple[Output, ...]:
        name = step.name
        for n in itertools.count(2):
            if name not in self.nodes:
                break
            name = f"{step.name}_{n}"
        for arg, value in args.items():
            if isinstance(value, (list, tuple, dict)) and _has_output(value):
                raise InvalidArgumentError(
                    f"step '{name}': pass step outputs as direct arguments, not inside a "
                    f"{type(value).__name__} (argument '{arg}')",
                    field=arg,
                )
        self.nodes[name] = Node(name, step, args)
        if step.outputs == 1:
            return Output(name)
        return tuple(Output(name, i) for i in range(step.outputs))


def _has_output(value: Any) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return any(
        isinstance(v, Output) or (isinstance(v, (list, tuple)) and _has_output(v)) for v in items
    )


# the pipeline being traced in this context: a step called while it is set records itself in
# the DAG instead of running (`Step.__call__`)
tracing: contextvars.ContextVar[_Trace | None] = contextvars.ContextVar(
    "shipyard_pipeline_trace", default=None
)


class Pipeline:
    """A DAG of steps built by calling them in a function; its parameters are the function's."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, seed: int = 0):
        self.fn = fn
        self.name = name or fn.__name__
        self.seed = seed
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<Pipeline {self.name}>"

    @property
    def source(self) -> str | None:
        """The file that defines the pipeline (its git commit is recorded with every run)."""
        try:
            return inspect.getsourcefile(self.fn)
        except TypeError:
            return None

    @property
    def params(self) -> dict[str, Any]:
        """Parameters and their defaults (`inspect.Parameter.empty` when required)."""
        return {n: p.default for n, p in self.signature.parameters.items()}

    def resolve_params(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.signature.parameters))
        if unknown:
            raise unknown_param(self, unknown[0])
        params = {}
        for n, p in self.signature.parameters.items():
            if n in overrides:
                params[n] = overrides[n]
            elif p.default is inspect.Parameter.empty:
                raise InvalidArgumentError(
                    f"pipeline '{self.name}' needs parameter '{n}' (--param {n}=…)", field=n
                )
            else:
                params[n] = p.default
        return params

    def trace(self, params: Mapping[str, Any] | None = None) -> tuple[dict[str, Node], Any]:
        """The DAG for these parameters, without running anything."""
        trace = _Trace()
        token = tracing.set(trace)
        try:
            returned = self.fn(**self.resolve_params(params))
        finally:
            tracing.reset(token)
        if not trace.nodes:
            raise InvalidArgumentError(
                f"pipeline '{self.name}' calls no @step function; mark its steps with @step"
            )
        return trace.nodes, returned

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        cache: bool = True,
        executor: str = "local",
        ray_address: str | None = None,
        seed: int | None = None,
        experiment: str | None = None,
        progress: bool = False,
        raise_on_failure: bool = True,
        settings: Settings | None = None,
        modules: list[ModuleType] | None = None,
    ) -> PipelineResult:
        """Run the pipeline; steps whose inputs, code and params are unchanged are reused."""
        (result,) = self._run_many(
            [dict(params or {})],
            cache=cache,
            executor=executor,
            ray_address=ray_address,
            seed=seed,
            experiment=experiment,
            progress=progress,
            settings=settings,
            modules=modules,
        )
        return result.raise_for_status() if raise_on_failure else result

    def sweep(
        self,
        grid: Mapping[str, list[Any]],
        *,
        params: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> list[PipelineResult]:
        """Run once per combination of `grid` values (one pipeline run each). Steps shared by
        several combinations run once; on `executor="ray"` independent steps run at once."""
        if not grid or any(not isinstance(v, (list, tuple)) or not v for v in grid.values()):
            raise InvalidArgumentError(
                "grid maps parameter names to non-empty lists, e.g. {'C': [0.1, 1.0]}",
                field="grid",
            )
        keys = list(grid)
        combos = [
            {**dict(params or {}), **dict(zip(keys, values, strict=True))}
            for values in itertools.product(*(grid[k] for k in keys))
        ]
        return self._run_many(combos, **options)

    def _run_many(
        self,
        combos: list[dict[str, Any]],
        *,
        cache: bool = True,
        executor: str = "local",
        ray_address: str | None = None,
        seed: int | None = None,
        experiment: str | None = None,
        progress: bool = False,
        settings: Settings | None = None,
        modules: list[ModuleType] | None = None,
    ) -> list[PipelineResult]:
        from shipyard.config import get_settings
        from shipyard.pipelines.executors import make_executor
        from shipyard.stores import open_stores

        settings = settings or get_settings()
        stores = open_stores(settings)
        jobs = []
        for combo in combos:
            params = self.resolve_params(combo)
            nodes, returned = self.trace(params)
            jobs.append(Job(self, params, nodes, returned, self.seed if seed is None else seed))
        pool = make_executor(executor, settings, address=ray_address, modules=list(modules or []))
        runner = Runner(stores, settings, pool, cache=cache, experiment=experiment)
        try:
            with progress_ticks(progress, sum(len(j.nodes) for j in jobs)) as tick:
                runner.run(jobs, tick)
        finally:
            pool.shutdown()
        return [job.result(stores, executor, runner.key) for job in jobs]


def unknown_param(pipe: Pipeline, key: str) -> InvalidArgumentError:
    import difflib

    known = list(pipe.signature.parameters)
    lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(key.lower(), list(lower), n=1, cutoff=0.6)
    hint = (
        f"; did you mean '{lower[close[0]]}'?"
        if close
        else f"; it has: {', '.join(known) or 'none'}"
    )
    return InvalidArgumentError(f"pipeline '{pipe.name}' has no parameter '{key}'{hint}", field=key)


def pipeline(fn: Callable[..., Any] | None = None, *, name: str | None = None, seed: int = 0):  # type: ignore[no-untyped-def]
    """`@pipeline` (same as `@Pipeline`), or `@pipeline(name=…, seed=…)`."""
    if fn is not None:
        return Pipeline(fn, name=name, seed=seed)
    return lambda f: Pipeline(f, name=name, seed=seed)
