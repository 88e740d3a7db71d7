"""The data plane (ASGI): the Open Inference Protocol (V2), the plain JSON predict route,
health, readiness and Prometheus metrics.

    app = create_serving_app(settings, model_uri="models:/churn@champion")   # `shipyard serve`

`mount_data_plane` adds the same routes to any FastAPI app (`shipyard server` uses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from fastapi import FastAPI, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from shipyard.errors import (
    InvalidArgumentError,
    ModelLoadError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ServingError,
    ShipyardError,
    SignatureError,
)
from shipyard.serving import protocol
from shipyard.serving.auth import AuthMiddleware
from shipyard.serving.predlog import FeedbackLogger, PredictionLogger

if TYPE_CHECKING:
    import numpy as np

    from shipyard.config import Settings
    from shipyard.serving.metrics import ServingMetrics
    from shipyard.serving.runtime import EndpointTable, ServedModel

log = logging.getLogger("shipyard.serving")

_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["instances"],
                "properties": {
                    "instances": {
                        "type": "array",
                        "items": {"type": "object"},
                        "description": "rows as {feature: value} objects",
                    },
                    "probabilities": {"type": "boolean", "default": False},
                },
            },
            "example": {"instances": [{"feature_a": 1.0, "feature_b": 2.0}]},
        }
    },
}
_V2_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "inputs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "shape": {"type": "array", "items": {"type": "integer"}},
                                "datatype": {"type": "string"},
                                "data": {"type": "array"},
                            },
                        },
                    },
                    "outputs": {"type": "array", "items": {"type": "object"}},
                },
            }
        }
    },
}


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        protocol.dumps(doc), status_code=status, media_type="application/json", headers=headers
    )


def error_response(exc: ShipyardError, request_id: str | None = None) -> Response:
    return answer_response(error_answer(exc, request_id))


# A data-plane answer as the ASGI messages want it: (status, JSON body, raw headers). The hot
# routes send it as it is; no Response object per request.
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


def json_answer(doc: Any, status: int, headers: list[tuple[bytes, bytes]]) -> Answer:
    body = protocol.dumps(doc)
    return (
        status,
        body,
        [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    )


def error_answer(
    exc: ShipyardError, request_id: str | None = None, correlation: str | None = None
) -> Answer:
    """`correlation`: the caller's own X-Request-ID, echoed in that header."""
    body = exc.to_dict()
    headers = []
    if request_id:
        body["request_id"] = request_id
        headers.append((b"x-request-id", (correlation or request_id).encode("latin-1")))
    if exc.http_status == 503:
        headers.append((b"retry-after", b"1"))
    return json_answer(body, exc.http_status, headers)


def answer_response(answer: Answer) -> Response:
    status, body, headers = answer
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


def check_declared_length(headers: Any, limit: int) -> None:
    """Refuse a body whose Content-Length (in `headers`, anything with `get`) is over `limit`
    before reading any of it."""
    length = headers.get("content-length")
    if length is None:
        return
    try:
        declared = int(length)
    except ValueError as exc:
        raise InvalidArgumentError("bad Content-Length header", field="content-length") from exc
    if declared > limit:
        raise PayloadTooLargeError(
            f"the body is {declared} bytes; the limit is {limit}", field="body", limit=limit
        )


def body_too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the body exceeds the limit of {limit} bytes", field="body", limit=limit
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes before reading them all."""
    check_declared_length(request.headers, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _nrows(columns: Mapping[str, np.ndarray]) -> int:
    matrix = getattr(columns, "matrix", None)
    if matrix is not None:
        return len(matrix)
    return len(next(iter(columns.values()))) if columns else 0


class Parsed(NamedTuple):
    """A request turned into model input, plus how to shape the answer."""

    columns: Mapping[str, np.ndarray]
    proba: bool
    render: Callable[[ServedModel, str, np.ndarray, np.ndarray | None], dict[str, Any]]


def _parse_plain(served: ServedModel, body: Any) -> Parsed:
    assert served.model is not None
    columns, proba = protocol.parse_predict(body, served.model.signature)
    if proba and not served.model.has_proba:
        raise InvalidArgumentError("this model has no probabilities", field="probabilities")

    def render(
        served: ServedModel, request_id: str, labels: np.ndarray, probabilities: np.ndarray | None
    ) -> dict[str, Any]:
        assert served.model is not None
        doc: dict[str, Any] = {
            "request_id": request_id,
            "endpoint": served.endpoint,
            "model": served.model_name,
            "model_version": served.model.version,
            "predictions": labels,
        }
        if probabilities is not None:
            doc["probabilities"] = probabilities
            if served.model.classes is not None:
                doc["classes"] = served.model.classes
        return doc

    return Parsed(columns, proba, render)


def _parse_v2(served: ServedModel, body: Any) -> Parsed:
    assert served.model is not None
    columns, wanted, given_id = protocol.parse_v2(body, served.model.signature)
    known = {"predict", "predict_proba"}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise InvalidArgumentError(
            f"unknown output(s) {unknown}; this model offers "
            f"{sorted(known) if served.model.has_proba else ['predict']}",
            field="outputs",
        )
    want_proba = "predict_proba" in wanted
    if want_proba and not served.model.has_proba:
        raise InvalidArgumentError("this model has no predict_proba output", field="outputs")

    def render(
        served: ServedModel, request_id: str, labels: np.ndarray, probabilities: np.ndarray | None
    ) -> dict[str, Any]:
        assert served.model is not None
        outputs = []
        if not wanted or "predict" in wanted:
            outputs.append(protocol.v2_tensor("predict", labels))
        if probabilities is not None:
            outputs.append(protocol.v2_tensor("predict_proba", probabilities))
        doc: dict[str, Any] = {
            "model_name": served.endpoint,
            "model_version": str(served.model.version),
            "id": given_id or request_id,
            "outputs": outputs,
        }
        if given_id:  # the caller's id is echoed; feedback needs the one the server issued
            doc["parameters"] = {"request_id": request_id}
        return doc

    return Parsed(columns, want_proba, render)


_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}\Z")  # echoed in a header: nothing else
_FAST = re.compile(r"^/(?:endpoints/([^/]+)/(predict)|v2/models/([^/]+)/(infer))$")


class _Headers:
    """The few header lookups the data plane makes, straight from the ASGI scope (one dict
    built in C; these headers are single-valued, so a repeated one keeps its last value)."""

    __slots__ = ("_map",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._map = dict(raw)

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._map.get(name.encode("latin-1"))
        return default if value is None else value.decode("latin-1")


class _RawRequest:
    """What `observed` needs of a request: headers and the body, straight from ASGI."""

    __slots__ = ("_receive", "headers")

    def __init__(self, scope: Mapping[str, Any], receive: Any) -> None:
        self.headers = _Headers(scope["headers"])
        self._receive = receive

    async def read(self, limit: int) -> bytes:
        """The body, refusing more than `limit` bytes before reading them all."""
        check_declared_length(self.headers, limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
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
    """POST /endpoints/{name}/predict and /v2/models/{name}/infer, answered without the router
    and without a Response object: the answer goes out as two ASGI messages. Everything else
    goes to `app`.

    Two of these exist per app. One is a middleware inside the FastAPI app (behind its auth
    middleware), for any ASGI host that calls the app. The other, `app.state.asgi`, wraps the
    whole FastAPI app and is what shipyard's own HTTP server runs: the hot routes then skip
    FastAPI's per-request layers too (its telemetry check alone reads the environment three
    times per request). `install_auth` puts its check in front of that one (`guarded`)."""

    def __init__(self, app: Any, handlers: dict[str, tuple[Any, Any]]) -> None:
        self.app = app
        self.handlers = handlers
        self.guarded: Any = self.answer

    @property
    def state(self) -> Any:
        """The app's state, for whoever holds the server's app (uvicorn's `config.app`)."""
        return self.app.state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _FAST.match(scope["path"]):
            await self.guarded(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def direct(self, scope: dict[str, Any], name: str, kind: str, request: Any) -> Answer:
        """The answer to a hot route (`kind` "predict" or "infer") for an HTTP server that calls
        the handler itself, with no ASGI messages (shipyard's own, `serving.connection`);
        `request` has `headers.get(name)` and `await read(limit)`. The same auth check as on
        the ASGI way comes first."""
        if isinstance(self.guarded, AuthMiddleware):
            refused = await self.guarded.refusal(scope)
            if refused is not None:
                return refused
        handler, parse = self.handlers[kind]
        return await handler(name, request, parse)  # type: ignore[no-any-return]

    async def answer(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        m = _FAST.match(scope["path"])
        assert m is not None
        handler, parse = self.handlers[m.group(2) or m.group(4)]
        status, body, headers = await handler(
            m.group(1) or m.group(3), _RawRequest(scope, receive), parse
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def asgi_entry(app: FastAPI) -> Any:
    """What an HTTP server should run for `app`: its outer data-plane fast path when it has
    one, unless the app has an auth middleware whose check that path lacks (never a way
    around authentication)."""
    fast = getattr(app.state, "asgi", None)
    if not isinstance(fast, DataPlaneFastPath):
        return app
    has_auth = any(getattr(m, "cls", None) is AuthMiddleware for m in app.user_middleware)
    if has_auth and not isinstance(fast.guarded, AuthMiddleware):
        return app
    return fast


def _decode(parse: Callable[[ServedModel, Any], Parsed], served: ServedModel, doc: Any) -> Parsed:
    """The caller's body as model input. The decoders raise typed errors; anything else they
    raise is still the caller's input that was not validated (logged, to be mended): a 400, so
    it never counts as the model's failure against a rollout."""
    try:
        return parse(served, doc)
    except ShipyardError:
        raise
    except Exception as exc:
        log.warning(
            "endpoint %s: a body the decoder did not expect", served.endpoint, exc_info=True
        )
        raise InvalidArgumentError(
            f"the body could not be decoded: {type(exc).__name__}: {exc}", field="body"
        ) from exc


def _record(
    predlog: PredictionLogger,
    name: str,
    served: ServedModel,
    request_id: str,
    elapsed: float,
    status: int,
    parsed: Parsed | None,
    labels: Any,
    probabilities: Any,
    variant: str | None = None,
) -> None:
    """One request into the prediction log (features and outputs only when it succeeded)."""
    ok = parsed is not None and labels is not None
    model = served.model
    predlog.record(
        name,
        served.version,
        variant or served.variant,
        request_id,
        time.time_ns() // 1_000_000,
        elapsed * 1000,
        status,
        parsed.columns if ok and parsed is not None else None,
        labels if ok else None,
        probabilities if ok else None,
        model.manifest.get("classes") if model is not None else None,
    )


def mount_data_plane(
    app: FastAPI,
    table: EndpointTable,
    metrics: ServingMetrics,
    settings: Settings,
    predlog: PredictionLogger | None = None,
    feedback_log: FeedbackLogger | None = None,
) -> None:
    from shipyard.requestids import RequestIds, request_id_key

    limit = settings.max_body_bytes
    max_rows = settings.max_rows
    timeout = settings.request_timeout_seconds
    ids = RequestIds(request_id_key(settings))

    def ready_model(name: str) -> ServedModel:
        served = table.get(name)
        if not served.ready or served.model is None:
            raise ModelLoadError(
                f"endpoint '{name}' is not ready ({served.state}"
                f"{': ' + served.error if served.error else ''})"
            )
        return served

    async def observed(
        name: str, request: _RawRequest, parse: Callable[[ServedModel, Any], Parsed]
    ) -> Answer:
        start = time.perf_counter()
        # the prediction's id (the key feedback joins on) is always the server's own; the
        # caller's X-Request-ID is only echoed back, for its logs
        request_id = ids.issue(name)
        given_id = request.headers.get("x-request-id")
        echo = given_id if given_id and _REQUEST_ID.match(given_id) else request_id
        served: ServedModel | None = None
        parsed: Parsed | None = None
        labels = probabilities = None
        status = 200
        gauge = metrics.in_flight_for(name if name in table._served else "_unknown")
        gauge.inc()
        try:
            if given_id and echo is not given_id:
                raise InvalidArgumentError(
                    "X-Request-ID must be 1 to 128 printable ASCII characters", field="x-request-id"
                )
            ready_model(name)
            doc = protocol.parse_json(await request.read(limit))
            key = request.headers.get("x-shipyard-key") or protocol.request_key(doc)
            served, shadow = table.route(name, key)
            if not served.ready or served.model is None:  # a candidate still loading
                served = ready_model(name)
                shadow = None
            parsed = _decode(parse, served, doc)
            rows = _nrows(parsed.columns)
            if rows > max_rows:
                raise SignatureError(
                    f"{rows} rows in one request; the limit is {max_rows}",
                    field="instances",
                    limit=max_rows,
                )
            if served.inline:  # answered on this thread: no await in between, nothing to time
                labels, probabilities = await served.infer(parsed.columns, parsed.proba, rows)
            else:
                try:
                    async with asyncio.timeout(timeout):  # no extra task per request (wait_for)
                        labels, probabilities = await served.infer(
                            parsed.columns, parsed.proba, rows
                        )
                except TimeoutError as exc:
                    raise RequestTimeoutError(
                        f"the prediction took longer than {timeout:g} s"
                    ) from exc
            out = parsed.render(served, request_id, labels, probabilities)
            if served.variant != "stable" or table.candidate(name) is not None:
                out["variant"] = served.variant
            if shadow is not None:
                _spawn(_shadow(name, shadow, doc, parse, request_id, labels))
            return json_answer(
                out,
                200,
                [
                    (b"x-request-id", echo.encode("latin-1")),
                    (b"x-model-version", served.version.encode("latin-1")),
                    (b"x-model-variant", served.variant.encode("latin-1")),
                ],
            )
        except ShipyardError as exc:
            status = exc.http_status
            reason = exc.details.get("reason") or type(exc).__name__
            metrics.reject(name if served is not None else "_unknown", str(reason))
            return error_answer(exc, request_id, echo)
        except ClientDisconnect:  # gone before its body was in: no one to answer, nothing failed
            status = 499
            return error_answer(ServingError("the client closed the connection"), request_id, echo)
        except Exception as exc:  # the model library failed: a 500 that names it, counted
            status = 500
            log.exception("endpoint %s: prediction failed", name)
            return error_answer(
                ServingError(f"the model failed: {type(exc).__name__}: {exc}"), request_id, echo
            )
        finally:
            gauge.dec()
            elapsed = time.perf_counter() - start
            if served is not None:
                n = len(labels) if parsed is not None and labels is not None else 0
                metrics.observe(name, served.model_name, served.version, status, elapsed, n)
                if predlog is not None:
                    _record(
                        predlog, name, served, request_id, elapsed, status, parsed, labels,
                        probabilities,
                    )  # fmt: skip
            else:
                metrics.observe("_unknown", "", "", status, elapsed, 0)

    background: set[asyncio.Task[None]] = set()

    def _spawn(coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    async def _shadow(
        name: str,
        shadow: ServedModel,
        doc: Any,
        parse: Callable[[ServedModel, Any], Parsed],
        request_id: str,
        stable_labels: Any,
    ) -> None:
        """The candidate's answer to a request the stable model already answered: logged
        (variant "shadow") for agreement and latency, never returned, never raised."""
        start = time.perf_counter()
        status, parsed, labels = 200, None, None
        try:
            parsed = parse(shadow, doc)
            labels, _ = await asyncio.wait_for(
                shadow.infer(parsed.columns, False, _nrows(parsed.columns)), timeout
            )
        except Exception as exc:  # the shadow's failure is data, not the caller's problem
            status = exc.http_status if isinstance(exc, ShipyardError) else 500
        elapsed = time.perf_counter() - start
        metrics.observe(
            name,
            shadow.model_name,
            shadow.version,
            status,
            elapsed,
            _nrows(parsed.columns) if parsed is not None and labels is not None else 0,
        )
        if predlog is not None:
            _record(
                predlog, name, shadow, request_id, elapsed, status, parsed, labels, None, "shadow"
            )

    @app.post(
        "/endpoints/{name}/predict",
        tags=["data plane"],
        openapi_extra={"requestBody": _PREDICT_BODY},
    )
    async def predict(name: str, request: Request) -> Response:
        """Predict rows with the endpoint's model: `{"instances": [{feature: value}, …]}`.
        Returns `predictions`, `request_id` and `model_version`."""
        raw = _RawRequest(request.scope, request.receive)
        return answer_response(await observed(name, raw, _parse_plain))

    @app.post(
        "/v2/models/{name}/infer",
        tags=["open inference protocol"],
        openapi_extra={"requestBody": _V2_BODY},
    )
    async def infer(name: str, request: Request) -> Response:
        """V2 inference: one [n] tensor per feature, or one [n, n_features] tensor."""
        raw = _RawRequest(request.scope, request.receive)
        return answer_response(await observed(name, raw, _parse_v2))

    # The two hot routes are answered by a pure ASGI layer in front of the router: same
    # handler, none of the per-request routing, dependency solving and Request objects
    # (measured: the largest share of shipyard's overhead over a hand-written endpoint). The
    # FastAPI routes above stay for the OpenAPI document and behave the same.
    handlers = {"predict": (observed, _parse_plain), "infer": (observed, _parse_v2)}
    app.add_middleware(DataPlaneFastPath, handlers=handlers)
    app.state.asgi = DataPlaneFastPath(app, handlers)  # what `serve` runs; see the class

    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        tags=["open inference protocol"],
        openapi_extra={"requestBody": _V2_BODY},
    )
    async def infer_version(name: str, version: str, request: Request) -> Response:
        served = table.get(name)
        if served.version != version:
            from shipyard.errors import NotFoundError

            return error_response(
                NotFoundError(
                    f"endpoint '{name}' serves version {served.version or 'none'}, not {version}"
                )
            )
        raw = _RawRequest(request.scope, request.receive)
        return answer_response(await observed(name, raw, _parse_v2))

    @app.post("/endpoints/{name}/feedback", tags=["data plane"], status_code=202)
    async def feedback(name: str, request: Request) -> Response:
        """Late labels for logged predictions, by `request_id` (and `row` for multi-row
        requests): `{"request_id": "…", "label": 1}` or `{"feedback": [{…}, …]}`."""
        try:
            table.get(name)
            if feedback_log is None:
                raise InvalidArgumentError("this server keeps no prediction log, so no feedback")
            items = protocol.parse_feedback(await read_body(request, limit))
            ids.check(name, [rid for rid, _, _ in items])
        except ShipyardError as exc:
            return error_response(exc)
        feedback_log.log(name, items, time.time_ns() // 1_000_000)
        return json_response({"accepted": len(items)}, 202)

    @app.get("/v2/health/live", tags=["health"])
    @app.get("/health/live", tags=["health"])
    async def live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready", tags=["health"])
    @app.get("/health/ready", tags=["health"])
    async def ready() -> Response:
        is_ready = table.ready
        return json_response(
            {
                "ready": is_ready,
                "draining": table.draining.is_set(),
                "endpoints": {s.endpoint: s.state for s in table.all()},
            },
            200 if is_ready else 503,
        )

    @app.get("/v2", tags=["open inference protocol"])
    async def server_metadata() -> Response:
        from shipyard import __version__

        return json_response({"name": "shipyard", "version": __version__, "extensions": []})

    @app.get("/v2/models/{name}", tags=["open inference protocol"])
    async def model_metadata(name: str) -> Response:
        try:
            served = table.get(name)
        except ShipyardError as exc:
            return error_response(exc)
        m = served.model
        doc: dict[str, Any] = {
            "name": name,
            "state": served.state,
            "error": served.error,
            "model_uri": served.uri,
            "memory_bytes": served.memory_bytes,
        }
        if m is not None:
            doc.update(
                {
                    "versions": [str(m.version)],
                    "platform": m.backend,
                    "flavor": m.flavor,
                    "registered_model": m.name,
                    "inputs": protocol.v2_metadata_inputs(m.signature),
                    "outputs": [
                        {
                            "name": "predict",
                            "datatype": "BYTES"
                            if m.classes and any(isinstance(c, str) for c in m.classes)
                            else "FP64",
                            "shape": [-1],
                        }
                    ]
                    + (
                        [
                            {
                                "name": "predict_proba",
                                "datatype": "FP32",
                                "shape": [-1, len(m.classes or [])],
                            }
                        ]
                        if m.has_proba
                        else []
                    ),
                }
            )
        return json_response(doc)

    @app.get("/v2/models/{name}/ready", tags=["open inference protocol"])
    async def model_ready(name: str) -> Response:
        try:
            served = table.get(name)
        except ShipyardError as exc:
            return error_response(exc)
        return json_response({"name": name, "ready": served.ready}, 200 if served.ready else 503)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
    )
    async def prometheus() -> Response:
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)


def install_error_handlers(app: FastAPI) -> None:
    """Every error is JSON naming the problem: shipyard errors, FastAPI validation, 404/405."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(ShipyardError)
    async def on_shipyard_error(request: Request, exc: ShipyardError) -> Response:
        if exc.http_status >= 500:  # the caller gets `to_dict`; the operator, the whole story
            log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> Response:
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

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:  # every method of the path, not only its first route's
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return json_response(
            {"error": str(exc.detail), "type": "HTTPError"}, exc.status_code, headers
        )

    from shipyard.serving.openapi import document_errors

    document_errors(app)  # the answers above, in the OpenAPI document


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app answers on the request's path."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route_methods
    return sorted(methods)


def freeze_heap() -> None:
    """Move everything loaded so far (models, libraries) out of the garbage collector's view:
    full collections then scan only what requests allocate, instead of pausing for ~100 ms
    over the whole heap (the cause of shipyard's p99 spikes, measured with py-spy)."""
    import gc

    gc.collect()
    gc.freeze()


def make_feedback_log(settings: Settings) -> FeedbackLogger | None:
    if not settings.predlog_enabled:
        return None
    from shipyard.stores.predictions import PredictionLogStore

    return FeedbackLogger(
        PredictionLogStore(settings.labels_dir), flush_seconds=settings.predlog_flush_seconds
    )


def make_predlog(settings: Settings, metrics: ServingMetrics) -> PredictionLogger | None:
    """The prediction logger the settings ask for (None when disabled)."""
    if not settings.predlog_enabled:
        return None
    from shipyard.stores.predictions import PredictionLogStore

    return PredictionLogger(
        PredictionLogStore(settings.predictions_dir),
        capacity_rows=settings.predlog_capacity_rows,
        flush_seconds=settings.predlog_flush_seconds,
        sample_rate=settings.predlog_sample_rate,
        on_drop=lambda endpoint, n: metrics.predlog_dropped.labels(endpoint).inc(n),
        on_write=lambda endpoint, n: metrics.predlog_written.labels(endpoint).inc(n),
    )


def create_serving_app(
    settings: Settings,
    model_uri: str,
    *,
    endpoint: str | None = None,
    trusted: bool = False,
    config: dict[str, Any] | None = None,
) -> FastAPI:
    """The app of `shipyard serve`: one model, named after its registered model."""
    from shipyard.registry import Registry, parse_model_uri
    from shipyard.registry.conversion import resume_conversions
    from shipyard.serving.metrics import ServingMetrics
    from shipyard.serving.runtime import EndpointTable
    from shipyard.stores import open_stores

    ref = parse_model_uri(model_uri)
    registry = Registry(open_stores(settings))
    metrics = ServingMetrics()
    table = EndpointTable(registry, metrics, trusted=trusted)
    name = endpoint or ref.name or registry.resolve(ref).name
    predlog = make_predlog(settings, metrics)
    feedback_log = make_feedback_log(settings)

    def preload() -> None:
        """Load before serving (several workers: none may accept a request unready)."""
        try:
            table.load(name, model_uri, 0, config)
        finally:
            table.initial_load_done.set()
            freeze_heap()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def load() -> None:
            if not table.initial_load_done.is_set():
                await asyncio.to_thread(preload)

        task = asyncio.create_task(load())
        for log_ in (predlog, feedback_log):
            if log_ is not None:
                log_.start()
        resuming = resume_conversions(registry.stores, settings, after=table.initial_load_done)
        yield
        resuming.set()
        metrics.publish()  # several workers: this one's last counts into the shared files
        task.cancel()
        for log_ in (predlog, feedback_log):
            if log_ is not None:
                await asyncio.to_thread(log_.close)
        await app.state.limiter.close()

    app = FastAPI(
        title=f"shipyard serve {name}",
        lifespan=lifespan,
        description=f"Serving {model_uri} as endpoint '{name}'.",
    )
    app.state.table = table
    app.state.settings = settings
    app.state.draining = table.draining
    install_error_handlers(app)
    app.state.predlog = predlog
    app.state.preload = preload
    mount_data_plane(app, table, metrics, settings, predlog, feedback_log)
    from shipyard.serving.auth import install_auth

    app.state.limiter = install_auth(
        app, settings, registry.stores.metadata.keys, required=settings.auth_required
    )
    metrics.registry.register(app.state.limiter)  # its Redis errors and degraded state
    return app
