"""`@step`: a plain Python function that becomes a node of a pipeline when called inside one.

    @sy.step
    def train(df: pd.DataFrame, C: float = 1.0, seed: int = 0): ...

    @sy.step(outputs=2)
    def split(df, test_size=0.25, seed=0): return train_df, test_df

Outside a pipeline a step is just the function. Inside `Pipeline` tracing, calling it records a
node and returns placeholders (`Output`) that later steps take as inputs — the DAG is the data
flow. Inside a running step, `current_step()` gives the context that logs metrics to the step's
child run (the same on the local and the Ray executor: metrics travel back with the outputs).
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from shipyard.errors import InvalidArgumentError


@dataclass(frozen=True)
class Output:
    """A placeholder for the `index`-th output of a traced node."""

    node: str
    index: int = 0

    def __repr__(self) -> str:
        return f"<Output {self.node}[{self.index}]>"


@dataclass
class StepContext:
    """What a running step may record; collected and written to its child run afterwards."""

    step: str
    seed: int
    run_id: str | None = None  # the step's child tracking run (link a registered model to it)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self.metrics.update({str(k): float(v) for k, v in metrics.items()})

    def log_metric(self, key: str, value: float) -> None:
        self.log_metrics({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params.update({str(k): v for k, v in params.items()})

    def set_tag(self, key: str, value: Any) -> None:
        self.tags[str(key)] = str(value)


_CONTEXT: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "shipyard_step", default=None
)


def current_step() -> StepContext:
    """The context of the step running now (log metrics with `current_step().log_metrics`)."""
    ctx = _CONTEXT.get()
    if ctx is None:
        raise InvalidArgumentError("current_step() is only available inside a running step")
    return ctx


class Step:
    """A function marked as a pipeline step."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, outputs: int = 1):
        if outputs < 1:
            raise InvalidArgumentError("a step has at least one output", field="outputs")
        self.fn = fn
        self.name = name or fn.__name__
        self.outputs = outputs
        self.signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<step {self.name}>"

    def named(self, name: str) -> Step:
        """The same step under another node name (e.g. two candidates of `train`)."""
        return Step(self.fn, name=name, outputs=self.outputs)

    @property
    def code_hash(self) -> str:
        """Hash of the function's source (its bytecode when the source is unavailable)."""
        try:
            code = textwrap.dedent(inspect.getsource(self.fn)).encode()
        except (OSError, TypeError):
            code = self.fn.__code__.co_code
        return hashlib.sha256(code).hexdigest()

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgumentError(f"step '{self.name}': {exc}", field=self.name) from exc
        return dict(bound.arguments)

    def accepts(self, name: str) -> bool:
        return name in self.signature.parameters

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from shipyard.pipelines.pipeline import tracing

        tracer = tracing.get()
        if tracer is None:
            return self.fn(*args, **kwargs)
        return tracer.add(self, self.bind(args, kwargs))


@overload
def step(fn: Callable[..., Any], /) -> Step: ...
@overload
def step(*, name: str | None = None, outputs: int = 1) -> Callable[[Callable[..., Any]], Step]: ...
def step(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None, outputs: int = 1
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Mark a function as a pipeline step: `@step` or `@step(outputs=2)`."""
    if fn is not None:
        return Step(fn, name=name, outputs=outputs)
    return lambda f: Step(f, name=name, outputs=outputs)
