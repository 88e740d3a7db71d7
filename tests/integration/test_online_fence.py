"""The Redis online store answers the same through the client (the public path, taken when
fences/redis.py's check fails) as on each thread's own connection."""

from __future__ import annotations

import uuid

import pytest

from shipyard.fences import redis as fence
from shipyard.stores.online import RedisOnlineStore
from tests.helpers import redis_url

pytestmark = pytest.mark.redis


def _answers(direct: bool, prefix: str, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    monkeypatch.setattr(fence, "_usable", direct)
    store = RedisOnlineStore(redis_url(), prefix=prefix)
    try:
        if direct:
            store.write("a", [("k1", 5, b"one"), ("k2", 5, b"two")])
            store.write("b", [("k3", 7, b"three")])
        answers: list[object] = [
            store.read("a", ["k1"]),
            store.read("a", ["k2", "nope", "k1"]),
            store.read("missing", ["k1"]),
            store.read_many([("a", ["k1"]), ("b", ["k3", "k1"])]),
        ]
        assert store._direct is direct
        return answers
    finally:
        if not direct:
            for key in store.client.scan_iter(f"{prefix}:*"):
                store.client.delete(key)
        store.close()


def test_the_client_path_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    direct = _answers(True, prefix, monkeypatch)
    assert direct[0] == [b"one"]
    assert direct[1] == [b"two", None, b"one"]
    assert _answers(False, prefix, monkeypatch) == direct
