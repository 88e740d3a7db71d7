"""The ONNX conversion worker belongs to its metadata store: made on first use, shut down by
the store's close (queued work finished, or given back when cancelled); no process state."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shipyard.registry import conversion
from shipyard.registry.conversion import ConversionWorker
from shipyard.stores import MetadataStore


class FakeRecovery:
    def __init__(self) -> None:
        self.released: list[tuple[str, int, bool]] = []

    def release_conversion(self, name: str, version: int, *, owner: str, failed: bool) -> None:
        self.released.append((name, version, failed))

    def heartbeat_conversions(self, keys: Any, *, owner: str) -> int:
        return len(keys)


def fake_store() -> Any:
    return SimpleNamespace(recovery=FakeRecovery(), db=SimpleNamespace(is_open=True))


@pytest.fixture
def converted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Conversions that take 0.2 s each and release their claim as the real one does."""
    done: list[int] = []

    def convert(
        stores: Any, name: str, version: int, digest: str, *, claimed: bool, worker: Any
    ) -> str:
        time.sleep(0.2)
        done.append(version)
        worker.release(name, version, unfinished=None)
        return "ok"

    monkeypatch.setattr(conversion, "convert_version", convert)
    return done


def submit_three(worker: ConversionWorker) -> None:
    stores: Any = SimpleNamespace()
    for version in (1, 2, 3):
        worker.submit(stores, "churn", version, "sha256:x", claimed=True)


_EARLIER: set[threading.Thread] = set()


@pytest.fixture(autouse=True)
def _earlier_threads() -> None:
    """Threads a server of another test still runs on this worker (a session-scoped one)
    are not this test's."""
    _EARLIER.clear()
    _EARLIER.update(threading.enumerate())


def onnx_threads() -> list[str]:
    """The conversion threads started during this test and still alive."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("shipyard-onnx") and t not in _EARLIER
    ]


def test_close_finishes_what_is_queued(converted: list[int]) -> None:
    store = fake_store()
    worker = ConversionWorker(store)
    submit_three(worker)
    worker.close()
    assert converted == [1, 2, 3] and store.recovery.released == []
    assert onnx_threads() == []


def test_close_with_cancel_waits_only_for_the_running_one_and_gives_the_rest_back(
    converted: list[int],
) -> None:
    store = fake_store()
    worker = ConversionWorker(store)
    submit_three(worker)
    time.sleep(0.05)  # the first one is running
    worker.close(cancel_pending=True)
    assert converted == [1]  # the queued ones were not waited for
    # interrupted, not failed: the attempt does not count against the version
    assert sorted(store.recovery.released) == [("churn", 2, False), ("churn", 3, False)]
    assert onnx_threads() == []


def test_wait_for_conversions_waits_for_every_open_worker(converted: list[int]) -> None:
    workers = [ConversionWorker(fake_store()) for _ in range(2)]
    for worker in workers:
        submit_three(worker)
    conversion.wait(timeout=10)
    assert sorted(converted) == [1, 1, 2, 2, 3, 3]
    for worker in workers:
        worker.close()


def test_the_metadata_store_owns_one_worker_and_closes_it(
    tmp_path: Path, converted: list[int]
) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")
    worker = store.background(ConversionWorker)
    assert store.background(ConversionWorker) is worker
    submit_three(worker)
    store.close()  # finishes the queue, stops the threads
    assert converted == [1, 2, 3] and onnx_threads() == []
    assert store.background(ConversionWorker) is not worker  # a reopened store starts afresh
    store.close()
