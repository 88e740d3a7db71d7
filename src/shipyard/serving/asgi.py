"""The data plane's ASGI app: its routes (thin functions calling the `DataPlane`), the error
handlers, and the fast path that answers the hot routes before FastAPI's router.

    app = ServingApp(title="…", lifespan=lifecycle.lifespan)
    mount_data_plane(app, plane, lifecycle)       # routes, error handlers, fast path

One way from a request to its answer: a route of the table in `serving.routes` calls the
`DataPlane` method of its kind. The fast path (`DataPlaneFastPath`) is an optimisation of the
same way for the hot routes: it recognises them with `routes.HOT_PATH` and calls the same
method, skipping the router, dependency solving and Response objects. Two exist per app: one
a middleware inside the app (behind its auth middleware), for any ASGI host; the other,
`app.fast_path`, wraps the whole app and is what shipyard's own HTTP server runs (it skips
FastAPI's per-request layers too), guarded by the same auth check (`install_auth`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from shipyard.errors import ShipyardError
from shipyard.serving import protocol, routes
from shipyard.serving.answers import (
    Answer,
    ClientGone,
    Headers,
    body_too_large,
    check_declared_length,
    error_answer,
)
from shipyard.serving.auth import AuthMiddleware
from shipyard.serving.openapi import PREDICT_BODY, V2_BODY

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.serving.dataplane import DataPlane
    from shipyard.serving.lifecycle import Lifecycle

log = logging.getLogger("shipyard.serving")


class ServingApp(FastAPI):
    """A FastAPI app that serves a data plane: its collaborators as typed attributes, for the
    HTTP server that runs it (`serving.runner`) and for tests."""

    dataplane: DataPlane
    lifecycle: Lifecycle
    settings: Settings
    fast_path: DataPlaneFastPath | None = None

    def __init__(
        self, *, docs_url: str | None = "/docs", redoc_url: str | None = "/redoc", **options: Any
    ) -> None:
        """FastAPI's `options`; its documentation pages (Swagger UI at `docs_url`, ReDoc at
        `redoc_url`) load their scripts from the package, not from a CDN (`serving.docs`)."""
        from shipyard.serving.docs import install_docs

        super().__init__(docs_url=None, redoc_url=None, **options)
        install_docs(self, docs_url, redoc_url)


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        protocol.dumps(doc), status_code=status, media_type="application/json", headers=headers
    )


def answer_response(answer: Answer) -> Response:
    status, body, headers = answer
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


def error_response(exc: ShipyardError, request_id: str | None = None) -> Response:
    return answer_response(error_answer(exc, request_id))


class AsgiRequest:
    """A request as the data plane reads it (`answers.BodyRequest`), straight from ASGI."""

    __slots__ = ("_receive", "headers")

    def __init__(self, scope: Mapping[str, Any], receive: Any) -> None:
        self.headers = Headers(scope["headers"])
        self._receive = receive

    async def read(self, limit: int) -> bytes:
        """The body, refusing more than `limit` bytes before reading them all."""
        check_declared_length(self.headers, limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            body = message.get("body", b"")
            if not chunks and not message.get("more_body", False):  # the usual: one message
                if len(body) > limit:
                    raise body_too_large(limit)
                return body  # type: ignore[no-any-return]
            size += len(body)
            if size > limit:
                raise body_too_large(limit)
            chunks.append(body)
            if not message.get("more_body", False):
                return b"".join(chunks)


class DataPlaneFastPath:
    """The hot routes (`routes.HOT`) answered without the router and without a Response
    object: the `DataPlane`'s answer goes out as two ASGI messages. Everything else goes to
    `app`. See the module's docstring for the two instances per app."""

    def __init__(self, app: Any, plane: DataPlane) -> None:
        self.app = app
        self.plane = plane
        self.guarded: Any = self.answer
        # each hot route's kind (`routes.Route.kind`) to the DataPlane method its route calls
        self.methods: dict[str, Any] = {
            route.kind: getattr(plane, route.kind) for route in routes.HOT
        }

    @property
    def state(self) -> Any:
        """The app's state, for whoever holds the server's app (uvicorn's `config.app`)."""
        return self.app.state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and routes.HOT_PATH.match(scope["path"])
        ):
            await self.guarded(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def direct(self, scope: dict[str, Any], name: str, kind: str, request: Any) -> Answer:
        """The answer to a hot route for an HTTP server that calls the data plane itself, with
        no ASGI messages (the transport's); `request` is an `answers.BodyRequest`. The same
        auth check as on the ASGI way comes first."""
        if isinstance(self.guarded, AuthMiddleware):
            refused = await self.guarded.refusal(scope)
            if refused is not None:
                return refused
        return await self.methods[kind](name, request)  # type: ignore[no-any-return]

    async def answer(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = routes.HOT_PATH.match(scope["path"])
        assert match is not None
        kind, name = routes.hot_route(match)
        status, body, headers = await self.methods[kind](name, AsgiRequest(scope, receive))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def asgi_entry(app: Any) -> Any:
    """What an HTTP server should run for `app`: its outer data-plane fast path when it has
    one, unless the app has an auth middleware whose check that path lacks (never a way
    around authentication)."""
    fast = app.fast_path if isinstance(app, ServingApp) else None
    if fast is None:
        return app
    has_auth = any(getattr(m, "cls", None) is AuthMiddleware for m in app.user_middleware)
    if has_auth and not isinstance(fast.guarded, AuthMiddleware):
        return app
    return fast


class DataPlaneRoutes:
    """The data plane's routes, each a thin function calling the `DataPlane` (`mount` adds
    them to an app, in the order of `routes.ROUTES`)."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def predict(self, name: str, request: Request) -> Response:
        """Predict rows with the endpoint's model: `{"instances": [{feature: value}, …]}`.
        Returns `predictions`, `request_id` and `model_version`."""
        raw = AsgiRequest(request.scope, request.receive)
        return answer_response(await self.plane.predict(name, raw))

    async def infer(self, name: str, request: Request) -> Response:
        """V2 inference: one [n] tensor per feature, or one [n, n_features] tensor; as JSON,
        or with the binary tensor data extension (`Inference-Header-Content-Length`)."""
        raw = AsgiRequest(request.scope, request.receive)
        return answer_response(await self.plane.infer(name, raw))

    async def infer_version(self, name: str, version: str, request: Request) -> Response:
        raw = AsgiRequest(request.scope, request.receive)
        return answer_response(await self.plane.infer(name, raw, version))

    async def feedback(self, name: str, request: Request) -> Response:
        """Late labels (live accuracy) and business outcomes (A/B tests) for logged
        predictions, by `request_id` (and `row` for multi-row requests):
        `{"request_id": "…", "label": 1, "outcome": 12.5}` (either or both) or
        `{"feedback": [{…}, …]}`."""
        raw = AsgiRequest(request.scope, request.receive)
        return answer_response(await self.plane.feedback(name, raw))

    async def live(self) -> Response:
        return json_response({"live": True})

    async def ready(self) -> Response:
        return answer_response(self.plane.readiness())

    async def server_metadata(self) -> Response:
        from shipyard import __version__

        return json_response(
            {"name": "shipyard", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    async def model_metadata(self, name: str) -> Response:
        return answer_response(self.plane.model_metadata(name))

    async def model_ready(self, name: str) -> Response:
        return answer_response(self.plane.model_ready(name))

    async def prometheus(self) -> Response:
        data, content_type = self.plane.metrics.render()
        return Response(data, media_type=content_type)

    def mount(self, app: FastAPI) -> None:
        extra: dict[str, dict[str, Any]] = {
            "predict": {"tags": ["data plane"], "openapi_extra": {"requestBody": PREDICT_BODY}},
            "infer": {
                "tags": ["open inference protocol"],
                "openapi_extra": {"requestBody": V2_BODY},
            },
            "feedback": {"tags": ["data plane"], "status_code": 202},
            "live": {"tags": ["health"]},
            "ready": {"tags": ["health"]},
            "metrics": {
                "tags": ["health"],
                "response_class": Response,
                "responses": {
                    200: {"description": "Prometheus text format", "content": {"text/plain": {}}}
                },
            },
        }
        extra["infer_version"] = extra["infer"]
        handlers = {"metrics": self.prometheus}
        for route in routes.ROUTES:
            endpoint = handlers.get(route.kind) or getattr(self, route.kind)
            options = extra.get(route.kind, {"tags": ["open inference protocol"]})
            app.add_api_route(route.path, endpoint, methods=[route.method], **options)


def mount_data_plane(app: ServingApp, plane: DataPlane, lifecycle: Lifecycle) -> None:
    """The data plane on `app`: error handlers, routes, and both fast paths."""
    app.dataplane = plane
    app.lifecycle = lifecycle
    app.settings = plane.settings
    install_error_handlers(app)
    DataPlaneRoutes(plane).mount(app)
    app.add_middleware(DataPlaneFastPath, plane=plane)
    app.fast_path = DataPlaneFastPath(app, plane)


def install_error_handlers(app: FastAPI) -> None:
    """Every error is JSON naming the problem: shipyard errors, FastAPI validation, 404/405."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from shipyard.serving.openapi import document_errors

    app.add_exception_handler(ShipyardError, _on_shipyard_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _on_http_error)  # type: ignore[arg-type]
    document_errors(app)  # the answers above, in the OpenAPI document


async def _on_shipyard_error(request: Request, exc: ShipyardError) -> Response:
    if exc.http_status >= 500:  # the caller gets `to_dict`; the operator, the whole story
        log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return error_response(exc)


async def _on_validation_error(_request: Request, exc: Any) -> Response:
    errors = exc.errors()
    first = errors[0] if errors else {}
    field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    message = f"{field or 'request'}: {first.get('msg', 'invalid')}"
    return json_response(
        {
            "error": message,
            "type": "InvalidArgumentError",
            "field": field,
            "details": [
                {"field": ".".join(map(str, e.get("loc", ()))), "message": e.get("msg")}
                for e in errors
            ],
        },
        422,
    )


async def _on_http_error(request: Request, exc: Any) -> Response:
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:  # every method of the path, not only its first route's
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return json_response({"error": str(exc.detail), "type": "HTTPError"}, exc.status_code, headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app answers on the request's path."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route_methods
    return sorted(methods)
