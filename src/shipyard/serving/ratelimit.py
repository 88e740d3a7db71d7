"""Token-bucket rate limits per principal: in-process by default, shared through Redis when
`SHIPYARD_REDIS_URL` is set, so a limit holds across replicas.

A bucket holds up to `burst` tokens and refills at `rate` per second; each request takes one.
Redis runs the whole check as one Lua script on the server's clock (atomic, no client skew).

If Redis is slow or down, `on_redis_error` decides (`SHIPYARD_RATE_LIMIT_ON_REDIS_ERROR`):
"local" (default) keeps limiting with in-process buckets (each replica then allows the whole
rate), "open" lets every request through, "closed" refuses with 503. After a failure Redis is
left alone for `retry_seconds`, so a dead Redis costs no timeout per request. Both are on
/metrics: `shipyard_rate_limit_redis_errors_total` and `shipyard_rate_limit_degraded`."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from shipyard.errors import InvalidArgumentError, OverloadedError

log = logging.getLogger("shipyard.ratelimit")

_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(retry)}
"""


class LocalBuckets:
    """In-process token buckets; `clock` (seconds, monotonic) is there for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def take(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        now = self._clock()
        with self._lock:
            tokens, ts = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - ts) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return True, 0.0
            self._buckets[key] = (tokens, now)
            return False, (1 - tokens) / rate


class RateLimiter:
    """`await limiter.take(principal, rate, burst)` → (allowed, seconds to wait)."""

    MODES = ("local", "open", "closed")

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        prefix: str = "shipyard:rl:",
        timeout: float = 0.25,
        on_redis_error: str = "local",
        retry_seconds: float = 5.0,
    ) -> None:
        if on_redis_error not in self.MODES:
            raise InvalidArgumentError(
                f"on_redis_error must be one of {', '.join(self.MODES)}, not {on_redis_error!r}",
                field="rate_limit_on_redis_error",
            )
        self.local = LocalBuckets()
        self.redis_url = redis_url
        self.prefix = prefix
        self.timeout = timeout
        self.on_redis_error = on_redis_error
        self.retry_seconds = retry_seconds
        self.redis_errors = 0
        self._skip_until = 0.0  # monotonic time before which Redis is not tried again
        self._failing = False  # the last call to Redis failed
        self._client: Any = None
        self._script: Any = None

    @property
    def degraded(self) -> bool:
        """True from a failed call to Redis until the next one that succeeds."""
        return self._failing

    def _redis(self) -> Any:
        if self._client is None:
            from shipyard.errors import MissingDependencyError

            try:
                import redis.asyncio as aioredis
            except ImportError as exc:
                raise MissingDependencyError(
                    "SHIPYARD_REDIS_URL is set but redis is not installed: "
                    "pip install 'shipyard[redis]'"
                ) from exc
            assert self.redis_url is not None
            self._client = aioredis.from_url(
                self.redis_url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
            self._script = self._client.register_script(_LUA)
        return self._script

    async def take(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        if not self.redis_url:
            return self.local.take(key, rate, burst)
        if time.monotonic() >= self._skip_until:
            try:
                allowed, retry = await self._redis()(keys=[self.prefix + key], args=[rate, burst])
            except Exception as exc:  # Redis down or slow: decided by on_redis_error
                self.redis_errors += 1
                self._failing = True
                self._skip_until = time.monotonic() + self.retry_seconds
                if self.redis_errors == 1 or self.redis_errors % 1000 == 0:
                    log.warning(
                        "rate limiting cannot reach Redis (%s): %s for %g s",
                        exc,
                        self.on_redis_error,
                        self.retry_seconds,
                    )
            else:
                self._failing = False
                return bool(int(allowed)), float(retry)
        if self.on_redis_error == "open":
            return True, 0.0
        if self.on_redis_error == "closed":
            raise OverloadedError(
                "rate limiting is unavailable (Redis cannot be reached) and this server refuses "
                "requests until it can (SHIPYARD_RATE_LIMIT_ON_REDIS_ERROR=closed)"
            )
        return self.local.take(key, rate, burst)

    def collect(self) -> Iterator[Any]:
        """Prometheus samples (the limiter is registered as a collector)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        errors = CounterMetricFamily(
            "shipyard_rate_limit_redis_errors",
            "Rate-limit checks that could not reach Redis.",
            labels=["mode"],
        )
        errors.add_metric([self.on_redis_error], self.redis_errors)
        degraded = GaugeMetricFamily(
            "shipyard_rate_limit_degraded",
            "1 while rate limiting runs without Redis (local buckets, open or closed).",
            labels=["mode"],
        )
        degraded.add_metric([self.on_redis_error], 1 if self.degraded else 0)
        yield from (errors, degraded)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
