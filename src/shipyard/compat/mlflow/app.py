"""MLflow's REST API on a shipyard server: the routes, their JSON in and out, MLflow's errors.

    mount_mlflow(app, stores)       # what create_server_app does (control plane only)

Every route is answered under both /api/2.0/mlflow/ and /ajax-api/2.0/mlflow/ by one
dispatcher: a POST's JSON body or a GET's query string (plus a path's parameters, e.g. a
logged model's id) becomes a dict, the handler (in `experiments.py`, `runs.py`,
`logged_models.py`, `registry.py`, run in a worker thread: the stores block) returns the
answer's dict. Fields a handler does not know are ignored, as MLflow's server does. Any route
not in `ROUTES` (traces, prompts, gateway, webhooks…) answers 404 ENDPOINT_NOT_FOUND, so a
client's fallbacks work. Errors are MLflow's `{error_code, message}` with its statuses.
`artifacts.py` is the `mlflow-artifacts` proxy (streamed files, its own routes).
Auth is the server's (routes.required_scope: reads need "read", tracking and registering
"track", moving an alias or deleting "admin").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from shipyard.errors import (
    AlreadyExistsError,
    ConflictError,
    ForbiddenError,
    GateBlockedError,
    InvalidArgumentError,
    ModelLoadError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ShipyardError,
    StoreError,
    UnauthorizedError,
    UntrustedModelError,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from shipyard.stores import Stores

log = logging.getLogger("shipyard.compat.mlflow")
PREFIXES: Final = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
# MLflow 3's newer routes (server-info, traces, logged models…): none answered yet
PREFIXES_3: Final = ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow")
# GET /version: the MLflow level this answers. The client compares it only to offer span
# logging (3.4 and later), which this server does not answer.
MLFLOW_API_VERSION: Final = "3.0.0"
# (method, path under a prefix) -> (handler group, method name)
ROUTES: Final[dict[tuple[str, str], tuple[str, str]]] = {
    ("POST", "experiments/create"): ("experiments", "create"),
    ("GET", "experiments/get"): ("experiments", "get"),
    ("GET", "experiments/get-by-name"): ("experiments", "get_by_name"),
    ("POST", "experiments/search"): ("experiments", "search"),
    ("GET", "experiments/search"): ("experiments", "search"),
    ("POST", "experiments/update"): ("experiments", "update"),
    ("POST", "experiments/delete"): ("experiments", "delete"),
    ("POST", "experiments/restore"): ("experiments", "restore"),
    ("POST", "experiments/set-experiment-tag"): ("experiments", "set_tag"),
    ("POST", "experiments/delete-experiment-tag"): ("experiments", "delete_tag"),
    ("POST", "runs/create"): ("runs", "create"),
    ("GET", "runs/get"): ("runs", "get"),
    ("POST", "runs/update"): ("runs", "update"),
    ("POST", "runs/delete"): ("runs", "delete"),
    ("POST", "runs/restore"): ("runs", "restore"),
    ("POST", "runs/search"): ("runs", "search"),
    ("POST", "runs/log-metric"): ("runs", "log_metric"),
    ("POST", "runs/log-parameter"): ("runs", "log_param"),
    ("POST", "runs/log-batch"): ("runs", "log_batch"),
    ("POST", "runs/set-tag"): ("runs", "set_tag"),
    ("POST", "runs/delete-tag"): ("runs", "delete_tag"),
    ("POST", "runs/log-inputs"): ("runs", "log_inputs"),
    ("POST", "runs/log-model"): ("runs", "log_model"),
    ("GET", "metrics/get-history"): ("runs", "metric_history"),
    ("GET", "metrics/get-history-bulk-interval"): ("runs", "metric_history_interval"),
    ("POST", "runs/outputs"): ("logged_models", "log_outputs"),
    # MLflow 3's logged models ({…}: a path parameter, handed over as a field)
    ("POST", "logged-models"): ("logged_models", "create"),
    ("POST", "logged-models/search"): ("logged_models", "search"),
    ("GET", "logged-models/{model_id}"): ("logged_models", "get"),
    ("PATCH", "logged-models/{model_id}"): ("logged_models", "finalize"),
    ("DELETE", "logged-models/{model_id}"): ("logged_models", "delete"),
    ("PATCH", "logged-models/{model_id}/tags"): ("logged_models", "set_tags"),
    ("DELETE", "logged-models/{model_id}/tags/{tag_key}"): ("logged_models", "delete_tag"),
    ("POST", "logged-models/{model_id}/params"): ("logged_models", "log_params"),
    ("GET", "logged-models/{model_id}/artifacts/directories"): ("logged_models", "list_files"),
    # the model registry
    ("POST", "registered-models/create"): ("registry", "create_model"),
    ("GET", "registered-models/get"): ("registry", "get_model"),
    ("GET", "registered-models/search"): ("registry", "search_models"),
    ("POST", "registered-models/rename"): ("registry", "rename_model"),
    ("PATCH", "registered-models/update"): ("registry", "update_model"),
    ("DELETE", "registered-models/delete"): ("registry", "delete_model"),
    ("POST", "registered-models/set-tag"): ("registry", "set_model_tag"),
    ("DELETE", "registered-models/delete-tag"): ("registry", "delete_model_tag"),
    ("POST", "registered-models/alias"): ("registry", "set_alias"),
    ("DELETE", "registered-models/alias"): ("registry", "delete_alias"),
    ("GET", "registered-models/alias"): ("registry", "get_by_alias"),
    ("POST", "registered-models/get-latest-versions"): ("registry", "latest_versions"),
    ("GET", "registered-models/get-latest-versions"): ("registry", "latest_versions"),
    ("POST", "model-versions/create"): ("registry", "create_version"),
    ("GET", "model-versions/get"): ("registry", "get_version"),
    ("PATCH", "model-versions/update"): ("registry", "update_version"),
    ("DELETE", "model-versions/delete"): ("registry", "delete_version"),
    ("GET", "model-versions/search"): ("registry", "search_versions"),
    ("GET", "model-versions/get-download-uri"): ("registry", "download_uri"),
    ("POST", "model-versions/set-tag"): ("registry", "set_version_tag"),
    ("DELETE", "model-versions/delete-tag"): ("registry", "delete_version_tag"),
    ("POST", "model-versions/transition-stage"): ("registry", "transition_stage"),
}
# routes with path parameters, as (method, pattern, handler)
PATTERNS: Final = tuple(
    (
        method,
        re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"),
        found,
    )
    for (method, path), found in ROUTES.items()
    if "{" in path
)
# MLflow 3's /api/3.0 routes answered here
ROUTES_3: Final[dict[tuple[str, str], tuple[str, str]]] = {
    ("GET", "server-info"): ("meta", "server_info"),
}
# POST routes that only read (searches): the "read" scope suffices
READ_POSTS: Final = frozenset(
    {
        "experiments/search",
        "runs/search",
        "logged-models/search",
        "registered-models/get-latest-versions",
    }
)

Handler = Callable[[Mapping[str, Any]], dict[str, Any]]


def error_code(exc: ShipyardError) -> tuple[int, str]:
    """MLflow's HTTP status and error code for a shipyard error."""
    if isinstance(exc, AlreadyExistsError):
        return 400, "RESOURCE_ALREADY_EXISTS"
    table: tuple[tuple[type[ShipyardError], int, str], ...] = (
        (NotFoundError, 404, "RESOURCE_DOES_NOT_EXIST"),
        (InvalidArgumentError, 400, "INVALID_PARAMETER_VALUE"),
        (ConflictError, 400, "INVALID_STATE"),
        (UnauthorizedError, 401, "UNAUTHENTICATED"),
        (ForbiddenError, 403, "PERMISSION_DENIED"),
        (RateLimitedError, 429, "REQUEST_LIMIT_EXCEEDED"),
        (PayloadTooLargeError, 413, "INVALID_PARAMETER_VALUE"),
        (StoreError, 503, "TEMPORARILY_UNAVAILABLE"),
        (UntrustedModelError, 400, "INVALID_PARAMETER_VALUE"),
        (ModelLoadError, 400, "INVALID_PARAMETER_VALUE"),
        (GateBlockedError, 400, "INVALID_STATE"),
    )
    for kind, status, code in table:
        if isinstance(exc, kind):
            return status, code
    return 500, "INTERNAL_ERROR"


def error_response(status: int, code: str, message: str) -> Response:
    from shipyard.serving.asgi import json_response

    return json_response({"error_code": code, "message": message}, status)


class MlflowApi:
    """The handlers over one set of stores, found by route."""

    def __init__(self, stores: Stores) -> None:
        from shipyard.compat.mlflow.experiments import ExperimentRoutes
        from shipyard.compat.mlflow.logged_models import LoggedModelRoutes
        from shipyard.compat.mlflow.registry import RegistryRoutes
        from shipyard.compat.mlflow.runs import RunRoutes
        from shipyard.registry import Registry
        from shipyard.tracking import Experiments, RemoteRuns, RunQueries
        from shipyard.tracking.logged_models import LoggedModels

        experiments = ExperimentRoutes(Experiments(stores))
        runs, models = RemoteRuns(stores), LoggedModels(stores)
        self.groups: dict[str, Any] = {
            "experiments": experiments,
            "runs": RunRoutes(RunQueries(stores), runs, experiments, models),
            "logged_models": LoggedModelRoutes(models, experiments),
            "registry": RegistryRoutes(Registry(stores), runs, models),
            "meta": ServerInfo(),
        }

    def handler(
        self, method: str, path: str, *, v3: bool = False
    ) -> tuple[Handler, dict[str, str]] | None:
        """The handler of a route and its path parameters (None: no such route)."""
        method, path = ("GET" if method == "HEAD" else method), path.strip("/")
        found = (ROUTES_3 if v3 else ROUTES).get((method, path))
        params: dict[str, str] = {}
        if found is None and not v3:
            for pattern_method, pattern, candidate in PATTERNS:
                match = pattern.match(path) if pattern_method == method else None
                if match is not None:
                    found, params = candidate, match.groupdict()
                    break
        if found is None:
            return None
        group, name = found
        handler: Handler = getattr(self.groups[group], name)
        return handler, params

    async def answer(self, request: Request) -> Response:
        """Answer one request under a prefix (`path` in the route's parameters)."""
        from starlette.concurrency import run_in_threadpool

        from shipyard.serving.asgi import json_response

        path = request.path_params.get("path", "")
        v3 = not request.url.path.startswith(PREFIXES)
        found = self.handler(request.method, path, v3=v3)
        if found is None:
            return error_response(
                404,
                "ENDPOINT_NOT_FOUND",
                f"No API endpoint for {request.method} {request.url.path} on this server",
            )
        body = await _request_fields(request)
        if isinstance(body, str):
            return error_response(400, "MALFORMED_REQUEST", body)
        handler, params = found
        body.update(params)
        try:
            answer = await run_in_threadpool(handler, body)
        except ShipyardError as exc:
            status, code = error_code(exc)
            message = exc.to_dict()["error"] if isinstance(exc, StoreError) else exc.message
            return error_response(status, code, message)
        except Exception:  # a bug: MLflow's shape still, the details in the server's log
            log.exception("MLflow API %s %s failed", request.method, request.url.path)
            return error_response(500, "INTERNAL_ERROR", "the server failed; see its log")
        return json_response(answer)


async def _request_fields(request: Request) -> dict[str, Any] | str:
    """A GET's query (a parameter given twice is a list), or a JSON body's object; a string
    says why the body is not one."""
    import orjson

    if request.method in ("GET", "HEAD"):
        fields: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in fields:
                previous = fields[key]
                fields[key] = (
                    [*previous, value] if isinstance(previous, list) else [previous, value]
                )
            else:
                fields[key] = value
        for key in ("experiment_ids", "order_by", "run_ids"):  # repeated fields stay lists
            if isinstance(fields.get(key), str):
                fields[key] = [fields[key]]
        return fields
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"the request body is not JSON: {exc}"
    if not isinstance(found, dict):
        return "the request body must be a JSON object"
    return found


class ServerInfo:
    """GET /api/3.0/mlflow/server-info: what a client asks before it moves artifacts (this
    server proxies them, without multipart or presigned URLs)."""

    def server_info(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "store_type": "SqlStore",
            "artifact_serving_enabled": True,
            "workspaces_enabled": False,
            "multipart_uploads_enabled": False,
            "multipart_downloads_enabled": False,
            "artifacts_presigned_only": False,
        }


def mount_mlflow(app: FastAPI, stores: Stores) -> MlflowApi:
    """Answer MLflow's tracking routes on `app` from `stores`, plus /health and /version."""
    from starlette.responses import PlainTextResponse

    from shipyard.compat.mlflow.artifacts import mount_artifacts

    api = MlflowApi(stores)
    mount_artifacts(app, stores)
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    for prefix in (*PREFIXES, *PREFIXES_3):
        app.add_route(prefix + "/{path:path}", api.answer, methods=methods, include_in_schema=False)

    async def health(request: Request) -> Response:
        return PlainTextResponse("OK")

    async def version(request: Request) -> Response:
        return PlainTextResponse(MLFLOW_API_VERSION)

    app.add_route("/health", health, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_route("/version", version, methods=["GET", "HEAD"], include_in_schema=False)
    return api
