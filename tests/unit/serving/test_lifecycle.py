"""One lifecycle for `shipyard serve` and `shipyard server`: preload, start, stop, drain."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from shipyard.serving.lifecycle import Lifecycle


class Log:
    def __init__(self) -> None:
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True


class Limiter:
    closed = False

    async def close(self) -> None:
        self.closed = True


def make(monkeypatch: pytest.MonkeyPatch, preload: Any = lambda: None) -> Lifecycle:
    import shipyard.registry.conversion as conversion

    resuming = threading.Event()
    monkeypatch.setattr(conversion, "resume_conversions", lambda *a, **k: resuming)
    table = SimpleNamespace(initial_load_done=threading.Event(), draining=threading.Event())
    metrics = SimpleNamespace(published=0)
    metrics.publish = lambda: setattr(metrics, "published", metrics.published + 1)
    plane = SimpleNamespace(table=table, metrics=metrics, predlog=Log(), feedback_log=Log())
    lifecycle = Lifecycle(plane, None, None, preload=preload)  # type: ignore[arg-type]
    lifecycle.resuming = resuming  # type: ignore[attr-defined]
    return lifecycle


def test_start_and_stop_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    lifecycle = make(monkeypatch, preload=lambda: ran.append("preload"))
    lifecycle.loops.append(lifecycle.load_in_background())

    async def forever() -> None:
        await asyncio.sleep(3600)

    lifecycle.loops.append(forever)
    lifecycle.limiter = Limiter()  # type: ignore[assignment]

    async def scenario() -> None:
        await lifecycle.start()
        plane: Any = lifecycle.plane
        assert plane.predlog.started and plane.feedback_log.started
        for _ in range(200):
            if plane.table.initial_load_done.is_set():
                break
            await asyncio.sleep(0.01)
        await lifecycle.stop()

    asyncio.run(scenario())
    plane: Any = lifecycle.plane
    assert ran == ["preload"] and plane.table.initial_load_done.is_set()
    assert plane.predlog.closed and plane.feedback_log.closed
    assert plane.metrics.published == 1 and lifecycle.limiter.closed  # type: ignore[union-attr]
    assert lifecycle.resuming.is_set()  # type: ignore[attr-defined]


def test_a_failed_preload_still_ends_the_initial_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("no model")

    lifecycle = make(monkeypatch, preload=broken)
    with pytest.raises(RuntimeError):
        lifecycle.preload()
    assert lifecycle.plane.table.initial_load_done.is_set()
    assert lifecycle.draining is lifecycle.plane.table.draining


def test_a_periodic_loop_survives_a_failing_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    lifecycle = make(monkeypatch)
    passes: list[int] = []

    def work() -> None:
        passes.append(1)
        raise RuntimeError("a store hiccup")

    async def scenario() -> None:
        task = asyncio.create_task(lifecycle.every(0.01, work, "test pass")())
        while len(passes) < 3:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(scenario())
    assert len(passes) >= 3


def test_services_start_after_the_logs_and_stop_before_they_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another listener of the data plane (the V2 gRPC port) serves from start to stop and
    finishes its calls while the prediction log still takes them."""
    lifecycle = make(monkeypatch)
    plane: Any = lifecycle.plane
    seen: list[tuple[str, bool]] = []

    class Service:
        async def start(self) -> None:
            seen.append(("start", plane.predlog.started))

        async def stop(self) -> None:
            seen.append(("stop", plane.predlog.closed))

    lifecycle.services.append(Service())

    async def scenario() -> None:
        await lifecycle.start()
        await lifecycle.stop()

    asyncio.run(scenario())
    assert seen == [("start", True), ("stop", False)]
    assert plane.predlog.closed
