"""The control plane's REST routes under /api: runs, models, aliases, audit, monitoring,
deployments, endpoints, keys and features. The handlers live in `server.routes`, one module
per capability; this mounts them on an app with its `ControlPlane`.

    mount_api(app, stores, registry, settings=settings, table=table, monitor=monitor)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.server.plane import ControlPlane, bind

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shipyard.config import Settings
    from shipyard.monitoring.live import LiveMonitor
    from shipyard.registry import Registry
    from shipyard.serving.runtime import EndpointTable
    from shipyard.stores import Stores


def mount_api(
    app: FastAPI,
    stores: Stores,
    registry: Registry,
    *,
    settings: Settings,
    table: EndpointTable,
    monitor: LiveMonitor,
) -> ControlPlane:
    """Mount every /api route on `app`, acting on one `ControlPlane` (returned)."""
    from shipyard.server.routes import (
        deployments,
        endpoints,
        features,
        keys,
        models,
        monitoring,
        runs,
    )

    plane = ControlPlane(settings, stores, registry, table, monitor)
    bind(app, plane)
    # the order of the route table (and of the OpenAPI document) is the public one
    for module in (runs, models, monitoring, deployments, endpoints, keys, features):
        module.routes.mount(app)
    return plane
