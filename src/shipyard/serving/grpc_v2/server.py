"""The V2 gRPC service (`inference.GRPCInferenceService`) on its own port, in the event loop of
the HTTP server that serves the same app: started and stopped by the app's lifecycle.

Every call takes the way an HTTP request takes: the app's auth check on the path the HTTP
route would have (`authorization: Bearer …` or `x-api-key` from the call's metadata; API
keys, JWTs, scopes, endpoint limits and rate limits alike), then the `DataPlane` method of
that route (`infer` for ModelInfer, so validation, batching, rollout routing, the prediction
log and the request metrics apply). The answer's HTTP status becomes the gRPC status, its
error text the status's details.

    service = GrpcServer(app, "127.0.0.1", 0)
    app.lifecycle.services.append(service)      # bound at start-up: service.port
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
import orjson

from shipyard.errors import InvalidArgumentError, ShipyardError
from shipyard.serving import binary
from shipyard.serving.answers import Headers, error_answer
from shipyard.serving.auth import AuthMiddleware
from shipyard.serving.grpc_v2 import convert
from shipyard.serving.grpc_v2.proto import (
    GRPCInferenceServiceServicer,
    add_GRPCInferenceServiceServicer_to_server,
    pb,
)

if TYPE_CHECKING:
    from shipyard.serving.answers import Answer
    from shipyard.serving.asgi import ServingApp
    from shipyard.serving.dataplane import DataPlane

log = logging.getLogger("shipyard.serving")

# an answer's HTTP status → the gRPC status of the same meaning
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
# metadata passed on to the data plane as the HTTP headers of the same name
_PASSED = frozenset({"x-request-id", "x-shipyard-key"})


class ProtoRequest:
    """A ModelInfer call as the data plane reads a request (`answers.BodyRequest`): its
    message as the V2 body of the binary tensor data extension. The message is in memory,
    already held to the body limit by gRPC's `max_receive_message_length`."""

    __slots__ = ("_body", "headers")

    def __init__(self, body: bytes, header_length: int, metadata: list[tuple[bytes, bytes]]):
        self._body = body
        self.headers = Headers([*metadata, (binary.HEADER.encode(), str(header_length).encode())])

    async def read(self, limit: int) -> bytes:
        return self._body


class Refused(Exception):
    """A call answered with a non-OK status: its HTTP status and error text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _refused(answer: Answer) -> Refused:
    status, body, _ = answer
    try:
        message = str(orjson.loads(body).get("error") or body.decode())
    except (orjson.JSONDecodeError, AttributeError):
        message = body.decode("utf-8", "replace")
    return Refused(status, message)


class InferenceService(GRPCInferenceServiceServicer):  # type: ignore[misc]
    """The six calls of the V2 gRPC service, each a thin call into the `DataPlane`."""

    def __init__(self, plane: DataPlane, auth: AuthMiddleware | None) -> None:
        from shipyard import __version__

        self.plane = plane
        self.auth = auth
        self.version = __version__
        self.calls = plane.metrics.counter(
            "shipyard_grpc_requests",
            "V2 gRPC calls by method and status code (ModelInfer is also in shipyard_requests).",
            ("method", "code"),
        )

    async def _guard(self, context: Any, method: str, path: str) -> list[tuple[bytes, bytes]]:
        """The call's metadata as HTTP headers, once the app's auth check lets it through."""
        headers = [
            (str(k).lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in (context.invocation_metadata() or ())
            if isinstance(v, str)
        ]
        if self.auth is not None:
            scope = {"type": "http", "method": method, "path": path, "headers": headers}
            refused = await self.auth.refusal(scope)
            if refused is not None:
                raise _refused(refused)
        return headers

    async def _call(self, name: str, context: Any, work: Callable[[], Any]) -> Any:
        """Run one call, counted; a refusal becomes the gRPC status of its HTTP status."""
        code = grpc.StatusCode.OK
        try:
            return await work()
        except Refused as exc:
            code = _CODES.get(exc.status, grpc.StatusCode.INTERNAL)
            await context.abort(code, exc.message)
        except ShipyardError as exc:  # raised before the data plane (the message's shape)
            code = _CODES.get(exc.http_status, grpc.StatusCode.INTERNAL)
            await context.abort(code, str(exc))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # a fault of this service: INTERNAL, logged and counted
            code = grpc.StatusCode.INTERNAL
            log.exception("gRPC %s failed", name)
            await context.abort(code, f"{type(exc).__name__}: {exc}")
        finally:
            self.calls.labels(name, code.name).inc()

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> Any:
        async def work() -> pb.ServerLiveResponse:
            return pb.ServerLiveResponse(live=True)

        return await self._call("ServerLive", context, work)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> Any:
        async def work() -> pb.ServerReadyResponse:
            return pb.ServerReadyResponse(ready=self.plane.readiness()[0] == 200)

        return await self._call("ServerReady", context, work)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> Any:
        async def work() -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(name="shipyard", version=self.version)

        return await self._call("ServerMetadata", context, work)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> Any:
        async def work() -> pb.ModelReadyResponse:
            await self._guard(context, "GET", f"/v2/models/{request.name}/ready")
            answer = self.plane.model_ready(request.name)
            if answer[0] not in (200, 503):
                raise _refused(answer)
            doc = orjson.loads(answer[1])
            self._check_version(request.name, request.version)
            return pb.ModelReadyResponse(ready=bool(doc["ready"]))

        return await self._call("ModelReady", context, work)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> Any:
        async def work() -> pb.ModelMetadataResponse:
            await self._guard(context, "GET", f"/v2/models/{request.name}")
            answer = self.plane.model_metadata(request.name)
            if answer[0] != 200:
                raise _refused(answer)
            self._check_version(request.name, request.version)
            doc = orjson.loads(answer[1])
            return pb.ModelMetadataResponse(
                name=doc["name"],
                versions=doc.get("versions", []),
                platform=doc.get("platform") or "",
                inputs=[_tensor_metadata(t) for t in doc.get("inputs", [])],
                outputs=[_tensor_metadata(t) for t in doc.get("outputs", [])],
            )

        return await self._call("ModelMetadata", context, work)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> Any:
        async def work() -> pb.ModelInferResponse:
            name = request.model_name
            metadata = await self._guard(context, "POST", f"/v2/models/{name}/infer")
            body, head = convert.infer_body(request)
            passed = [(k, v) for k, v in metadata if k.decode() in _PASSED]
            status, out, headers = await self.plane.infer(
                name, ProtoRequest(body, head, passed), request.model_version or None
            )
            answer_headers = dict(headers)
            request_id = answer_headers.get(b"x-request-id")
            if request_id is not None:
                context.set_trailing_metadata((("x-request-id", request_id.decode()),))
            if status != 200:
                raise _refused((status, out, headers))
            return convert.infer_response(out, answer_headers)

        return await self._call("ModelInfer", context, work)

    def _check_version(self, name: str, version: str) -> None:
        """A version asked for that the endpoint does not serve: NOT_FOUND, as over HTTP."""
        if not version:
            return
        served = self.plane.table.get(name)
        if served.version != version:
            from shipyard.errors import NotFoundError

            raise _refused(
                error_answer(
                    NotFoundError(
                        f"endpoint '{name}' serves version {served.version or 'none'}, "
                        f"not {version}"
                    )
                )
            )


def _tensor_metadata(doc: dict[str, Any]) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=doc["name"], datatype=doc["datatype"], shape=doc["shape"]
    )


class GrpcServer:
    """The V2 gRPC service of `app` on `host:port` (0: a free port, `port` once started);
    `shared`: other processes may bind the same port (several workers); `announce` is called
    with the bound port."""

    def __init__(
        self,
        app: ServingApp,
        host: str,
        port: int,
        *,
        shared: bool = False,
        announce: Callable[[int], None] | None = None,
        grace_seconds: float = 30.0,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.shared = shared
        self.announce = announce
        self.grace_seconds = grace_seconds
        self._server: Any = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        fast = self.app.fast_path
        guard = fast.guarded if fast is not None else None
        auth = guard if isinstance(guard, AuthMiddleware) else None
        limit = self.app.settings.max_body_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.so_reuseport", 1 if self.shared else 0),
            ]
        )
        service = InferenceService(self.app.dataplane, auth)
        add_GRPCInferenceServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
        try:
            bound = server.add_insecure_port(self.address)
        except RuntimeError as exc:  # grpc raises when it cannot bind
            bound = 0
            reason = str(exc)
        else:
            reason = "the address is in use or not this machine's"
        if not bound:
            raise InvalidArgumentError(
                f"cannot listen for gRPC on {self.address}: {reason}", field="grpc_port"
            )
        self.port = bound
        await server.start()
        self._server = server
        log.info("V2 gRPC on %s", self.address)
        if self.announce is not None:
            self.announce(bound)

    async def stop(self) -> None:
        """Stop taking calls and finish those in flight (at most `grace_seconds`)."""
        if self._server is not None:
            await self._server.stop(self.grace_seconds)
            self._server = None
