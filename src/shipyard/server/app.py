"""`shipyard server`: the control-plane API and every stored endpoint, in one process.

Endpoints are read from the metadata store and re-read every few seconds (a new endpoint, a
changed one, or an alias that moved is picked up without restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shipyard.config import Settings

log = logging.getLogger("shipyard.server")


def create_server_app(
    settings: Settings,
    *,
    refresh_seconds: float = 2.0,
    trusted: bool = False,
    endpoints: list[str] | None = None,
    control_plane: bool = True,
) -> FastAPI:
    """The server app. `endpoints` limits which stored endpoints it serves; without the
    control plane (a `shipyard serve --endpoint` replica) it runs no API, monitor or rollout
    controller — only the data plane, following the stored policy."""
    from fastapi import FastAPI

    from shipyard import __version__
    from shipyard.registry import Registry
    from shipyard.registry.conversion import resume_conversions
    from shipyard.server.api import mount_api
    from shipyard.serving.app import (
        freeze_heap,
        install_error_handlers,
        make_feedback_log,
        make_predlog,
        mount_data_plane,
    )
    from shipyard.serving.metrics import ServingMetrics
    from shipyard.serving.runtime import EndpointTable, sync_endpoints
    from shipyard.stores import open_stores

    stores = open_stores(settings)
    registry = Registry(stores)
    metrics = ServingMetrics()
    table = EndpointTable(registry, metrics, trusted=trusted)
    predlog = make_predlog(settings, metrics)
    from shipyard.monitoring.live import LiveMonitor, MonitoringGauges

    monitor = LiveMonitor(settings, stores, MonitoringGauges(metrics.registry))
    feedback_log = make_feedback_log(settings)

    def sync_once() -> None:
        records = [
            (e.name, e.model_uri, e.generation, {**e.config, "policy": e.policy})
            for e in stores.metadata.endpoints.list()
            if endpoints is None or e.name in endpoints
        ]
        for change in sync_endpoints(table, records):
            log.info("endpoints: %s", change)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def loop() -> None:
            first = True
            while True:
                try:
                    await asyncio.to_thread(sync_once)
                except Exception:  # a store hiccup must not stop serving what is loaded
                    log.exception("refreshing endpoints failed")
                finally:
                    if first:
                        table.initial_load_done.set()
                        freeze_heap()
                        first = False
                await asyncio.sleep(refresh_seconds)

        async def monitor_loop() -> None:
            while True:
                await asyncio.sleep(settings.monitor_interval_seconds)
                try:
                    await asyncio.to_thread(monitor.evaluate_all, table.names())
                except Exception:  # monitoring must never take serving down
                    log.exception("monitoring pass failed")

        async def rollout_loop() -> None:
            from shipyard.rollout import Controller

            controller = Controller(settings, stores)
            while True:
                await asyncio.sleep(settings.rollout_interval_seconds)
                try:
                    await asyncio.to_thread(controller.tick_all)
                except Exception:  # the controller must never take serving down
                    log.exception("rollout controller pass failed")

        task = asyncio.create_task(loop())
        monitor_task = (
            asyncio.create_task(monitor_loop())
            if control_plane and settings.monitor_interval_seconds > 0
            else None
        )
        rollout_task = (
            asyncio.create_task(rollout_loop())
            if control_plane and settings.rollout_interval_seconds > 0
            else None
        )
        for log_ in (predlog, feedback_log):
            if log_ is not None:
                log_.start()
        resuming = resume_conversions(stores, settings, after=table.initial_load_done)
        yield
        resuming.set()
        metrics.publish()  # several workers: this one's last counts into the shared files
        task.cancel()
        for extra in (monitor_task, rollout_task):
            if extra is not None:
                extra.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for log_ in (predlog, feedback_log):
            if log_ is not None:
                await asyncio.to_thread(log_.close)
        await app.state.limiter.close()

    app = FastAPI(
        title="shipyard server",
        version=__version__,
        lifespan=lifespan,
        description="Control plane (/api) and data plane (V2 + /endpoints) of shipyard.",
    )
    app.state.table = table
    app.state.settings = settings
    app.state.draining = table.draining
    app.state.stores = stores
    install_error_handlers(app)
    app.state.predlog = predlog
    app.state.monitor = monitor

    def preload() -> None:
        sync_once()
        table.initial_load_done.set()
        freeze_heap()

    app.state.preload = preload
    mount_data_plane(app, table, metrics, settings, predlog, feedback_log)
    if control_plane:
        mount_api(app, stores, registry, settings=settings, table=table, monitor=monitor)
        from shipyard.server.limits import BodyLimitMiddleware

        app.add_middleware(BodyLimitMiddleware, limit=settings.api_max_body_bytes)
    from shipyard.serving.auth import install_auth

    app.state.limiter = install_auth(
        app, settings, stores.metadata.keys, required=settings.auth_required
    )
    metrics.registry.register(app.state.limiter)  # its Redis errors and degraded state
    return app
