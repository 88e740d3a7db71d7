"""Running traced pipelines: nodes start as soon as their inputs are ready, an unchanged node
is reused from the cache, a node shared by several runs of a sweep runs once, and every node is
recorded in a child tracking run of its pipeline's run."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.pipelines.outputs import is_sealed, seal
from shipyard.pipelines.results import PipelineResult, StepResult
from shipyard.pipelines.step import Output, Step
from shipyard.stores.secrets import signing_key

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.pipelines.executors import StepOutcome
    from shipyard.pipelines.pipeline import Node, Pipeline
    from shipyard.stores import Stores
    from shipyard.tracking import Run


class Job:
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
    job: Job
    node: Node
    result: StepResult
    child: Any = None  # the step's tracking run
    waiters: list[tuple[Job, Node, StepResult]] = field(default_factory=list)


class Runner:
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

    def run(self, jobs: list[Job], tick: Callable[[str, str], None]) -> None:
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

    def _start(self, job: Job, node: Node, tick: Callable[[str, str], None]) -> bool:
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

    def _record(self, job: Job, result: StepResult, tick: Callable[[str, str], None]) -> None:
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


class progress_ticks:
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
