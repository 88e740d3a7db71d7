"""Dependencies' private names, each fenced in one module per dependency.

shipyard reaches past a few libraries' public API where the public path costs more on every
request than the work it wraps. Each such use lives here, in the module named after the
dependency, and nowhere else:

- `prometheus`: adds many latency observations to a histogram child at once
  (`serving/metrics.py`, several workers);
- `onnxruntime`: calls the compiled session directly (`flavors/onnx.py`);
- `redis`: lookups on a connection of its own, outside the pool (`stores/online.py`);
- `sklearn`: the metric function behind a named scorer (`flavors/skops_trust.py`).

Every module has a `check()` that looks, once, for everything it relies on. When something is
missing (a new release renamed it), it logs one line and the callers take the public path: the
same results, only slower. pyproject.toml bounds each of these dependencies at the newest
release tested, naming the module here that is the reason.

This package imports no capability (import-linter), so `stores` and `serving` both use it."""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger("shipyard.fences")


def missing(owner: object, names: Iterable[str]) -> list[str]:
    """The `names` that `owner` (a class or module) lacks."""
    return [n for n in names if not hasattr(owner, n)]


def verdict(dependency: str, gone: list[str], fallback: str) -> bool:
    """True when nothing is `gone`; otherwise log one line naming what is, and the public
    path the callers take instead."""
    if not gone:
        return True
    log.warning(
        "%s %s lacks %s: %s",
        dependency,
        _version(dependency),
        ", ".join(gone),
        fallback,
    )
    return False


def _version(dependency: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dependency)
    except PackageNotFoundError:
        return "(version unknown)"


def check_all(*, only_imported: bool = False) -> dict[str, bool]:
    """Every fence's check, for start-up and `shipyard doctor`-style reports: {name: usable}.
    A dependency that is not installed counts as usable (nothing of it will run).
    `only_imported`: skip the dependencies this process has not imported (a server checks
    what its models use without importing the rest; a fence still checks itself on first use)."""
    import sys

    from shipyard.fences import onnxruntime, prometheus, redis, sklearn

    checks = {
        "prometheus_client": ("prometheus_client", prometheus.check),
        "onnxruntime": ("onnxruntime", onnxruntime.check),
        "redis": ("redis", redis.check),
        "scikit-learn": ("sklearn", sklearn.check),
    }
    return {
        name: check()
        for name, (module, check) in checks.items()
        if not only_imported or module in sys.modules
    }
