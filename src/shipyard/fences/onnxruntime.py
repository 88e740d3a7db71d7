"""onnxruntime's compiled session: `InferenceSession._sess`, an
`onnxruntime.capi._pybind_state.InferenceSession` whose `run(output_names, input_feed,
run_options)` is what the public `InferenceSession.run` ends in.

The public `run` checks the input names in Python on every call and builds default run options
when given none; `flavors/onnx.py` checks its one input name once, at load, and makes its run
options once, so a call may go straight to the compiled session. Without these names
(`check()` false, or a session without `_sess`), it calls the public `run`: the same outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shipyard.fences import verdict

_usable: bool | None = None
FALLBACK = "ONNX predictions go through InferenceSession.run"


def check() -> bool:
    """Whether `direct_run` may return the compiled session's `run`; logs one line if not."""
    global _usable
    try:
        from onnxruntime import capi
    except ImportError:
        _usable = True
        return True
    compiled = getattr(getattr(capi, "_pybind_state", None), "InferenceSession", None)
    if compiled is None:
        gone = ["capi._pybind_state.InferenceSession"]
    else:
        gone = [
            f"capi._pybind_state.InferenceSession.{n}" for n in ("run",) if not hasattr(compiled, n)
        ]
    _usable = verdict("onnxruntime", gone, FALLBACK)
    return _usable


def usable() -> bool:
    """`check()`'s answer, checking on the first call."""
    return check() if _usable is None else _usable


def direct_run(session: Any) -> Callable[..., Any] | None:
    """The compiled session's `run` behind `session`, or None: call `session.run` then.
    Called when a model is loaded, never per request."""
    if not usable():
        return None
    run = getattr(getattr(session, "_sess", None), "run", None)
    if run is None:
        verdict("onnxruntime", ["InferenceSession._sess.run"], FALLBACK)
    return run
