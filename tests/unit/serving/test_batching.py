"""The batching scheduler, driven by asyncio with a real thread pool."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from shipyard.errors import OverloadedError
from shipyard.serving.batching import Batcher


class Model:
    """Records the batches it sees; each call takes `delay` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[list[Any]] = []
        self.lock = threading.Lock()

    def __call__(self, payloads: list[Any]) -> list[Any]:
        with self.lock:
            self.batches.append(list(payloads))
        time.sleep(self.delay)
        return [p * 10 for p in payloads]


def test_a_lone_request_runs_at_once() -> None:
    model = Model()

    async def main() -> float:
        b = Batcher(model, max_batch_rows=64, max_wait_ms=500)
        start = time.perf_counter()
        assert await b.submit(1, 1) == 10
        return time.perf_counter() - start

    assert asyncio.run(main()) < 0.1  # far below max_wait: no timer on an idle model
    assert model.batches == [[1]]


def test_no_latency_memory_after_a_burst() -> None:
    model = Model(delay=0.02)

    async def main() -> float:
        b = Batcher(model, max_batch_rows=8, max_wait_ms=200)
        await asyncio.gather(*(b.submit(i, 1) for i in range(40)))
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        await b.submit(99, 1)
        return time.perf_counter() - start

    assert asyncio.run(main()) < 0.1
    assert model.batches[-1] == [99]


def test_requests_batch_while_the_model_is_busy_and_results_come_back_in_order() -> None:
    model = Model(delay=0.05)

    async def main() -> list[Any]:
        b = Batcher(model, max_batch_rows=100, max_wait_ms=1000)
        first = asyncio.ensure_future(b.submit(0, 1))
        await asyncio.sleep(0.01)  # the model is now busy with [0]
        rest = [asyncio.ensure_future(b.submit(i, 1)) for i in range(1, 21)]
        return [await first, *[await r for r in rest]]

    assert asyncio.run(main()) == [i * 10 for i in range(21)]
    assert model.batches[0] == [0]
    assert model.batches[1] == list(range(1, 21))  # accumulated during the first call


def test_batches_respect_the_row_limit() -> None:
    model = Model(delay=0.03)

    async def main() -> None:
        b = Batcher(model, max_batch_rows=10, max_wait_ms=1000)
        blocker = asyncio.ensure_future(b.submit(0, 1))
        await asyncio.sleep(0.01)
        await asyncio.gather(blocker, *(b.submit(i, 4) for i in range(1, 7)))

    asyncio.run(main())
    assert all(len(batch) * 4 <= 10 or batch == [0] for batch in model.batches)
    assert sorted(x for batch in model.batches for x in batch) == list(range(7))


def test_max_wait_bounds_the_oldest_request_when_the_slot_is_busy() -> None:
    model = Model(delay=0.5)

    async def main() -> float:
        b = Batcher(model, max_batch_rows=64, max_wait_ms=50, slots=1, max_overflow=1)
        busy = asyncio.ensure_future(b.submit(0, 1))  # occupies the only slot for 0.5 s
        await asyncio.sleep(0.01)
        start = time.perf_counter()
        await b.submit(1, 1)
        elapsed = time.perf_counter() - start
        await busy
        return elapsed

    elapsed = asyncio.run(main())
    assert elapsed < 0.5 + 0.3  # started after ~50 ms in the overflow slot, not after 0.5 s
    assert [1] in model.batches


def test_a_full_queue_is_refused_at_once() -> None:
    model = Model(delay=0.2)

    async def main() -> None:
        b = Batcher(model, max_batch_rows=4, max_wait_ms=10_000, max_queue_rows=5, max_overflow=0)
        running = asyncio.ensure_future(b.submit(0, 1))
        await asyncio.sleep(0.01)
        waiting = asyncio.ensure_future(b.submit(1, 5))  # fills the queue exactly
        await asyncio.sleep(0.01)
        start = time.perf_counter()
        with pytest.raises(OverloadedError, match="queue is full"):
            await b.submit(2, 1)
        assert time.perf_counter() - start < 0.05
        await asyncio.gather(running, waiting)

    asyncio.run(main())


def test_an_error_reaches_every_caller_of_the_batch() -> None:
    def broken(payloads: list[Any]) -> list[Any]:
        raise ValueError("model exploded")

    async def main() -> list[BaseException | Any]:
        b = Batcher(broken, max_batch_rows=64, max_wait_ms=10)
        return await asyncio.gather(*(b.submit(i, 1) for i in range(3)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, ValueError) for r in results)


@pytest.mark.parametrize("bad", [{"max_batch_rows": 0}, {"max_queue_rows": 0}, {"slots": 0}])
def test_sizes_must_be_positive(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Batcher(Model(), **bad)


def test_on_batch_and_stats_see_every_batch() -> None:
    model = Model(delay=0.05)
    seen: list[tuple[int, int, int, float]] = []

    def on_batch(requests: int, rows: int, waits: list[float], seconds: float) -> None:
        assert len(waits) == requests and all(w >= 0 for w in waits)
        seen.append((requests, rows, len(waits), seconds))

    async def main() -> Batcher:
        b = Batcher(model, max_batch_rows=64, max_wait_ms=10_000, on_batch=on_batch)
        first = asyncio.ensure_future(b.submit(0, 2))
        await asyncio.sleep(0.01)
        await asyncio.gather(first, *(b.submit(i, 3) for i in range(1, 4)))
        return b

    b = asyncio.run(main())
    assert [(r, n) for r, n, _, _ in seen] == [(1, 2), (3, 9)]
    assert all(seconds >= 0.05 for *_, seconds in seen)
    assert (b.stats.batches, b.stats.rows) == (2, 11)
    assert b.queued_rows == 0


def test_without_overflow_the_oldest_waits_for_the_slot() -> None:
    model = Model(delay=0.3)

    async def main() -> float:
        b = Batcher(model, max_batch_rows=64, max_wait_ms=10, slots=1, max_overflow=0)
        busy = asyncio.ensure_future(b.submit(0, 1))
        await asyncio.sleep(0.01)
        start = time.perf_counter()
        await b.submit(1, 1)
        elapsed = time.perf_counter() - start
        await busy
        return elapsed

    assert asyncio.run(main()) >= 0.25  # max_wait passed long before, but no slot opened
    assert model.batches == [[0], [1]]


def test_a_request_larger_than_a_batch_runs_alone() -> None:
    model = Model(delay=0.05)

    async def main() -> list[Any]:
        b = Batcher(model, max_batch_rows=4, max_wait_ms=10_000)
        first = asyncio.ensure_future(b.submit(0, 1))
        await asyncio.sleep(0.01)
        return await asyncio.gather(first, b.submit(1, 9), b.submit(2, 1))

    assert asyncio.run(main()) == [0, 10, 20]
    assert model.batches == [[0], [1], [2]]
