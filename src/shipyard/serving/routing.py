"""Which model answers a request under an endpoint's traffic policy.

- single: the stable model.
- canary: `weight` % of requests to the candidate — sticky per key when the caller sends one
  (`"key"` in the body or an `X-Shipyard-Key` header), random otherwise.
- ab: sticky by key (required), `split` % of keys to the candidate.
- shadow: the stable model answers; the candidate also predicts, off the response path.
- bluegreen: the stable model until the switch, then the candidate, all at once.

Assignment hashes `endpoint:key` with BLAKE2b, so every replica puts a key in the same bucket.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.serving.runtime import ServedModel

BUCKETS = 10_000


def bucket(endpoint: str, key: str) -> int:
    """A stable bucket in [0, 10000) for a caller key."""
    digest = hashlib.blake2b(f"{endpoint}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def choose(
    name: str, stable: ServedModel, candidate: ServedModel, key: str | None
) -> tuple[ServedModel, ServedModel | None]:
    traffic = stable.traffic
    if traffic.kind == "canary":
        share = traffic.weight / 100.0
        draw = bucket(name, key) / BUCKETS if key is not None else random.random()
        return (candidate if draw < share else stable), None
    if traffic.kind == "ab":
        if key is None:
            raise InvalidArgumentError(
                f"endpoint '{name}' runs an A/B test: send the caller's id as 'key' in the "
                "body (or an X-Shipyard-Key header) so it always sees the same variant",
                field="key",
            )
        share = traffic.split / 100.0
        return (candidate if bucket(name, key) / BUCKETS < share else stable), None
    if traffic.kind == "shadow":
        sample = traffic.sample
        return stable, (candidate if sample >= 1.0 or random.random() < sample else None)
    if traffic.kind == "bluegreen":
        return (candidate if traffic.switched else stable), None
    return stable, None
