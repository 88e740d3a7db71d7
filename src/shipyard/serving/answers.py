"""What the data plane reads and writes, without any HTTP server: a request as a few headers
and a body it reads under a limit (`BodyRequest`), and an answer as status, JSON body and
raw headers (`Answer`), which the ASGI app and the transport send as they are.

    answer = json_answer({"ok": True}, 200, [(b"x-request-id", b"r-1")])
"""

from __future__ import annotations

from typing import Any, Protocol

from shipyard.errors import InvalidArgumentError, PayloadTooLargeError, ShipyardError
from shipyard.serving import protocol

# (status, JSON body, raw headers): the ASGI messages' shape, no Response object per request
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


class ClientGone(Exception):
    """The client closed the connection before its body was in."""


class RequestHeaders(Protocol):
    def get(self, name: str, default: str | None = None) -> str | None: ...


class BodyRequest(Protocol):
    """A request as the data plane reads it: `headers.get(name)` and `await read(limit)`
    (the body, refusing more than `limit` bytes; `ClientGone` when the client left)."""

    @property
    def headers(self) -> RequestHeaders: ...

    async def read(self, limit: int) -> bytes: ...


class Headers:
    """The few header lookups the data plane makes, from raw (name, value) pairs (one dict
    built in C; these headers are single-valued, so a repeated one keeps its last value)."""

    __slots__ = ("_map", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._map = dict(raw)
        self._raw = raw

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._map.get(name.encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def getlist(self, name: str) -> list[str]:
        """Every value of a header, in order (the pairs are scanned only when one repeats)."""
        key = name.encode("latin-1")
        if len(self._map) == len(self._raw):
            return [] if key not in self._map else [self._map[key].decode("latin-1")]
        return [v.decode("latin-1") for k, v in self._raw if k == key]


class BytesRequest:
    """A request whose body is already in memory (tests, in-process callers)."""

    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.headers = Headers(
            [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        )

    async def read(self, limit: int) -> bytes:
        check_declared_length(self.headers, limit)
        if len(self.body) > limit:
            raise body_too_large(limit)
        return self.body


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
