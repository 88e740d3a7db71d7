"""/api/features: definitions, push of fresh values, online lookups."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import Response

from shipyard.server.plane import Plane
from shipyard.server.routes import Routes
from shipyard.serving.app import json_response

routes = Routes(tags=["features"])


class FeaturePushBody(BaseModel):
    rows: list[dict[str, Any]] = Field(
        min_length=1, max_length=10_000, description="join keys, features, optional timestamp"
    )
    to: str = Field(default="online", pattern="^(online|offline|online_and_offline)$")


class FeatureLookupBody(BaseModel):
    features: list[str] | str = Field(description="a service name or view:feature references")
    entities: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


@routes.get("/api/features")
def list_features(plane: Plane, kind: str | None = None) -> Response:
    return json_response(
        {"definitions": [r.to_dict() for r in plane.features.list_definitions(kind)]}
    )


@routes.post("/api/features/online")
def online_features(body: FeatureLookupBody, plane: Plane) -> Response:
    return json_response(plane.features.get_online_features(body.features, body.entities))


@routes.post("/api/features/{view}/push")
def push_features(view: str, body: FeaturePushBody, plane: Plane) -> Response:
    written = plane.features.push(view, body.rows, to=body.to)
    return json_response({"view": view, "rows": len(body.rows), "written": written})
