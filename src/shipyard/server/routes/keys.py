"""/api/keys: revoking an API key (keys are created with `shipyard keys create`); /api/whoami:
the caller's name and scopes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from shipyard.server.plane import Plane
from shipyard.server.routes import Routes
from shipyard.serving.app import json_response

routes = Routes(tags=["keys"])


@routes.delete("/api/keys/{key_id}")
def revoke_key(key_id: str, plane: Plane, reason: str | None = None) -> Response:
    """Revoke an API key: refused from now on by this server, by other replicas within
    SHIPYARD_AUTH_CACHE_SECONDS."""
    plane.keys.revoke(key_id, reason=reason)
    return json_response({"id": key_id, "revoked": True})


@routes.get("/api/whoami")
def whoami(request: Request, plane: Plane) -> Response:
    """Who the credentials sent are, with their scopes (what the web UI enables). Without
    credentials on a server that does not require them: anonymous, with every scope."""
    from shipyard.serving.auth import Principal

    principal = request.scope.get("state", {}).get("principal")
    required = plane.settings.auth_required
    if isinstance(principal, Principal):
        return json_response(
            {
                "name": principal.name,
                "actor": principal.actor,
                "scopes": sorted(principal.scopes),
                "endpoints": None if principal.endpoints is None else sorted(principal.endpoints),
                "auth_required": required,
            }
        )
    return json_response(
        {
            "name": "anonymous",
            "actor": "anonymous",
            "scopes": ["admin"],
            "endpoints": None,
            "auth_required": required,
        }
    )
