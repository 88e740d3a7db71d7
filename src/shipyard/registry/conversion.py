"""ONNX conversion after registration, in the background.

Registering stays fast (the converter library alone takes seconds to import); a single worker
thread converts each new sklearn version from its saved artifact, checks the ONNX outputs
against the original on the stored example, and records `ok` (with the ONNX file's digest) or
`refused` (with the reason) on the version. Serving picks the ONNX file up when it appears.
Conversions still running at interpreter exit are waited for, like buffered metrics.
"""

from __future__ import annotations

import atexit
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from shipyard.errors import ConversionError

if TYPE_CHECKING:
    from shipyard.stores import Stores

log = logging.getLogger("shipyard.conversion")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_pending: set[Future[str]] = set()


def convert_version(stores: Stores, name: str, version: int, artifact_digest: str) -> str:
    """Convert one version now; returns the recorded status ("ok" or "refused")."""
    from shipyard.flavors import convert_saved

    digest: str | None = None
    detail: str | None = None
    try:
        data = convert_saved(stores.artifacts, artifact_digest)
    except ConversionError as exc:
        status, detail = "refused", exc.message
    except Exception as exc:  # skl2onnx fails in many ways on models it does not know
        status, detail = "refused", f"{type(exc).__name__}: {exc}"
    else:
        status = "ok"
        digest = stores.artifacts.put_bytes(data)[0]
    stores.metadata.models.record_conversion(
        name, version, status=status, digest=digest, detail=detail, actor=stores.actor
    )
    log.info(
        "ONNX conversion of %s/%s: %s%s", name, version, status, f" ({detail})" if detail else ""
    )
    return status


def submit(stores: Stores, name: str, version: int, artifact_digest: str) -> Future[str]:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shipyard-onnx")
        future = _executor.submit(convert_version, stores, name, version, artifact_digest)
        _pending.add(future)
    future.add_done_callback(_pending.discard)
    return future


def wait(timeout: float | None = None) -> None:
    """Block until every conversion started in this process has finished."""
    from concurrent.futures import wait as wait_all

    with _lock:
        futures = list(_pending)
    wait_all(futures, timeout=timeout)


@atexit.register
def _finish_at_exit() -> None:
    wait(timeout=120)
