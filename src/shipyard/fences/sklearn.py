"""scikit-learn's scorer internals: a named scorer (`sklearn.metrics.get_scorer(name)`) keeps
the metric function it calls in `_score_func`.

`flavors/skops_trust.py` trusts, by name, the metric functions of scikit-learn's named scorers
(a fitted GridSearchCV keeps its scorer), listed from scikit-learn itself. Without
`_score_func` (`check()` false) the function is found by the name the scorer's public repr
shows (`make_scorer(accuracy_score, ...)`) among `sklearn.metrics`' public names, or next to
the scorer's class: the same functions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from shipyard.fences import verdict

_usable: bool | None = None
FALLBACK = "scorer functions are found by the name in the scorer's repr"
_REPR = re.compile(r"make_scorer\((\w+)")


def check() -> bool:
    """Whether `score_function` may read `_score_func`; logs one line if not."""
    global _usable
    try:
        from sklearn import metrics
    except ImportError:
        _usable = True
        return True
    scorer = metrics.get_scorer("accuracy")
    gone = [] if getattr(scorer, "_score_func", None) is metrics.accuracy_score else ["_score_func"]
    _usable = verdict("scikit-learn", [f"{type(scorer).__name__}.{n}" for n in gone], FALLBACK)
    return _usable


def usable() -> bool:
    """`check()`'s answer, checking on the first call."""
    return check() if _usable is None else _usable


def score_function(scorer: Any) -> Callable[..., Any] | None:
    """The metric function a named scorer calls, or None when it cannot be told."""
    if usable():
        fn: Callable[..., Any] | None = getattr(scorer, "_score_func", None)
        return fn
    import sys

    from sklearn import metrics

    found = _REPR.match(repr(scorer))
    if found is None:
        return None
    # a public metric, or a helper defined next to the scorer class (likelihood ratios)
    for module in (metrics, sys.modules.get(type(scorer).__module__)):
        fn = getattr(module, found.group(1), None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None
