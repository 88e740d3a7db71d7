"""/api/experiments and /api/runs: tracked runs, searched and read."""

from __future__ import annotations

from fastapi import Query
from starlette.responses import Response

from shipyard.server.plane import Plane
from shipyard.server.routes import Routes
from shipyard.serving.app import json_response

routes = Routes(tags=["runs"])


@routes.get("/api/experiments")
def list_experiments(plane: Plane) -> Response:
    return json_response({"experiments": plane.runs.experiments()})


@routes.get("/api/runs")
def search(
    plane: Plane,
    filter: str | None = Query(None, description="e.g. metrics.auc > 0.9"),
    order_by: list[str] | None = Query(None, description="e.g. metrics.auc DESC"),
    experiment: list[str] | None = Query(None),
    limit: int = Query(100, ge=1, le=10000),
) -> Response:
    found = plane.runs.search(filter, experiments=experiment, order_by=order_by, limit=limit)
    return json_response({"runs": [r.to_dict() for r in found]})


@routes.get("/api/runs/{run_id}")
def get_run(run_id: str, plane: Plane) -> Response:
    return json_response(plane.runs.get(run_id).to_dict())


@routes.get("/api/runs/{run_id}/metrics/{key}")
def metric_history(run_id: str, key: str, plane: Plane) -> Response:
    run = plane.runs.get(run_id)
    points = plane.runs.metric_history(run.id, key)
    return json_response(
        {
            "run_id": run.id,
            "key": key,
            "points": [
                {"value": p.value, "step": p.step, "timestamp": p.timestamp} for p in points
            ],
        }
    )
