"""`shipyard server`: the control-plane API and every stored endpoint, in one process.

Endpoints are read from the metadata store and re-read every few seconds (a new endpoint, a
changed one, or an alias that moved is picked up without restart). The data plane's layers
are the same as `shipyard serve`'s (`serving.app`): a `DataPlane`, a `Lifecycle`, the ASGI
routes; the control plane adds its API, the live monitor and the rollout controller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shipyard.config import Settings
    from shipyard.monitoring.live import LiveMonitor
    from shipyard.rollout import Controller
    from shipyard.serving.lifecycle import Lifecycle, Loop
    from shipyard.serving.runtime import EndpointTable
    from shipyard.stores import Stores

log = logging.getLogger("shipyard.server")

# where `/` sends a browser: the web UI (a replica without the control plane: the API docs)
HOME = "/ui/"
HOME_WITHOUT_UI = "/docs"


def create_server_app(
    settings: Settings,
    *,
    refresh_seconds: float = 2.0,
    trusted: bool = False,
    endpoints: list[str] | None = None,
    control_plane: bool = True,
    ignore_env: bool = False,
) -> FastAPI:
    """The server app. `endpoints` limits which stored endpoints it serves; without the
    control plane (a `shipyard serve --endpoint` replica) it runs no API, monitor or rollout
    controller — only the data plane, following the stored policy."""
    from shipyard import __version__
    from shipyard.monitoring.live import LiveMonitor, MonitoringGauges
    from shipyard.registry import Registry
    from shipyard.server.api import mount_api
    from shipyard.serving.asgi import ServingApp, mount_data_plane
    from shipyard.serving.auth import install_auth
    from shipyard.serving.dataplane import DataPlane
    from shipyard.serving.docs import index_links, install_home
    from shipyard.serving.lifecycle import Lifecycle
    from shipyard.serving.metrics import ServingMetrics
    from shipyard.serving.runtime import EndpointTable
    from shipyard.stores import open_stores

    stores = open_stores(settings)
    registry = Registry(stores)
    metrics = ServingMetrics()
    table = EndpointTable(registry, metrics, trusted=trusted, ignore_env=ignore_env)
    plane = DataPlane.from_settings(settings, table, metrics)
    monitor = LiveMonitor(settings, stores, MonitoringGauges(metrics.registry))
    sync = _endpoint_sync(stores, table, endpoints)
    lifecycle = Lifecycle(plane, stores, settings, preload=sync)
    lifecycle.loops.append(_refresh_loop(lifecycle, sync, refresh_seconds))
    if control_plane:
        lifecycle.loops += _control_loops(lifecycle, settings, stores, monitor)
    app = ServingApp(
        title="shipyard server",
        version=__version__,
        lifespan=lifecycle.lifespan,
        description="Control plane (/api) and data plane (V2 + /endpoints) of shipyard.",
    )
    mount_data_plane(app, plane, lifecycle)
    extra: dict[str, object] = {"auth_required": settings.auth_required}
    if control_plane:  # the UI asks here, before it has credentials, whether it needs some
        extra.update(endpoints="/api/endpoints", ui="/ui/")
    install_home(app, HOME if control_plane else HOME_WITHOUT_UI, index_links(**extra))
    if control_plane:
        from shipyard.ui import install_ui

        mount_api(app, stores, registry, settings=settings, table=table, monitor=monitor)
        from shipyard.compat.mlflow import mount_mlflow

        mount_mlflow(app, stores)
        install_ui(app)
        from shipyard.compat.mlflow import ARTIFACT_PREFIXES
        from shipyard.server.limits import BodyLimitMiddleware

        app.add_middleware(
            BodyLimitMiddleware,
            limit=settings.api_max_body_bytes,
            prefix=("/api", "/ajax-api"),
            larger=tuple((p, settings.artifact_max_bytes) for p in ARTIFACT_PREFIXES),
        )
    lifecycle.limiter = install_auth(app, settings, stores, required=settings.auth_required)
    metrics.registry.register(lifecycle.limiter)  # its Redis errors and degraded state
    return app


def _endpoint_sync(
    stores: Stores, table: EndpointTable, endpoints: list[str] | None
) -> Callable[[], None]:
    """One pass that loads, reloads and unloads the table's endpoints from the stored ones."""
    from shipyard.rollout import Deployments
    from shipyard.serving.runtime import sync_endpoints

    deployments = Deployments(stores)

    def sync_once() -> None:
        records = [
            (e.name, e.model_uri, e.generation, {**e.config, "policy": e.policy})
            for e in deployments.list()
            if endpoints is None or e.name in endpoints
        ]
        for change in sync_endpoints(table, records):
            log.info("endpoints: %s", change)

    return sync_once


def _refresh_loop(lifecycle: Lifecycle, sync: Callable[[], None], seconds: float) -> Loop:
    """Re-read the stored endpoints every `seconds`; the first pass ends the initial load."""
    from shipyard.serving.lifecycle import freeze_heap

    async def loop() -> None:
        table = lifecycle.plane.table
        first = True
        while True:
            try:
                await asyncio.to_thread(sync)
            except Exception:  # a store hiccup must not stop serving what is loaded
                log.exception("refreshing endpoints failed")
            finally:
                if first:
                    table.initial_load_done.set()
                    freeze_heap()
                    first = False
            await asyncio.sleep(seconds)

    return loop


def _control_loops(
    lifecycle: Lifecycle, settings: Settings, stores: Stores, monitor: LiveMonitor
) -> list[Loop]:
    """The control plane's background work: the live monitor and the rollout controller,
    each a pass every few seconds that never takes serving down."""
    loops = []
    if settings.monitor_interval_seconds > 0:
        table = lifecycle.plane.table

        def evaluate() -> None:
            monitor.evaluate_all(table.names())

        loops.append(
            lifecycle.every(settings.monitor_interval_seconds, evaluate, "monitoring pass")
        )
    if settings.rollout_interval_seconds > 0:
        controllers: list[Controller] = []  # made at the first pass, as the loop starts

        def tick() -> None:
            if not controllers:
                from shipyard.rollout import Controller

                controllers.append(Controller(settings, stores))
            controllers[0].tick_all()

        loops.append(
            lifecycle.every(settings.rollout_interval_seconds, tick, "rollout controller pass")
        )
    return loops
