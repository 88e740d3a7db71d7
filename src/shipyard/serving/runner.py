"""Running an app over HTTP with uvicorn (its public API only): in the foreground (the CLI,
one or several worker processes) or on a background thread bound to an ephemeral loopback
port (quickstart and tests). The protocol each connection runs is `serving.uvicorn_fence`'s.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipyard.serving.asgi import ServingApp, asgi_entry
from shipyard.serving.transport import ConnectionLimits, bind

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["BackgroundServer", "bind", "serve_forever"]


def _config(app: FastAPI, log_level: str) -> Any:
    import uvicorn

    from shipyard.serving.uvicorn_fence import protocol_class

    entry = asgi_entry(app)  # the data plane's hot routes before FastAPI's per-request layers
    settings = app.settings if isinstance(app, ServingApp) else None
    limits = ConnectionLimits.from_settings(settings) if settings else ConnectionLimits()
    return uvicorn.Config(
        entry,
        http=protocol_class(entry, limits, enabled=settings is None or settings.fast_path),
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
        server_header=False,
        timeout_keep_alive=math.ceil(limits.keep_alive_seconds),  # ours: to the fraction
        h11_max_incomplete_event_size=limits.max_header_bytes,
    )


def _server_class() -> Any:
    import uvicorn

    class DrainingServer(uvicorn.Server):  # type: ignore[misc]
        """On the first SIGTERM/SIGINT: readiness turns 503 (the app's `draining` event) while
        requests are still served for `drain_seconds`, so a load balancer stops sending new
        ones; then uvicorn's graceful shutdown finishes what is in flight. A second signal
        exits at once."""

        drain_seconds: float = 0.0
        draining: threading.Event | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.draining is not None and not self.draining.is_set() and self.drain_seconds > 0:
                self.draining.set()
                threading.Timer(self.drain_seconds, super().handle_exit, (sig, frame)).start()
                return
            if self.draining is not None:
                self.draining.set()
            super().handle_exit(sig, frame)

    return DrainingServer


def _run_one(
    app_factory: Callable[[], FastAPI],
    sock: socket.socket,
    log_level: str,
    drain_seconds: float,
    preload: bool = False,
) -> None:
    app = app_factory()
    lifecycle = app.lifecycle if isinstance(app, ServingApp) else None
    if preload and lifecycle is not None:
        # with several workers on one socket, a worker accepts only once its models are
        # loaded: readiness is per process, and the kernel picks the process
        lifecycle.preload()
    server = _server_class()(_config(app, log_level))
    server.drain_seconds = drain_seconds
    server.draining = lifecycle.draining if lifecycle is not None else None
    server.run(sockets=[sock])


def serve_forever(
    app_factory: Callable[[], FastAPI],
    host: str,
    port: int,
    *,
    log_level: str = "info",
    workers: int = 1,
    drain_seconds: float = 0.0,
    on_listening: Callable[[int], None] | None = None,
) -> None:
    """Serve in the foreground. With workers > 1 the parent binds one socket, forks that many
    processes that each build their own app (no connections or threads cross a fork), forwards
    SIGTERM/SIGINT to them and exits when they have drained. `on_listening(port)` runs once
    the socket is bound, with its port (announce the address then: a busy port fails before
    it; port 0 has become a free one)."""
    sock = bind(host, port)
    if on_listening is not None:
        on_listening(sock.getsockname()[1])
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal with the handler
    # that was installed before it started: make that one a clean exit (code 0).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if workers <= 1:
        _run_one(app_factory, sock, log_level, drain_seconds)
        return
    from shipyard.stores import close_all

    close_all()  # no pooled database connection may be shared by forked processes
    import tempfile

    # metrics of all workers in one /metrics (prometheus_client's multiprocess mode; it must be
    # switched on before any worker imports prometheus_client)
    metrics_dir = tempfile.mkdtemp(prefix="shipyard-metrics-")
    from shipyard.serving.metrics import share_between_workers

    share_between_workers(metrics_dir)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                _run_one(app_factory, sock, log_level, drain_seconds, preload=True)
            except SystemExit as exc:
                code = int(exc.code or 0)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = 0
    for pid in children:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        failed += os.waitstatus_to_exitcode(status) not in (0, -signal.SIGTERM, -signal.SIGINT)
    sock.close()
    import shutil

    shutil.rmtree(metrics_dir, ignore_errors=True)
    if failed:
        raise SystemExit(1)


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


class BackgroundServer:
    """Serve `app` on a thread; `url` is known once started.

    with BackgroundServer(app) as srv:
        httpx.get(f"{srv.url}/health/ready")
    """

    def __init__(
        self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ) -> None:
        import uvicorn

        self.app = app
        self.sock = bind(host, port)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(_config(app, log_level))
        # uvicorn installs signal handlers only on the main thread, so this one leaves them be
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.sock]},
            daemon=True,
            name=f"shipyard-http-{self.port}",
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def wait_ready(self, path: str = "/health/ready", timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = httpx.get(self.url + path, timeout=5)
                if last.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.url}{path} not ready after {timeout}s: "
            f"{last.text if last is not None else 'no answer'}"
        )

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
