"""Token-bucket rate limits per principal: in-process by default, shared through Redis when
`SHIPYARD_REDIS_URL` is set, so a limit holds across replicas.

A bucket holds up to `burst` tokens and refills at `rate` per second; each request takes one.
Redis runs the whole check as one Lua script on the server's clock (atomic, no client skew).
If Redis is slow or down, the limiter falls back to its in-process buckets and counts it."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

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
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        now = time.monotonic()
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

    def __init__(
        self, redis_url: str | None = None, *, prefix: str = "shipyard:rl:", timeout: float = 0.25
    ) -> None:
        self.local = LocalBuckets()
        self.redis_url = redis_url
        self.prefix = prefix
        self.timeout = timeout
        self.redis_errors = 0
        self._client: Any = None
        self._script: Any = None

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
        if self.redis_url:
            try:
                allowed, retry = await self._redis()(keys=[self.prefix + key], args=[rate, burst])
                return bool(int(allowed)), float(retry)
            except Exception as exc:  # Redis down or slow: keep limiting, locally
                self.redis_errors += 1
                if self.redis_errors == 1 or self.redis_errors % 1000 == 0:
                    log.warning("rate limiting falls back to in-process buckets: %s", exc)
        return self.local.take(key, rate, burst)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
