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
import hashlib
import inspect
import itertools
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.errors import InvalidArgumentError, StepFailedError
from shipyard.pipelines.outputs import is_sealed, seal
from shipyard.pipelines.step import Output, Step
from shipyard.stores.secrets import signing_key

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.pipelines.executors import StepOutcome
    from shipyard.stores import Stores
    from shipyard.tracking import Run


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
            jobs.append(_Job(self, params, nodes, returned, self.seed if seed is None else seed))
        pool = make_executor(executor, settings, address=ray_address, modules=list(modules or []))
        runner = _Runner(stores, settings, pool, cache=cache, experiment=experiment)
        try:
            with _progress(progress, sum(len(j.nodes) for j in jobs)) as tick:
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


# -- running ------------------------------------------------------------------------------------


class _Job:
    """One pipeline run: its nodes in call order (a topological order) and their results."""

    def __init__(
        self,
        pipeline: Pipeline,
        params: dict[str, Any],
        nodes: dict[str, Node],
        returned: Any,
        seed: int,
    ) -> None:
        self.pipeline = pipeline
        self.params = params
        self.nodes = nodes
        self.returned = returned
        self.seed = seed
        self.id = uuid.uuid4().hex
        self.results: dict[str, StepResult] = {}
        self.started: set[str] = set()
        self.run: Run | None = None
        self.error: str | None = None
        self.failed_step: str | None = None

    def ready(self) -> Iterator[Node]:
        for node in self.nodes.values():
            if node.name not in self.started and all(u in self.results for u in node.upstream):
                yield node

    @property
    def done(self) -> bool:
        return len(self.results) == len(self.nodes)

    def result(self, stores: Stores, executor: str, key: bytes) -> PipelineResult:
        return PipelineResult(
            id=self.id,
            name=self.pipeline.name,
            status="FAILED" if self.failed_step else "FINISHED",
            params=self.params,
            executor=executor,
            run_id=self.run.id if self.run else None,
            steps={n: self.results[n] for n in self.nodes},
            returned=self.returned,
            stores=stores,
            error=self.error,
            failed_step=self.failed_step,
            key=key,
        )


def derive_seed(seed: int, node: str) -> int:
    return int(hashlib.sha256(f"{seed}:{node}".encode()).hexdigest()[:8], 16) % 2**31


@dataclass
class _Flight:
    job: _Job
    node: Node
    result: StepResult
    child: Any = None  # the step's tracking run
    waiters: list[tuple[_Job, Node, StepResult]] = field(default_factory=list)


class _Runner:
    def __init__(
        self,
        stores: Stores,
        settings: Settings,
        pool: Any,
        *,
        cache: bool,
        experiment: str | None,
    ) -> None:
        self.stores = stores
        self.settings = settings
        self.pool = pool
        self.cache = cache
        self.experiment = experiment
        self.key = signing_key(settings)
        self.values: dict[str, Any] = {}  # digest -> value loaded in this process
        self.inflight: dict[Future[StepOutcome], _Flight] = {}
        self.by_key: dict[str, _Flight] = {}

    def run(self, jobs: list[_Job], tick: Callable[[str, str], None]) -> None:
        from shipyard.tracking import start_run

        for job in jobs:
            job.run = start_run(
                self.experiment or job.pipeline.name,
                name=f"{job.pipeline.name}-{job.id[:8]}",
                params={**job.params, "seed": job.seed},
                tags={"pipeline": job.pipeline.name, "pipeline_run_id": job.id},
                source=job.pipeline.source,
                settings=self.settings,
            )
            self.stores.metadata.pipelines.create_run(
                job.id,
                name=job.pipeline.name,
                executor=self.pool.name,
                params={k: _jsonable(v) for k, v in job.params.items()},
                seed=job.seed,
                tracking_run_id=job.run.id,
                user=self.stores.actor,
            )
        try:
            while not all(job.done for job in jobs):
                progressed = False
                for job in jobs:
                    for node in list(job.ready()):
                        if self._start(job, node, tick):
                            progressed = True
                if self.inflight:
                    done, _ = wait(list(self.inflight), return_when=FIRST_COMPLETED)
                    for future in done:
                        self._finish(self.inflight.pop(future), future.result(), tick)
                elif not progressed:  # nothing ready and nothing running: cannot happen
                    raise RuntimeError("pipeline scheduler stalled")
        finally:
            for job in jobs:
                status = "FAILED" if job.failed_step else "FINISHED"
                if job.done:
                    self.stores.metadata.pipelines.end_run(job.id, status, job.error)
                else:
                    self.stores.metadata.pipelines.end_run(job.id, "FAILED", "interrupted")
                if job.run is not None:
                    job.run.end(
                        "FAILED" if job.failed_step or not job.done else "FINISHED", job.error
                    )

    # -- one node --------------------------------------------------------------------------------

    def _start(self, job: _Job, node: Node, tick: Callable[[str, str], None]) -> bool:
        """Skip, reuse or submit a ready node; True when it was resolved or submitted."""
        job.started.add(node.name)
        upstream_bad = [u for u in node.upstream if not job.results[u].ok]
        seed = derive_seed(job.seed, node.name)
        args = dict(node.args)
        explicit = args.get("seed")
        if node.step.accepts("seed") and "seed" not in args:
            args["seed"] = seed
        elif isinstance(explicit, int) and not isinstance(explicit, bool):
            seed = explicit  # the user's seed= seeds the step and is what is recorded
        consts = {k: v for k, v in args.items() if not isinstance(v, Output)}
        result = StepResult(
            name=node.name,
            status="RUNNING",
            code_hash=node.step.code_hash,
            params={k: _jsonable(v) for k, v in consts.items()},
            seed=seed,
        )
        if upstream_bad:
            result.status = "SKIPPED"
            result.error = f"upstream step '{upstream_bad[0]}' did not finish"
            self._record(job, result, tick)
            return True
        result.inputs = {
            k: job.results[v.node].outputs[v.index]["digest"]
            for k, v in args.items()
            if isinstance(v, Output)
        }
        result.cache_key = _cache_key(node.step, result.code_hash, result.inputs, consts, seed)
        hit = self.stores.metadata.pipelines.find_cached(result.cache_key) if self.cache else None
        if hit is not None and all(
            self.stores.artifacts.exists(o["digest"]) and is_sealed(o, self.key)
            for o in hit.outputs
        ):
            result.status, result.outputs, result.cached_from = "CACHED", hit.outputs, hit.id
            self._record(job, result, tick)
            return True
        flight = self.by_key.get(result.cache_key)
        if flight is not None:  # the same computation is running for another node or run
            flight.waiters.append((job, node, result))
            return True
        from shipyard.pipelines.executors import run_step
        from shipyard.tracking import start_run

        kwargs = {
            k: self._value(job.results[v.node].outputs[v.index]) if isinstance(v, Output) else v
            for k, v in args.items()
        }
        assert job.run is not None
        child = start_run(
            self.experiment or job.pipeline.name,
            name=node.name,
            parent_run_id=job.run.id,
            params={**{k: _short(v) for k, v in result.params.items()}, "seed": seed},
            tags={
                "pipeline": job.pipeline.name,
                "pipeline_run_id": job.id,
                "step": node.name,
                "code_hash": result.code_hash,
                "cache_key": result.cache_key,
                **{f"input.{k}": d for k, d in result.inputs.items()},
            },
            source=job.pipeline.source,
            settings=self.settings,
        )
        result.run_id = child.id
        flight = _Flight(job, node, result, child)
        future = self.pool.submit(
            run_step, node.step.fn, kwargs, node.name, seed, node.step.outputs, child.id
        )
        self.inflight[future] = flight
        self.by_key[result.cache_key] = flight
        tick(node.name, "running")
        return True

    def _finish(
        self, flight: _Flight, outcome: StepOutcome, tick: Callable[[str, str], None]
    ) -> None:
        result, child = flight.result, flight.child
        self.by_key.pop(result.cache_key, None)
        result.seconds = outcome.seconds
        if outcome.error is None:
            for kind, data in outcome.outputs:
                digest = self.stores.artifacts.put_bytes(data)[0]
                result.outputs.append(seal({"digest": digest, "kind": kind}, self.key))
            result.status = "FINISHED"
            child.log_params({k: _short(v) for k, v in outcome.params.items()})
            child.set_tags(
                {
                    **outcome.tags,
                    **{f"output.{i}": o["digest"] for i, o in enumerate(result.outputs)},
                }
            )
            if outcome.metrics:
                child.log_metrics(outcome.metrics)
            child.end("FINISHED")
        else:
            result.status = "FAILED"
            last = outcome.error.strip().splitlines()[-1]
            result.error = outcome.error
            child.end("FAILED", outcome.error)
            job = flight.job
            if job.failed_step is None:
                job.failed_step = flight.node.name
                job.error = f"step '{flight.node.name}' failed: {last}"
        self._record(flight.job, result, tick)
        for job, node, waiting in flight.waiters:
            if result.status == "FINISHED":
                waiting.status, waiting.outputs, waiting.cached_from = (
                    "CACHED",
                    result.outputs,
                    result.id,
                )
            else:
                waiting.status, waiting.error = "FAILED", result.error
                if job.failed_step is None:
                    job.failed_step, job.error = node.name, flight.job.error
            self._record(job, waiting, tick)

    def _record(self, job: _Job, result: StepResult, tick: Callable[[str, str], None]) -> None:
        from shipyard.stores.clock import now_ms
        from shipyard.stores.pipelines import StepRunRecord

        now = now_ms()
        job.results[result.name] = result
        self.stores.metadata.pipelines.record_step(
            StepRunRecord(
                id=result.id,
                pipeline_run_id=job.id,
                step=result.name,
                status=result.status,
                cache_key=result.cache_key,
                code_hash=result.code_hash,
                inputs=result.inputs,
                params=result.params,
                outputs=result.outputs,
                seed=result.seed,
                run_id=result.run_id,
                cached_from=result.cached_from,
                started_at=now - int(result.seconds * 1000),
                ended_at=now,
                error=result.error,
            )
        )
        tick(result.name, result.status.lower())

    def _value(self, output: dict[str, str]) -> Any:
        from shipyard.pipelines.outputs import load_output

        digest = output["digest"]
        if digest not in self.values:
            self.values[digest] = load_output(self.stores.artifacts, output, self.key)
        return self.values[digest]


def _cache_key(
    step: Step, code_hash: str, inputs: dict[str, str], consts: dict[str, Any], seed: int
) -> str:
    from shipyard.pipelines.outputs import digest_of_value

    doc = {
        "fn": step.fn.__qualname__,  # not the module: a pipeline file loads under any name
        "code": code_hash,
        "inputs": inputs,
        "consts": {k: digest_of_value(v) for k, v in consts.items()},
        "seed": seed,
        "outputs": step.outputs,
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _jsonable(value: Any) -> Any:
    from shipyard.pipelines.outputs import is_plain_json

    return value if is_plain_json(value) else repr(value)[:200]


def _short(value: Any) -> Any:
    return value if isinstance(value, (int, float, bool)) else str(value)[:500]


class _progress:
    """A Rich progress bar over the steps (on stderr), or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total

    def __enter__(self) -> Callable[[str, str], None]:
        if not self.enabled:
            return lambda name, status: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("[bold]steps"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        task = self._bar.add_task("", total=self.total)
        colors = {"finished": "green", "cached": "cyan", "failed": "red", "skipped": "yellow"}

        def tick(name: str, status: str) -> None:
            color = colors.get(status)
            if color is None:
                self._bar.update(task, description=f"{name} running")
                return
            self._bar.console.print(f"  [{color}]{status:<8}[/{color}] {name}")
            self._bar.update(task, advance=1, description="")

        return tick

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.stop()
