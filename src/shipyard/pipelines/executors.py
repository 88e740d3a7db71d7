"""Where step functions run: in this process (`local`) or as Ray tasks (`ray`).

Both run the same `run_step` and hand back the same `StepOutcome` (outputs already serialized,
metrics logged by the step, the error as text), so results are identical; the driver stores
artifacts and records. On Ray, independent steps run at once; each task asks for one CPU and
runs scikit-learn single-threaded (`OMP_NUM_THREADS=1`), and Ray's temp dir lives under
`$SHIPYARD_HOME/ray` (or `SHIPYARD_RAY_TEMP_DIR`).
"""

from __future__ import annotations

import os
import random
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, MissingDependencyError

if TYPE_CHECKING:
    from shipyard.config import Settings

EXECUTORS = ("local", "ray")


@dataclass
class StepOutcome:
    outputs: list[tuple[str, bytes]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


def run_step(
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    name: str,
    seed: int,
    n_outputs: int,
    run_id: str | None = None,
) -> StepOutcome:
    """Seed, call, serialize. Never raises: the error comes back as text."""
    import numpy as np

    from shipyard.pipelines.outputs import dumps
    from shipyard.pipelines.step import _CONTEXT, StepContext
    from shipyard.tracking.runs import attached_to

    ctx = StepContext(step=name, seed=seed, run_id=run_id)
    token = _CONTEXT.set(ctx)
    started = time.perf_counter()
    try:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        with attached_to(run_id):  # a run the step starts is a child of the step's run
            value = fn(**kwargs)
        values = _split(value, n_outputs, name)
        outputs = [dumps(v) for v in values]
    except Exception:
        return StepOutcome(
            error=traceback.format_exc()[-8000:], seconds=time.perf_counter() - started
        )
    finally:
        _CONTEXT.reset(token)
    return StepOutcome(
        outputs, ctx.metrics, ctx.params, ctx.tags, None, time.perf_counter() - started
    )


def _split(value: Any, n: int, name: str) -> list[Any]:
    if n == 1:
        return [value]
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise TypeError(f"step '{name}' declares {n} outputs but returned {type(value).__name__}")
    return list(value)


class LocalExecutor:
    name = "local"

    def submit(self, fn: Callable[..., StepOutcome], *args: Any) -> Future[StepOutcome]:
        future: Future[StepOutcome] = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self) -> None:
        pass


class RayExecutor:
    """Steps as Ray tasks. Connects to `address` (a cluster) or starts a local Ray once per
    process; a Ray already initialised (e.g. by a test session) is reused."""

    name = "ray"

    def __init__(
        self, settings: Settings, *, address: str | None = None, modules: Sequence[ModuleType] = ()
    ) -> None:
        ray = import_ray()
        import cloudpickle

        for module in modules:  # the pipeline file is not importable on the workers
            cloudpickle.register_pickle_by_value(module)
        self._ray = ray
        init_ray(settings, address)
        self._remote = ray.remote(num_cpus=1)(_call)
        # steps that use shipyard (register a model, …) must see this driver's stores, even
        # on workers started before these settings existed
        self._env = {k: v for k, v in os.environ.items() if k.startswith("SHIPYARD_")}
        self._env["SHIPYARD_HOME"] = str(settings.home)
        for key, value in (("DB_URL", settings.db_url), ("ARTIFACTS", settings.artifacts)):
            if value:
                self._env[f"SHIPYARD_{key}"] = value

    def submit(self, fn: Callable[..., StepOutcome], *args: Any) -> Future[StepOutcome]:
        return self._remote.remote(self._env, fn, *args).future()  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        pass  # Ray stays up for the next run in this process; it stops at exit


def _call(env: dict[str, str], fn: Callable[..., StepOutcome], *args: Any) -> StepOutcome:
    from threadpoolctl import threadpool_limits

    from shipyard.config import reset_settings

    for key in [k for k in os.environ if k.startswith("SHIPYARD_")]:
        if key not in env:
            del os.environ[key]
    os.environ.update(env)
    reset_settings()
    with threadpool_limits(1):
        return fn(*args)


def import_ray() -> Any:
    """The `ray` module, or a MissingDependencyError naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(
            "the ray executor needs Ray: pip install 'shipyard[ray]'"
        ) from exc
    return ray


def init_ray(settings: Settings, address: str | None = None) -> None:
    """Start (or connect to) Ray once per process."""
    ray = import_ray()
    if ray.is_initialized():
        return
    address = address or settings.ray_address
    env = {"env_vars": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
        return
    temp = Path(settings.ray_temp_dir or settings.home / "ray")
    temp.mkdir(parents=True, exist_ok=True)
    ray.init(
        runtime_env=env,
        _temp_dir=str(temp.resolve()),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )


def make_executor(
    kind: str, settings: Settings, *, address: str | None = None, modules: Sequence[ModuleType] = ()
) -> LocalExecutor | RayExecutor:
    if kind == "local":
        return LocalExecutor()
    if kind == "ray":
        return RayExecutor(settings, address=address, modules=modules)
    raise InvalidArgumentError(
        f"unknown executor {kind!r}; use one of: {', '.join(EXECUTORS)}", field="executor"
    )
