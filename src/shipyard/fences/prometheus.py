"""prometheus_client's histogram internals: a labelled `Histogram` child keeps its sum in
`_sum` and its per-bucket counts (not cumulative, the last one +Inf) in `_buckets`, values
with an `inc` method; `observe()` updates exactly these two.

prometheus_client has no call that adds many observations at once. With several workers,
`serving/metrics.py` tallies requests in plain numbers and publishes the difference to the
shared files about once a second: through these two names that is one `inc` per changed
bucket. Without them (`check()` false) it keeps each latency until the next publication and
replays it through the public `Histogram.observe`, which gives the same samples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shipyard.fences import verdict

_usable: bool | None = None

# Histogram method -> the private names it must use for `add` to mean what `observe` means
_RELIES_ON = {
    "_metric_init": ("_sum", "_buckets"),
    "observe": ("_sum", "_buckets", "_upper_bounds", "inc"),
}
FALLBACK = "each request's latency goes through Histogram.observe"


def check() -> bool:
    """Whether `add` may be used; logs one line when it may not. Creates no metric (in
    multiprocess mode a throwaway one would show up in every scrape), so it reads which names
    the methods use."""
    global _usable
    try:
        from prometheus_client import Histogram, values
    except ImportError:
        _usable = True
        return True
    gone = []
    for method, names in _RELIES_ON.items():
        code = getattr(getattr(Histogram, method, None), "__code__", None)
        used = set(getattr(code, "co_names", ()))
        gone += [f"Histogram.{method}'s {n}" for n in names if n not in used]
    if not hasattr(values.ValueClass, "inc"):
        gone.append("ValueClass.inc")
    _usable = verdict("prometheus_client", gone, FALLBACK)
    return _usable


def usable() -> bool:
    """`check()`'s answer, checking on the first call."""
    return check() if _usable is None else _usable


def add(child: Any, total: float, counts: Sequence[int]) -> None:
    """Add observations summing to `total` to a labelled histogram child, `counts[i]` of
    them in bucket i (the bucket order of the histogram, +Inf last). Only when `usable()`."""
    child._sum.inc(total)
    buckets = child._buckets
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
