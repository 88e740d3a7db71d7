"""Token buckets on a controlled clock, and what the limiter does when Redis cannot be reached
(a real closed port on this machine) in each `on_redis_error` mode."""

from __future__ import annotations

import asyncio

import pytest

from shipyard.errors import InvalidArgumentError, OverloadedError
from shipyard.serving.ratelimit import LocalBuckets, RateLimiter, retry_after_header
from tests.helpers import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refuses_with_the_wait() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    assert [buckets.take("k", 2.0, 3)[0] for _ in range(3)] == [True, True, True]
    allowed, wait = buckets.take("k", 2.0, 3)
    assert not allowed
    assert wait == pytest.approx(0.5)  # one token at 2/s
    clock.now += 0.25
    allowed, wait = buckets.take("k", 2.0, 3)
    assert (allowed, wait) == (False, pytest.approx(0.25))


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    for _ in range(3):
        buckets.take("k", 1.0, 3)
    clock.now += 2.0  # two tokens back
    assert [buckets.take("k", 1.0, 3)[0] for _ in range(3)] == [True, True, False]
    clock.now += 3600.0  # never more than the burst
    assert [buckets.take("k", 1.0, 3)[0] for _ in range(4)] == [True, True, True, False]


def test_keys_have_their_own_buckets() -> None:
    buckets = LocalBuckets(Clock())
    assert buckets.take("a", 1.0, 1)[0]
    assert not buckets.take("a", 1.0, 1)[0]
    assert buckets.take("b", 1.0, 1)[0]


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert [retry_after_header(s) for s in (0.0, 0.2, 1.0, 1.01, 7.5)] == ["1", "1", "1", "2", "8"]


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="on_redis_error") as info:
        RateLimiter("redis://127.0.0.1:1/0", on_redis_error="maybe")
    assert info.value.details["field"] == "rate_limit_on_redis_error"


def test_without_redis_the_limiter_uses_local_buckets() -> None:
    limiter = RateLimiter(None)
    results = [asyncio.run(limiter.take("p", 1.0, 2))[0] for _ in range(3)]
    assert results == [True, True, False]
    assert limiter.redis_errors == 0 and not limiter.degraded


def _unreachable() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: refused


def _samples(limiter: RateLimiter) -> dict[str, float]:
    return {s.name: s.value for family in limiter.collect() for s in family.samples}


async def _takes(limiter: RateLimiter, n: int) -> list[bool]:
    try:
        return [(await limiter.take("p", 1.0, 2))[0] for _ in range(n)]
    finally:
        await limiter.close()


def test_redis_down_local_mode_limits_in_process_and_says_degraded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RateLimiter(_unreachable(), on_redis_error="local", retry_seconds=60)
    assert asyncio.run(_takes(limiter, 3)) == [True, True, False]
    assert limiter.redis_errors == 1  # not tried again within retry_seconds
    assert limiter.degraded
    assert _samples(limiter) == {
        "shipyard_rate_limit_redis_errors_total": 1.0,
        "shipyard_rate_limit_degraded": 1.0,
    }
    assert len([r for r in caplog.records if "cannot reach Redis" in r.getMessage()]) == 1


def test_redis_down_open_mode_lets_everything_through() -> None:
    limiter = RateLimiter(_unreachable(), on_redis_error="open", retry_seconds=60)
    assert asyncio.run(_takes(limiter, 5)) == [True] * 5
    assert limiter.redis_errors == 1 and limiter.degraded


def test_redis_down_closed_mode_refuses_with_503() -> None:
    limiter = RateLimiter(_unreachable(), on_redis_error="closed", retry_seconds=60)
    with pytest.raises(OverloadedError, match="RATE_LIMIT_ON_REDIS_ERROR=closed") as info:
        asyncio.run(_takes(limiter, 1))
    assert info.value.http_status == 503


def test_after_retry_seconds_redis_is_tried_again() -> None:
    limiter = RateLimiter(_unreachable(), on_redis_error="open", retry_seconds=0)
    assert asyncio.run(_takes(limiter, 3)) == [True] * 3
    assert limiter.redis_errors == 3
