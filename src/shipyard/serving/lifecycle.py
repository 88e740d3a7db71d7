"""Start and stop of one serving process, the same for `shipyard serve` and `shipyard server`:
load the models before the first request (`preload`, or in the background), start the
prediction and feedback logs and the background loops, resume interrupted conversions; at
shutdown stop all of that in order and publish the last metrics. Draining (readiness 503
while requests are still served) is the endpoint table's `draining` event.

    lifecycle = Lifecycle(plane, stores, settings, preload=load_models, loops=[refresh])
    app = FastAPI(lifespan=lifecycle.lifespan)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import threading

    from shipyard.config import Settings
    from shipyard.serving.dataplane import DataPlane
    from shipyard.serving.ratelimit import RateLimiter
    from shipyard.stores import Stores

log = logging.getLogger("shipyard.serving")

Loop = Callable[[], Coroutine[Any, Any, None]]


class Service(Protocol):
    """Another listener of the data plane, run from the lifecycle's start to its stop."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def freeze_heap() -> None:
    """Move everything loaded so far (models, libraries) out of the garbage collector's view:
    full collections then scan only what requests allocate, instead of pausing over the whole
    heap (the cause of p99 spikes, found with py-spy)."""
    import gc

    gc.collect()
    gc.freeze()


class Lifecycle:
    """Start/stop of a serving process (see the module's docstring). `preload` loads the
    models (blocking; the runner calls it before accepting when several workers share a
    socket); `loops` run from start to stop; `limiter` is closed at stop; `services` (other
    listeners of the same data plane, e.g. the V2 gRPC port: `start()`/`stop()` coroutines)
    start once the logs take predictions and stop, finishing their calls in flight, before
    the logs close."""

    def __init__(
        self,
        plane: DataPlane,
        stores: Stores,
        settings: Settings,
        *,
        preload: Callable[[], None],
        loops: Sequence[Loop] = (),
    ) -> None:
        self.plane = plane
        self.stores = stores
        self.settings = settings
        self._preload = preload
        self.loops = list(loops)
        self.limiter: RateLimiter | None = None
        self.services: list[Service] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._resuming: Any = None

    @property
    def draining(self) -> threading.Event:
        """Set on the first SIGTERM: readiness answers 503 while requests are still served."""
        return self.plane.table.draining

    def preload(self) -> None:
        """Load the models now, then freeze the heap; the initial load is done either way."""
        try:
            self._preload()
        finally:
            self.plane.table.initial_load_done.set()
            freeze_heap()

    async def start(self) -> None:
        from shipyard.registry.conversion import resume_conversions

        self._tasks = [asyncio.create_task(loop()) for loop in [*self.loops, self._check_fences]]
        plane = self.plane
        for log_ in (plane.predlog, plane.feedback_log):
            if log_ is not None:
                log_.start()
        for service in self.services:
            await service.start()
        self._resuming = resume_conversions(
            self.stores, self.settings, after=plane.table.initial_load_done
        )

    async def _check_fences(self) -> None:
        """Once the first models are loaded, the fences of every dependency they imported,
        checked off the event loop: one log line per private name gone (the callers then take
        the public path). Importing nothing more keeps a server's memory what its models need."""
        from shipyard import fences

        while not self.plane.table.initial_load_done.is_set():  # no thread parked on it
            await asyncio.sleep(0.5)
        await asyncio.to_thread(fences.check_all, only_imported=True)

    async def stop(self) -> None:
        if self._resuming is not None:
            self._resuming.set()
        for service in self.services:
            await service.stop()
        plane = self.plane
        plane.metrics.publish()  # several workers: this one's last counts into the shared files
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for log_ in (plane.predlog, plane.feedback_log):
            if log_ is not None:
                await asyncio.to_thread(log_.close)
        if self.limiter is not None:
            await self.limiter.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        await self.start()
        yield
        await self.stop()

    def load_in_background(self) -> Loop:
        """A loop that runs `preload` on a thread unless it ran already (one worker loads
        while it serves: readiness says 503 until then)."""

        async def load() -> None:
            if not self.plane.table.initial_load_done.is_set():
                await asyncio.to_thread(self.preload)

        return load

    def every(self, seconds: float, work: Callable[[], None], what: str) -> Loop:
        """A loop running `work` on a thread every `seconds` (after the first wait); a failure
        is logged, never stops serving."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await asyncio.to_thread(work)
                except Exception:
                    log.exception("%s failed", what)

        return loop
