"""/api/keys: revoking an API key (keys are created with `shipyard keys create`)."""

from __future__ import annotations

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
