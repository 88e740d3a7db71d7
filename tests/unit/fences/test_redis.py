"""fences/redis.py: its check passes on the installed redis-py; a missing name is one log
line, after which the Redis online store answers through the client (same errors; the same
answers are checked on a real Redis in tests/integration/test_online_fence.py)."""

from __future__ import annotations

import logging

import pytest

from shipyard.errors import StoreUnavailableError
from shipyard.fences import redis as fence
from shipyard.stores.online import RedisOnlineStore
from tests.helpers import free_port


@pytest.fixture(autouse=True)
def _fresh_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fence, "_usable", None)  # restored after the test


def test_check_passes_on_the_installed_version(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "shipyard.fences"):
        assert fence.check() is True
    assert caplog.records == []


def test_a_missing_name_is_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # redis-py's own client calls these methods too, so removing one would break the public
    # path as well: the fence is made to rely on a name this redis-py lacks instead
    monkeypatch.setattr(fence, "CONNECTION", (*fence.CONNECTION, "send_commands_later"))
    with caplog.at_level(logging.WARNING, "shipyard.fences"):
        assert fence.check() is False
    assert len(caplog.records) == 1
    assert "Connection.send_commands_later" in caplog.records[0].getMessage()


@pytest.mark.parametrize("direct", [True, False])
def test_an_unreachable_redis_is_unavailable_on_both_paths(
    monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    monkeypatch.setattr(fence, "_usable", direct)
    store = RedisOnlineStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    try:
        with pytest.raises(StoreUnavailableError, match="online store"):
            store.read("view", ["a"])
        with pytest.raises(StoreUnavailableError, match="online store"):
            store.read_many([("view", ["a"]), ("other", ["b", "c"])])
        assert store._direct is direct
    finally:
        store.close()
