"""/api/monitoring: an endpoint's live window, as the monitor last evaluated it."""

from __future__ import annotations

from fastapi import Query
from starlette.responses import Response

from shipyard.server.plane import Plane
from shipyard.server.routes import Routes
from shipyard.serving.app import json_response

routes = Routes(tags=["monitoring"])


@routes.get("/api/monitoring/{name}")
def monitoring(
    name: str, plane: Plane, evaluate: bool = Query(False, description="evaluate now")
) -> Response:
    """The latest evaluation of an endpoint's live window (drift, quality, accuracy)."""
    plane.deployments.get(name)
    monitor = plane.monitor
    if evaluate or name not in monitor.latest:
        monitor.evaluate_all([name])
    return json_response(monitor.latest[name].to_dict())
