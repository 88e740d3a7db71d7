"""ONNX conversion after registration, in the background, and its recovery after a crash.

Registering stays fast (the converter library alone takes seconds to import); a single worker
thread converts each new sklearn version from its saved artifact, checks the ONNX outputs
against the original on the stored example, and records `ok` (with the ONNX file's digest) or
`refused` (with the reason) on the version. Serving picks the ONNX file up when it appears.
Conversions still running at interpreter exit are waited for, like buffered metrics.

A process killed mid-way leaves the version `pending`. Each pending version is claimed by one
process in the database (`stores/recovery.py`; the registering process claims it with the
version itself) and the claim is renewed every HEARTBEAT_SECONDS. `resume_pending` — run by
`shipyard admin doctor`, and in the background by `shipyard server` / `shipyard serve` at
start-up and then every lease — takes over the claims of dead processes (same host: at once;
another host: once the lease lapsed) and converts. A conversion started MAX_ATTEMPTS times
without finishing (its process died each time) is marked `failed` with the reason.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.errors import ConversionError
from shipyard.stores.owners import current_owner, describe, owner_alive

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.stores import MetadataStore, Stores
    from shipyard.stores.recovery import PendingConversion

log = logging.getLogger("shipyard.conversion")

MAX_ATTEMPTS = 3
HEARTBEAT_SECONDS = 10.0

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_pending: set[Future[str]] = set()
# claims this process holds, renewed by the heartbeat thread: (store, name, version)
_held: set[tuple[MetadataStore, str, int]] = set()
_heartbeat: threading.Thread | None = None


@dataclass(frozen=True)
class Resumption:
    """What `resume_pending` found for one pending version and what it did."""

    name: str
    version: int
    action: str  # converted | refused | failed | in progress | would convert | would fail
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__}


def convert_version(
    stores: Stores, name: str, version: int, artifact_digest: str, *, claimed: bool = False
) -> str:
    """Convert one version now; returns the recorded status ("ok" or "refused"). `claimed`:
    this process holds the version's claim (renewed meanwhile, given back if it fails)."""
    from shipyard.flavors import convert_saved

    key = (stores.metadata, name, version)
    if claimed:
        _hold(key)
    recorded = False
    try:
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
        recorded = True
    finally:
        if claimed:
            _release(key, unfinished=None if recorded else "failed")
    log.info(
        "ONNX conversion of %s/%s: %s%s", name, version, status, f" ({detail})" if detail else ""
    )
    return status


def submit(
    stores: Stores, name: str, version: int, artifact_digest: str, *, claimed: bool = False
) -> Future[str]:
    global _executor
    if claimed:
        _hold((stores.metadata, name, version))  # renewed while it waits in the queue
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shipyard-onnx")
        future = _executor.submit(
            convert_version, stores, name, version, artifact_digest, claimed=claimed
        )
        _pending.add(future)
    future.add_done_callback(_pending.discard)
    return future


def wait(timeout: float | None = None) -> None:
    """Block until every conversion started in this process has finished."""
    from concurrent.futures import wait as wait_all

    with _lock:
        futures = list(_pending)
    wait_all(futures, timeout=timeout)


# -- recovery --------------------------------------------------------------------------------------


def resume_pending(
    stores: Stores,
    *,
    lease_seconds: float,
    dry_run: bool = False,
    stop: threading.Event | None = None,
) -> list[Resumption]:
    """Find pending conversions no live process holds; convert them here, one at a time
    (each claimed just before), or mark them failed after MAX_ATTEMPTS. Claims of live
    processes are reported and left alone."""
    recovery = stores.metadata.recovery
    out: list[Resumption] = []
    for p in recovery.pending_conversions():
        if stop is not None and stop.is_set():
            break
        free, why = _claim_state(p, lease_seconds)
        if free is None:
            out.append(Resumption(p.name, p.version, "in progress", why))
            continue
        if p.attempts >= MAX_ATTEMPTS:
            detail = (
                f"the conversion was started {p.attempts} times and never finished (the last "
                f"attempt: {why}); Registry.convert() tries again"
            )
            if dry_run:
                out.append(Resumption(p.name, p.version, "would fail", detail))
            elif recovery.fail_conversion(p, detail=detail, actor=stores.actor):
                log.warning("ONNX conversion of %s/%s failed: %s", p.name, p.version, detail)
                out.append(Resumption(p.name, p.version, "failed", detail))
            continue
        if dry_run:
            out.append(Resumption(p.name, p.version, "would convert", why))
            continue
        if not recovery.claim_conversion(
            p.name, p.version, owner=current_owner(), lease_seconds=lease_seconds, take_from=free
        ):
            out.append(Resumption(p.name, p.version, "in progress", "claimed by another process"))
            continue
        status = convert_version(stores, p.name, p.version, p.artifact_digest, claimed=True)
        action = "converted" if status == "ok" else status
        out.append(Resumption(p.name, p.version, action, why))
    return out


def _claim_state(p: PendingConversion, lease_seconds: float) -> tuple[str | None, str]:
    """(the claim to take over — "" when unclaimed — or None if a live process holds it, why)."""
    if p.claimed_by is None:
        return "", "no process was converting it"
    who = describe(p.claimed_by)
    alive = owner_alive(p.claimed_by)
    if alive is False:
        return p.claimed_by, f"{who} is gone"
    age = time.time() - (p.claimed_at or 0) / 1000
    if alive is None and age > lease_seconds:
        return p.claimed_by, f"{who} sent no heartbeat for {age:.0f} s"
    return None, f"{who} is converting it"


def resume_conversions(
    stores: Stores, settings: Settings, *, after: threading.Event | None = None
) -> threading.Event:
    """Resume pending conversions in a daemon thread (a server's start-up does not wait for
    it): once `after` is set (e.g. the served models are loaded), then every lease. Returns
    the event that stops it."""
    stop = threading.Event()
    lease_seconds = settings.conversion_lease_seconds

    def loop() -> None:
        if after is not None:
            after.wait(timeout=120)
        while not stop.is_set():
            try:
                for r in resume_pending(stores, lease_seconds=lease_seconds, stop=stop):
                    if r.action != "in progress":
                        log.info(
                            "resumed ONNX conversion of %s/%s: %s", r.name, r.version, r.action
                        )
            except Exception:  # a store hiccup: the next pass tries again
                log.exception("resuming ONNX conversions failed")
            stop.wait(lease_seconds)

    threading.Thread(target=loop, name="shipyard-onnx-resume", daemon=True).start()
    return stop


def _hold(key: tuple[MetadataStore, str, int]) -> None:
    global _heartbeat
    with _lock:
        _held.add(key)
        if _heartbeat is None:
            _heartbeat = threading.Thread(
                target=_heartbeat_loop, name="shipyard-onnx-heartbeat", daemon=True
            )
            _heartbeat.start()


def _release(key: tuple[MetadataStore, str, int], *, unfinished: str | None) -> None:
    """Stop renewing a claim; an unfinished one ("failed" or "interrupted") is given back so
    others resume it."""
    with _lock:
        _held.discard(key)
    if unfinished is not None:
        metadata, name, version = key
        with contextlib.suppress(Exception):  # the database may be what failed
            metadata.recovery.release_conversion(
                name, version, owner=current_owner(), failed=unfinished == "failed"
            )


def _heartbeat_loop() -> None:
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        with _lock:
            held = list(_held)
        by_store: dict[MetadataStore, list[tuple[str, int]]] = {}
        for metadata, name, version in held:
            if metadata.db.is_open:
                by_store.setdefault(metadata, []).append((name, version))
        for metadata, keys in by_store.items():
            try:
                metadata.recovery.heartbeat_conversions(keys, owner=current_owner())
            except Exception:  # the lease may lapse; another process then takes over
                log.warning("renewing ONNX conversion claims failed", exc_info=True)


@atexit.register
def _finish_at_exit() -> None:
    wait(timeout=120)
    with _lock:
        held = list(_held)
    for key in held:  # still queued, or cut off by the exit: give the claims back
        _release(key, unfinished="interrupted")
