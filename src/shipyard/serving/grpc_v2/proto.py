"""The Open Inference Protocol's gRPC messages and service base: the one place shipyard takes
them from, tritonclient's generated modules (`tritonclient.grpc.service_pb2*`, the
`tritonclient[grpc]` extra, version bound in pyproject.toml).

Triton's `inference.GRPCInferenceService` is KServe's V2 service (same package, messages and
field numbers) plus Triton's own methods, which shipyard leaves unimplemented (UNIMPLEMENTED).
Shipping no copy of the protocol keeps one definition per process: a client and a server in
the same process share it."""

from __future__ import annotations

from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc.service_pb2_grpc import (
    GRPCInferenceServiceServicer,
    add_GRPCInferenceServiceServicer_to_server,
)

__all__ = ["GRPCInferenceServiceServicer", "add_GRPCInferenceServiceServicer_to_server", "pb"]
