"""The Open Inference Protocol's V2 gRPC service (KServe's inference protocol, package
`inference`) for a serving app, on its own port beside HTTP: `shipyard serve … --grpc-port N`.

    attach_grpc(app, "127.0.0.1", 8081)   # served while the app runs (its lifecycle)

Nothing here imports grpc until a port is asked for: `server.py` and `proto.py` (the protocol's
messages, from tritonclient's generated modules) do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shipyard.errors import MissingDependencyError

if TYPE_CHECKING:
    from shipyard.serving.asgi import ServingApp


def require_grpc() -> None:
    """Fail now, with the install command, when grpcio or the protocol's messages are missing."""
    try:
        import grpc  # noqa: F401
        import tritonclient.grpc.service_pb2  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"the gRPC port needs grpcio and tritonclient[grpc] ({exc}): "
            "pip install 'shipyard[grpc]'"
        ) from exc


def attach_grpc(
    app: ServingApp,
    host: str,
    port: int,
    *,
    shared: bool = False,
    announce: Callable[[int], None] | None = None,
) -> None:
    """Serve `app`'s data plane over V2 gRPC on `host:port` from its start to its stop;
    `shared`: several worker processes bind the same port; `announce(port)` once bound."""
    require_grpc()
    from shipyard.serving.grpc_v2.server import GrpcServer

    app.lifecycle.services.append(GrpcServer(app, host, port, shared=shared, announce=announce))
