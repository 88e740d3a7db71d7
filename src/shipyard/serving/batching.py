"""Adaptive batching for one model. Knows nothing of HTTP.

Requests queue; an executor slot takes everything queued (up to `max_batch_rows`) the moment
it is free. So a lone request on an idle model runs at once — no timer, no memory of past load —
and batches form only while the model is busy, growing with the load. `max_wait_ms` bounds the
queueing of the oldest request: when it has waited that long and every slot is busy, one
overflow slot opens (up to `max_overflow`). The queue is bounded in rows; a request that does
not fit is refused at once with OverloadedError (HTTP 503 + Retry-After), never after a wait.

    batcher = Batcher(run_batch, max_batch_rows=64, max_wait_ms=5)
    result = await batcher.submit(columns, nrows)
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import OverloadedError

# run_batch(list of per-request inputs) -> list of per-request results, same order.
RunBatch = Callable[[list[Any]], list[Any]]

# the batching defaults of every endpoint (`shipyard serve`'s options, an endpoint's config)
MAX_BATCH_ROWS = 64
MAX_WAIT_MS = 5.0
MAX_QUEUE_ROWS = 4096


@dataclass
class _Pending:
    payload: Any
    rows: int
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """What the last dispatch looked like (for metrics)."""

    batches: int = 0
    rows: int = 0


class Batcher:
    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch_rows: int = MAX_BATCH_ROWS,
        max_wait_ms: float = MAX_WAIT_MS,
        max_queue_rows: int = MAX_QUEUE_ROWS,
        slots: int = 1,
        max_overflow: int = 1,
        on_batch: Callable[[int, int, list[float], float], None] | None = None,
    ) -> None:
        if max_batch_rows < 1 or max_queue_rows < 1 or slots < 1:
            raise ValueError("max_batch_rows, max_queue_rows and slots must be positive")
        self.run_batch = run_batch
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue_rows = max_queue_rows
        self.slots = slots
        self.max_overflow = max_overflow
        self.on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self.stats = BatchStats()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def submit(self, payload: Any, rows: int) -> Any:
        if self._queued_rows + rows > self.max_queue_rows:
            raise OverloadedError(
                f"the queue is full ({self._queued_rows} rows waiting, limit "
                f"{self.max_queue_rows}); retry shortly",
                reason="queue_full",
            )
        loop = asyncio.get_running_loop()
        pending = _Pending(payload, rows, loop.create_future())
        self._queue.append(pending)
        self._queued_rows += rows
        self._dispatch()
        return await pending.future

    def _dispatch(self) -> None:
        while self._queue and self._running < self.slots:
            self._start_batch()
        if self._queue and self._running < self.slots + self.max_overflow:
            waited = time.perf_counter() - self._queue[0].enqueued
            if waited >= self.max_wait:
                self._start_batch()
            elif self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self.max_wait - waited, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def _start_batch(self) -> None:
        batch: list[_Pending] = []
        rows = 0
        while self._queue and (not batch or rows + self._queue[0].rows <= self.max_batch_rows):
            item = self._queue.popleft()
            batch.append(item)
            rows += item.rows
        self._queued_rows -= rows
        self._running += 1
        task = asyncio.get_running_loop().create_task(self._execute(batch, rows))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, batch: list[_Pending], rows: int) -> None:
        start = time.perf_counter()
        waits = [start - p.enqueued for p in batch]
        try:
            results = await asyncio.to_thread(self.run_batch, [p.payload for p in batch])
        except BaseException as exc:  # every caller of the batch gets the error
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
        else:
            for p, result in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)
        finally:
            self._running -= 1
            self.stats.batches += 1
            self.stats.rows += rows
            if self.on_batch is not None:
                self.on_batch(len(batch), rows, waits, time.perf_counter() - start)
            if self._queue:
                self._dispatch()
