"""ONNX conversion after registration, in the background, and its recovery after a crash.

Registering stays fast (the converter library alone takes seconds to import); a single worker
thread converts each new sklearn version from its saved artifact, checks the ONNX outputs
against the original on the stored example, and records `ok` (with the ONNX file's digest),
`refused` (with the reason) or `unavailable` (a converter is not installed: no verdict on the
model; `Registry.convert()` tries again) on the version. Serving picks the ONNX file up when
it appears. Each conversion of a model a native library loads runs in a child process
(`conversion_child`; a scikit-learn model saved with skops converts in-process, Python only): a
model that crashes its framework or the converter marks its own version `failed` ("the
converter crashed (signal 11, SIGSEGV)") and never takes down the process that resumed it.

That thread belongs to a `ConversionWorker`, one per metadata store, which the store owns
(`MetadataStore.background`) and shuts down when it closes: queued conversions are finished
(or, with `cancel_pending`, given back for another process to resume). A process that exits
without closing its stores still finishes them: the executor's thread is joined at exit.

A process killed mid-way leaves the version `pending`. Each pending version is claimed by one
process in the database (`stores/recovery.py`; the registering process claims it with the
version itself) and the claim is renewed every HEARTBEAT_SECONDS. `resume_pending` — run by
`shipyard admin doctor`, and in the background by `shipyard server` / `shipyard serve` at
start-up and then every lease — takes over the claims of dead processes (same host: at once;
another host: once the lease lapsed) and converts. A conversion started MAX_ATTEMPTS times
without finishing (its process died each time) is marked `failed` with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
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


class ConversionWorker:
    """The background ONNX conversions of one metadata store: one worker thread, and the
    claims this process holds on them, renewed by a heartbeat thread. Made by its store on
    first use (`worker_of`) and closed with it."""

    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[Future[str]] = set()
        self._held: set[tuple[str, int]] = set()  # (name, version), renewed by the heartbeat
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
        _LIVE.add(self)

    def submit(
        self, stores: Stores, name: str, version: int, artifact_digest: str, *, claimed: bool
    ) -> Future[str]:
        if claimed:
            self.hold(name, version)  # renewed while it waits in the queue
        with self._lock:
            if self._executor is None:
                self._stop.clear()
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="shipyard-onnx"
                )
            future = self._executor.submit(
                convert_version,
                stores,
                name,
                version,
                artifact_digest,
                claimed=claimed,
                worker=self,
            )
            self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    def wait(self, timeout: float | None = None) -> None:
        """Block until every conversion submitted here has finished."""
        from concurrent.futures import wait as wait_all

        with self._lock:
            futures = list(self._pending)
        wait_all(futures, timeout=timeout)

    def close(self, *, cancel_pending: bool = False) -> None:
        """Finish the queued conversions (or, with `cancel_pending`, only the running one) and
        stop the threads; claims still held (cancelled or cut off) are given back."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=cancel_pending)
        self._stop.set()
        with self._lock:
            held, heartbeat, self._heartbeat = list(self._held), self._heartbeat, None
        for name, version in held:
            self.release(name, version, unfinished="interrupted")
        if heartbeat is not None:
            heartbeat.join()

    def hold(self, name: str, version: int) -> None:
        with self._lock:
            self._held.add((name, version))
            if self._heartbeat is None:
                self._stop.clear()
                self._heartbeat = threading.Thread(
                    target=self._heartbeat_loop, name="shipyard-onnx-heartbeat", daemon=True
                )
                self._heartbeat.start()

    def release(self, name: str, version: int, *, unfinished: str | None) -> None:
        """Stop renewing a claim; an unfinished one ("failed" or "interrupted") is given back
        so others resume it."""
        with self._lock:
            self._held.discard((name, version))
        if unfinished is not None:
            with contextlib.suppress(Exception):  # the database may be what failed
                self._metadata.recovery.release_conversion(
                    name, version, owner=current_owner(), failed=unfinished == "failed"
                )

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._lock:
                keys = sorted(self._held)
            if not keys or not self._metadata.db.is_open:
                continue
            try:
                self._metadata.recovery.heartbeat_conversions(keys, owner=current_owner())
            except Exception:  # the lease may lapse; another process then takes over
                log.warning("renewing ONNX conversion claims failed", exc_info=True)


# every open worker, so `wait_for_conversions()` can wait for all of this process's
# conversions; the stores own the workers, this only finds them
_LIVE: weakref.WeakSet[ConversionWorker] = weakref.WeakSet()


def worker_of(stores: Stores) -> ConversionWorker:
    """The conversion worker that `stores`' metadata store owns."""
    return stores.metadata.background(ConversionWorker)


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
    stores: Stores,
    name: str,
    version: int,
    artifact_digest: str,
    *,
    claimed: bool = False,
    worker: ConversionWorker | None = None,
) -> str:
    """Convert one version now; returns the recorded status ("ok", "refused" or
    "unavailable"). `claimed`:
    this process holds the version's claim (renewed meanwhile by `worker`, by default the one
    of `stores`, and given back if it fails)."""
    from shipyard.registry.conversion_child import ConverterCrashed, convert

    worker = worker or worker_of(stores)
    if claimed:
        worker.hold(name, version)
    recorded = False
    try:
        digest: str | None = None
        detail: str | None = None
        try:  # a native model in a child process: one that crashes the converter crashes it
            data = convert(stores.artifacts, artifact_digest)
        except ConverterCrashed as exc:
            status, detail = "failed", exc.message
        except ConversionError as exc:
            status, detail = "refused", exc.message
        except ImportError as exc:  # a converter not installed: Registry.convert() retries
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            status, detail = "unavailable", f"unavailable: {message}"
        except Exception as exc:  # skl2onnx fails in many ways on models it does not know
            status, detail = "refused", f"{type(exc).__name__}: {exc}"
        else:
            from shipyard.flavors.tree_onnx import parity_of

            status, detail = "ok", parity_of(data)
            digest = stores.artifacts.put_bytes(data)[0]
        stores.metadata.models.record_conversion(
            name, version, status=status, digest=digest, detail=detail, actor=stores.actor
        )
        recorded = True
    finally:
        if claimed:
            worker.release(name, version, unfinished=None if recorded else "failed")
    log.info(
        "ONNX conversion of %s/%s: %s%s", name, version, status, f" ({detail})" if detail else ""
    )
    return status


def submit(
    stores: Stores, name: str, version: int, artifact_digest: str, *, claimed: bool = False
) -> Future[str]:
    """Convert one version in the background, on the worker of `stores`."""
    return worker_of(stores).submit(stores, name, version, artifact_digest, claimed=claimed)


def wait(timeout: float | None = None) -> None:
    """Block until every conversion started in this process (on any open store) has finished."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for worker in list(_LIVE):
        worker.wait(None if deadline is None else max(deadline - time.monotonic(), 0.0))


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
