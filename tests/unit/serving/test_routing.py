"""Traffic splits hold statistically, and sticky assignment depends only on the key."""

from __future__ import annotations

import math
from typing import Any

import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.serving.routing import bucket, choose
from shipyard.serving.runtime import ServedModel


def pair(policy: str, **config: Any) -> tuple[ServedModel, ServedModel]:
    stable = ServedModel("churn", "models:/churn/1", config={"policy": policy, **config})
    candidate = ServedModel("churn", "models:/churn/2", variant="candidate")
    return stable, candidate


def within_binomial(hits: int, n: int, p: float) -> bool:
    return abs(hits - n * p) <= 4 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("keyed", [False, True])
def test_a_ten_percent_canary_gets_ten_percent(keyed: bool) -> None:
    stable, candidate = pair("canary", weight=10)
    n = 10_000
    hits = sum(
        choose("churn", stable, candidate, f"user-{i}" if keyed else None)[0] is candidate
        for i in range(n)
    )
    assert within_binomial(hits, n, 0.10), hits


def test_ab_is_sticky_and_split() -> None:
    stable, candidate = pair("ab", split=30)
    first = {k: choose("churn", stable, candidate, f"u{k}")[0] is candidate for k in range(5000)}
    again = {k: choose("churn", stable, candidate, f"u{k}")[0] is candidate for k in range(5000)}
    assert first == again
    assert within_binomial(sum(first.values()), 5000, 0.30)
    with pytest.raises(InvalidArgumentError, match="send the caller's id as 'key'"):
        choose("churn", stable, candidate, None)


def test_shadow_and_bluegreen() -> None:
    stable, candidate = pair("shadow", sample=1.0)
    assert choose("churn", stable, candidate, None) == (stable, candidate)
    stable, candidate = pair("bluegreen", switched=False)
    assert choose("churn", stable, candidate, None) == (stable, None)
    stable, candidate = pair("bluegreen", switched=True)
    assert choose("churn", stable, candidate, None) == (candidate, None)


def test_buckets_are_the_same_in_every_process() -> None:
    import subprocess
    import sys

    code = "from shipyard.serving.routing import bucket; print(bucket('churn', 'user-42'))"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert int(other) == bucket("churn", "user-42")
