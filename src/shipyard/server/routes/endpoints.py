"""/api/endpoints: stored endpoints, with what this server serves of each."""

from __future__ import annotations

from fastapi import Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from shipyard.server.plane import Plane
from shipyard.server.routes import Routes
from shipyard.serving.app import json_response
from shipyard.serving.auth import visible_endpoints

routes = Routes(tags=["endpoints"])


class EndpointBody(BaseModel):
    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    model_uri: str = Field(min_length=1, description="e.g. models:/churn@champion")
    reason: str | None = None
    replace: bool = False
    require_approval: bool = False
    override_gates: str | None = Field(
        default=None, description="proceed despite failed quality gates: the reason (audited)"
    )


@routes.get("/api/endpoints")
def list_endpoints(request: Request, plane: Plane) -> Response:
    """Every stored endpoint; for a caller limited to some endpoints, those."""
    visible = visible_endpoints(request.scope)
    served = {s.endpoint: s.describe() for s in plane.table.all()}
    return json_response(
        {
            "endpoints": [
                {**e.to_dict(), "serving": served.get(e.name)}
                for e in plane.deployments.list()
                if visible is None or e.name in visible
            ]
        }
    )


@routes.post("/api/endpoints", status_code=201)
def create_endpoint(body: EndpointBody, plane: Plane) -> Response:
    record = plane.deployments.create(
        body.name,
        body.model_uri,
        require_approval=body.require_approval,
        replace=body.replace,
        reason=body.reason,
        override_gates=body.override_gates,
    )
    return json_response(record.to_dict(), 201)


@routes.get("/api/endpoints/{name}")
def get_endpoint(name: str, plane: Plane) -> Response:
    record = plane.deployments.get(name)
    table = plane.table
    serving = table.get(name).describe() if name in table.names() else None
    return json_response({**record.to_dict(), "serving": serving})


@routes.get("/api/endpoints/{name}/stats")
def endpoint_stats(name: str, plane: Plane) -> Response:
    """Live traffic by model version from this server's own counters: requests, errors, rows
    and latency (p50/p95/p99) since it started, and over the last minute (`recent`, with the
    request rate; null on the first call of a quiet server). Also what the server has loaded:
    the stable model and a rollout's candidate."""
    plane.deployments.get(name)  # an unknown endpoint is a 404 with a suggestion
    table = plane.table
    candidate = table.candidate(name)
    return json_response(
        {
            **plane.traffic.of(name),
            "serving": table.get(name).describe() if name in table.names() else None,
            "candidate": candidate.describe() if candidate is not None else None,
        }
    )


@routes.delete("/api/endpoints/{name}")
def delete_endpoint(name: str, plane: Plane, reason: str | None = None) -> Response:
    plane.deployments.delete(name, reason=reason)
    return json_response({"name": name, "deleted": True})
