"""/api/experiments and /api/runs: tracked runs, searched and read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from shipyard.server.plane import Plane
from shipyard.server.routes import Routes
from shipyard.serving.app import json_response

routes = Routes(tags=["runs"])


@routes.get("/api/experiments")
def list_experiments(
    plane: Plane,
    details: Annotated[
        bool, Query(description="each with its run counts by status, created and last run")
    ] = False,
) -> Response:
    """Every experiment's name, oldest first; with `details`, each as a record."""
    if details:
        return json_response({"experiments": [e.to_dict() for e in plane.experiments.list()]})
    return json_response({"experiments": plane.runs.experiments()})


class RenameBody(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=256,
        # not blank, no '/' nor control character (the store's rule, stated for clients)
        pattern=r"^[^/\x00-\x1f\x7f]*[^\s/\x00-\x1f\x7f][^/\x00-\x1f\x7f]*$",
        description="the experiment's new name",
    )


@routes.get("/api/experiments/{name}")
def get_experiment(
    name: str, plane: Plane, limit: int = Query(10, ge=0, le=1000, description="recent runs")
) -> Response:
    exp = plane.experiments.get(name)
    runs = plane.experiments.recent_runs(name, limit) if limit else []
    return json_response({**exp.to_dict(), "recent_runs": [r.to_dict() for r in runs]})


@routes.route("PATCH", "/api/experiments/{name}")
def rename_experiment(name: str, body: RenameBody, plane: Plane) -> Response:
    return json_response(plane.experiments.rename(name, body.name).to_dict())


@routes.delete("/api/experiments/{name}")
def delete_experiment(name: str, plane: Plane, reason: str | None = None) -> Response:
    """Permanent, with its runs; refused (409 naming them) while a model version's source
    run, a pipeline record or a RUNNING run is in it."""
    gone = plane.experiments.delete(name, reason=reason)
    return json_response({"name": gone.name, "deleted": True, "runs": gone.runs})


@routes.get("/api/runs")
def search(
    plane: Plane,
    filter: str | None = Query(None, description="e.g. metrics.auc > 0.9"),
    order_by: list[str] | None = Query(None, description="e.g. metrics.auc DESC"),
    experiment: list[str] | None = Query(None),
    limit: int = Query(100, ge=1, le=10000),
    page_token: Annotated[
        str | None, Query(max_length=20000, description="next_page_token of the previous page")
    ] = None,
    keys: Annotated[
        list[str] | None,
        Query(description="only these params/metrics/tags, e.g. params.lr (repeat the field)"),
    ] = None,
    max_keys: Annotated[
        int | None,
        Query(ge=0, le=100000, description="only the first N params, metrics and tags by name"),
    ] = None,
) -> Response:
    """Runs matching, a keyset page at a time: `next_page_token` (null on the last page)
    asks for the next one with the same filter and order_by."""
    found, token = plane.runs.page(
        filter,
        experiments=experiment,
        order_by=order_by,
        limit=limit,
        page_token=page_token,
        keys=keys,
        max_keys=max_keys,
    )
    return json_response({"runs": [r.to_dict() for r in found], "next_page_token": token})


@routes.get("/api/runs/columns")
def columns(
    plane: Plane,
    filter: str | None = Query(None, description="e.g. params.model = 'rf'"),
    experiment: list[str] | None = Query(None),
) -> Response:
    """Over every run matching: the count, and per param, tag and metric key how many runs
    have it, its distinct values (range for metrics) and whether it varies."""
    return json_response(plane.runs.columns(filter, experiments=experiment))


@routes.get("/api/runs/groups")
def groups(
    plane: Plane,
    by: str = Query(..., max_length=1000, description="e.g. params.model"),
    metric: str | None = Query(None, max_length=1000, description="e.g. metrics.auc"),
    filter: str | None = Query(None, description="e.g. status = 'FINISHED'"),
    experiment: list[str] | None = Query(None),
    limit: int = Query(1000, ge=1, le=10000),
) -> Response:
    """The runs matching grouped by a param, tag or attribute: per value its run count and,
    with `metric`, that metric's min, mean and max; largest groups first."""
    found = plane.runs.groups(by, filter, experiments=experiment, metric=metric, limit=limit)
    return json_response({"by": by, "metric": metric, "groups": found})


@routes.get("/api/runs/{run_id}")
def get_run(run_id: str, plane: Plane) -> Response:
    return json_response(plane.runs.get(run_id).to_dict())


@routes.get("/api/runs/{run_id}/metrics/{key:path}")  # a key may hold "/": train/loss
def metric_history(
    run_id: str,
    key: str,
    plane: Plane,
    max_points: Annotated[
        int | None,
        Query(ge=2, le=100_000, description="at most this many points (min/max buckets)"),
    ] = None,
    min_step: Annotated[
        int | None, Query(ge=-(2**63), le=2**63 - 1, description="only steps >= this")
    ] = None,
    max_step: Annotated[
        int | None, Query(ge=-(2**63), le=2**63 - 1, description="only steps <= this")
    ] = None,
) -> Response:
    """A metric's points by step (all of them by default). With `max_points`, a range holding
    more is downsampled by the database to min/max buckets (a one-step spike stays) and
    `downsampled` is true; `total`, `min_step` and `max_step` describe the range's points."""
    run = plane.runs.get(run_id)
    series = plane.runs.metric_series(
        run.id, key, max_points=max_points, min_step=min_step, max_step=max_step
    )
    return json_response(
        {
            "run_id": run.id,
            "key": key,
            "points": [
                {"value": p.value, "step": p.step, "timestamp": p.timestamp} for p in series.points
            ],
            "downsampled": series.downsampled,
            "total": series.total,
            "min_step": series.min_step,
            "max_step": series.max_step,
        }
    )


@routes.get("/api/runs/{run_id}/models")
def run_models(run_id: str, plane: Plane) -> Response:
    """The model versions this run registered (their source run is this one)."""
    run = plane.runs.get(run_id)
    versions = plane.registry.versions_of_run(run.id)
    return json_response({"run_id": run.id, "versions": [v.to_dict() for v in versions]})


@routes.get("/api/runs/{run_id}/environment")
def run_environment(run_id: str, plane: Plane) -> Response:
    """What the run ran on: Python version, implementation, platform and every installed
    distribution with its version (null fields when the run recorded none)."""
    run = plane.runs.get(run_id)
    return json_response(
        {"run_id": run.id, "digest": run.environment_digest, **plane.runs.environment(run.id)}
    )


@routes.get(
    "/api/runs/{run_id}/artifacts/{path:path}",
    response_class=Response,
    responses={200: {"description": "the artifact's bytes", "content": {"text/plain": {}}}},
)
def get_artifact(
    run_id: str,
    path: str,
    plane: Plane,
    inline: Annotated[
        bool, Query(description="display (images, text) instead of a download")
    ] = False,
    preview: Annotated[bool, Query(description="only the first MiB")] = False,
) -> Response:
    """A run artifact's bytes, as a download unless `inline` and it is an image or text.
    Never run by the browser under this origin: `nosniff`, a sandboxing
    Content-Security-Policy (no scripts), HTML and SVG only inside that sandbox, everything
    else that is text as text/plain. A path with `..`, a backslash or NUL, or an absolute
    one, is a 400 naming `path`."""
    from shipyard.server.artifact_answers import artifact_response

    record, file = plane.runs.artifact(run_id, path)
    return artifact_response(record, file, inline=inline, preview=preview)
