"""Every use of uvicorn's private names, in one module: shipyard's HTTP/1.1 protocol is
uvicorn's httptools protocol (or its h11 one where httptools is missing) with three changes,
each needing attributes and methods uvicorn does not promise to keep.

- The hot routes (`routes.HOT_TARGET` on the raw request target) are answered by the data
  plane directly: such a request gets a small cycle of its own (`_HotCycle`), its handler
  (`DataPlaneFastPath.direct`, the same `DataPlane` method the ASGI route calls) runs as soon
  as the headers are in, and the answer leaves in one write. uvicorn keeps everything else:
  parsing, every other request (the whole ASGI app), keep-alive, pipelining, flow control and
  graceful shutdown. A hot route whose target needs decoding (escapes, a query) takes the
  ASGI way; so does every request when uvicorn limits concurrency or mounts the app under a
  root path.
- Every answer's head is written together with its body (`transport.OneWriteTransport`).
- A connection is held to `transport.ConnectionLimits` before its request is in: 431 for a
  head too large, a head and a body must arrive in time, an idle connection closes. One timer
  per connection checks this (`_Watchdog`); the request path only counts a head's bytes.

`protocol_class` checks at start-up that everything listed in `_REQUIRED` exists in the
installed uvicorn; if one does not, or `SHIPYARD_FAST_PATH=false`, it logs one line and
uvicorn's own protocol runs (the public path: correct, without the changes above).
pyproject bounds uvicorn to the releases this was tested on.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from http import HTTPStatus
from typing import Any

from shipyard.errors import ClientTimeoutError, ShipyardError
from shipyard.serving.answers import ClientGone, Headers, body_too_large, check_declared_length
from shipyard.serving.asgi import DataPlaneFastPath
from shipyard.serving.protocol import dumps
from shipyard.serving.routes import HOT_KINDS, HOT_TARGET
from shipyard.serving.transport import ConnectionLimits, OneWriteTransport, Signal, head_size

log = logging.getLogger("shipyard.serving")

PUBLIC = "auto"  # uvicorn's own choice of protocol: what runs when the fence is closed

# (module, class or None, names): a class's methods and class attributes are looked up, and
# `self.<name> =` is looked for in its source for attributes its instances get
_REQUIRED: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("uvicorn.protocols.http.flow_control", None, ("HIGH_WATER_LIMIT", "FlowControl")),
    ("uvicorn.protocols.http.flow_control", "FlowControl", ("pause_reading", "resume_reading")),
    ("uvicorn.protocols.http.flow_control", "FlowControl", ("drain", "write_paused")),
    ("uvicorn.protocols.http.httptools_impl", None, ("STATUS_LINE", "HttpToolsProtocol")),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol",
        (
            "_start_asgi_task", "send_400_response", "on_headers_complete", "on_body",
            "on_message_complete", "on_response_complete", "data_received", "connection_made",
            "connection_lost", "loop", "logger", "parser", "root_path", "limit_concurrency",
            "server_state", "tasks", "transport", "flow", "pipeline", "scope", "headers",
            "expect_100_continue", "cycle", "url",
        ),
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "RequestResponseCycle",
        (
            "response_complete", "response_started", "disconnected", "keep_alive",
            "message_event", "send", "transport", "flow", "scope", "waiting_for_100_continue",
            "on_response",
        ),
    ),
    ("uvicorn.server", "ServerState", ("default_headers", "tasks")),
)  # fmt: skip
_REQUIRED_H11: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    (
        "uvicorn.protocols.http.h11_impl",
        "H11Protocol",
        (
            "handle_events", "_should_upgrade", "send_400_response", "connection_made",
            "connection_lost", "conn", "cycle", "scope", "headers", "transport", "loop",
            "server_state",
        ),
    ),
    ("uvicorn.protocols.http.h11_impl", "RequestResponseCycle", ("response_complete",)),
    ("uvicorn.server", "ServerState", ("default_headers",)),
)  # fmt: skip


def missing(required: tuple[tuple[str, str | None, tuple[str, ...]], ...]) -> list[str]:
    """The names of `required` the installed uvicorn lacks (`module:Class.name`)."""
    import importlib

    gone: list[str] = []
    for module_name, class_name, names in required:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            gone.append(module_name)
            continue
        owner = getattr(module, class_name, None) if class_name else module
        if owner is None:
            gone.append(f"{module_name}:{class_name}")
            continue
        try:
            source = inspect.getsource(owner) if class_name else ""
        except (OSError, TypeError):
            source = ""
        for name in names:
            assigned = re.search(rf"\bself\.{re.escape(name)}\s*(?::[^=\n]+)?=[^=]", source)
            if not hasattr(owner, name) and assigned is None:
                gone.append(f"{module_name}:{class_name + '.' if class_name else ''}{name}")
    return gone


@functools.cache
def _missing_cached(which: str) -> tuple[str, ...]:
    return tuple(missing(_REQUIRED if which == "httptools" else _REQUIRED_H11))


def protocol_class(app: Any, limits: ConnectionLimits | None = None, enabled: bool = True) -> Any:
    """The HTTP protocol for uvicorn to run `app` with: shipyard's (hot routes answered
    directly when `app` is the data plane's fast path, every connection held to `limits`,
    every answer's head sent with its body), or `PUBLIC` (uvicorn's own) when `enabled` is
    false or the installed uvicorn lacks a name this module relies on (one log line)."""
    limits_: ConnectionLimits = limits or ConnectionLimits()
    import uvicorn

    if not enabled:
        log.info("SHIPYARD_FAST_PATH is off: uvicorn's own HTTP protocol runs")
        return PUBLIC
    try:
        import httptools  # noqa: F401
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        gone = _missing_cached("h11")
        if gone:
            log.warning(_CLOSED, uvicorn.__version__, ", ".join(gone))
            return PUBLIC
        return _h11_class(limits_)
    gone = _missing_cached("httptools")
    if gone:
        log.warning(_CLOSED, uvicorn.__version__, ", ".join(gone))
        return PUBLIC
    return _httptools_class(app if isinstance(app, DataPlaneFastPath) else None, limits_)


_CLOSED = "uvicorn %s lacks what shipyard's HTTP fast path relies on (%s): uvicorn's own runs"


def _refuse(proto: Any, exc: ShipyardError) -> None:
    """Answer `exc` straight on the connection and close it: the request never reached the
    app (a head too large, or one that did not arrive in time)."""
    transport = proto.transport
    if transport.is_closing():
        return
    body = dumps(exc.to_dict())
    head = [b"HTTP/1.1 %d %s\r\n" % (exc.http_status, HTTPStatus(exc.http_status).phrase.encode())]
    head += [b"%s: %s\r\n" % h for h in proto.server_state.default_headers]
    head.append(
        b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % len(body)
    )
    transport.write(b"".join(head) + body)
    transport.close()


class _Watchdog:
    """One timer per connection, ticking every `period`, that closes the connection when one
    phase lasts too long: "idle" (no request in flight, nothing of the next one arrived) past
    `keep_alive_seconds`, "head" (part of a request head arrived) past `header_seconds`,
    "body" (a head is in, its body is not) past `body_seconds`. A phase is timed from the
    tick that first saw it, so it ends between its limit and its limit plus one period. A
    protocol mixing this in says which phase it is in (`_phase`)."""

    limits: ConnectionLimits = ConnectionLimits()
    period: float = 1.0
    cycle: Any
    loop: Any
    transport: Any

    def _watch(self) -> None:
        self._seen: tuple[Any, str | None] = (None, "idle")
        self._since = self.loop.time()
        self._timer: Any = self.loop.call_later(self.period, self._tick)

    def _unwatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _phase(self) -> str | None:  # pragma: no cover - each protocol says
        raise NotImplementedError

    def _tick(self) -> None:
        self._timer = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:  # closed, upgraded
            return
        phase = self._phase()
        now = self.loop.time()
        if phase is None or self._seen != (self.cycle, phase):
            self._seen, self._since = (self.cycle, phase), now
        elif now - self._since >= self._limit(phase):
            self._expire(phase)
            return
        self._timer = self.loop.call_later(self.period, self._tick)

    def _limit(self, phase: str) -> float:
        limits = self.limits
        if phase == "head":
            return limits.header_seconds
        return limits.body_seconds if phase == "body" else limits.keep_alive_seconds

    def _expire(self, phase: str) -> None:
        cycle = self.cycle
        in_flight = cycle is not None and not cycle.response_complete
        if phase == "body":
            if not in_flight:  # answered already (early): its rest is not waited for
                self.transport.close()
                return
            cycle.disconnected = True  # the app waits for the rest: the client has left
            cycle.message_event.set()
            in_flight = getattr(cycle, "response_started", False)
        if phase == "idle" or in_flight:  # nothing to answer, or an answer on its way
            self.transport.close()
            return
        seconds = self._limit(phase)
        _refuse(
            self,
            ClientTimeoutError(
                f"the request {phase} did not arrive within {seconds:g} s",
                field=phase,
                limit=seconds,
            ),
        )


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a head over the limit."""


class _HotCycle:
    """A hot-route request in flight, with the attributes uvicorn's protocol reads and sets
    on its own cycles (`response_complete`, `disconnected`, `keep_alive`, `message_event`), so
    that keep-alive, pipelining, a lost connection and shutdown work unchanged. The body
    arrives in `chunks`, not in one growing buffer."""

    __slots__ = (
        "chunks",
        "disconnected",
        "flow",
        "keep_alive",
        "kind",
        "message_event",
        "more_body",
        "name",
        "on_response",
        "response_complete",
        "scope",
        "size",
        "transport",
        "waiting_for_100_continue",
    )

    def __init__(
        self,
        scope: dict[str, Any],
        transport: Any,
        flow: Any,
        keep_alive: bool,
        expect_100_continue: bool,
        on_response: Any,
        name: str,
        kind: str,
    ) -> None:
        self.scope = scope
        self.transport = transport
        self.flow = flow
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = expect_100_continue
        self.on_response = on_response
        self.name = name
        self.kind = kind
        self.chunks: list[bytes] = []
        self.size = 0
        self.more_body = True
        self.disconnected = False
        self.response_complete = False
        self.message_event = Signal()


class _HotRequest:
    """A hot-route request as the data plane reads it (`answers.BodyRequest`): its body
    arrives in the cycle's `chunks` as the protocol parses it."""

    __slots__ = ("_cycle", "headers")

    def __init__(self, cycle: _HotCycle) -> None:
        self._cycle = cycle
        self.headers = Headers(cycle.scope["headers"])

    async def read(self, limit: int) -> bytes:
        """The body, refusing more than `limit` bytes before reading them all."""
        check_declared_length(self.headers, limit)
        cycle = self._cycle
        while True:
            if cycle.size > limit:  # the parser stops reading past 64 KiB until asked
                raise body_too_large(limit)
            if not cycle.more_body:
                chunks, cycle.chunks = cycle.chunks, []  # the connection keeps no body once read
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if cycle.disconnected:
                raise ClientGone()
            if cycle.waiting_for_100_continue and not cycle.transport.is_closing():
                cycle.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                cycle.waiting_for_100_continue = False
            cycle.flow.resume_reading()
            await cycle.message_event.wait()
            cycle.message_event.clear()


class _DirectProtocol(_Watchdog):
    """The changes to uvicorn's httptools protocol (see the module's docstring), mixed in
    before it by `_httptools_class`, which sets the class attributes below."""

    base: Any  # uvicorn's HttpToolsProtocol: its methods, called without super()'s lookup
    fast: DataPlaneFastPath | None = None
    max_head: int
    high_water: int
    status_line: Any
    root_path: str
    limit_concurrency: int | None
    tasks: Any
    flow: Any
    parser: Any
    url: bytes
    headers: list[tuple[bytes, bytes]]
    scope: Any
    pipeline: Any
    expect_100_continue: bool
    on_response_complete: Any
    server_state: Any
    logger: Any
    app: Any

    def connection_made(self, transport: Any) -> None:
        self.base.connection_made(self, OneWriteTransport(transport, self.loop, self.tasks))
        self._direct = self.fast is not None and not self.root_path and not self.limit_concurrency
        # `_head_seen`: bytes read while a head is being read (whole reads that began in
        # it: a head that starts within the read that ends the request before it is
        # counted from the next read, so memory stays bounded by the limit plus one read)
        self._in_head = True
        self._head_seen = 0
        self._too_large = False
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._unwatch()
        self.base.connection_lost(self, exc)

    def _phase(self) -> str | None:
        if not self._in_head:
            return "body"
        if self._head_seen:
            return "head"
        cycle = self.cycle
        return "idle" if cycle is None or cycle.response_complete else None

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_seen += len(data)
        self.base.data_received(self, data)
        if self._in_head and self._head_seen > self.max_head:  # a head still growing
            self._too_large = True
            self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            _refuse(self, self.limits.head_too_large())
            return
        self.base.send_400_response(self, msg)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if (
            self._head_seen > self.max_head
            and head_size(len(self.url), self.headers) > self.max_head
        ):
            self._too_large = True  # parsing stops; uvicorn answers (send_400_response)
            raise _HeadTooLarge
        route = HOT_TARGET.match(self.url) if self._direct else None
        parser = self.parser
        if route is None or parser.get_method() != b"POST" or parser.should_upgrade():
            self.base.on_headers_complete(self)
            return
        http_version = parser.get_http_version()
        scope: Any = self.scope
        scope["method"] = "POST"
        if http_version != "1.1":
            scope["http_version"] = http_version
        scope["path"] = self.url.decode("ascii")
        scope["raw_path"] = self.url
        scope["query_string"] = b""
        index = route.lastindex or 1  # the group that matched tells the route
        kind, name = HOT_KINDS[index - 1], route.group(index).decode("ascii")
        cycle = _HotCycle(
            scope,
            self.transport,
            self.flow,
            http_version != "1.0" and parser.should_keep_alive(),
            self.expect_100_continue,
            self.on_response_complete,
            name,
            kind,
        )
        existing, self.cycle = self.cycle, cycle
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, self.app)
        else:  # pipelined: after the answers before it, as uvicorn does
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))

    def on_body(self, body: bytes) -> None:
        cycle: Any = self.cycle
        if type(cycle) is not _HotCycle:
            self.base.on_body(self, body)
            return
        if cycle.response_complete:
            return
        cycle.chunks.append(body)
        cycle.size += len(body)
        if cycle.size > self.high_water:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_seen = 0
        cycle: Any = self.cycle
        if type(cycle) is not _HotCycle:
            self.base.on_message_complete(self)
            return
        if cycle.response_complete:
            return
        cycle.more_body = False
        cycle.message_event.set()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if type(cycle) is not _HotCycle:
            if cycle.scope["method"] != "HEAD":  # HEAD answers have no body to wait for
                _hold_head(cycle)
            self.base._start_asgi_task(self, cycle, app)
            return
        task = self.loop.create_task(self._answer(cycle))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer(self, cycle: _HotCycle) -> None:
        fast = self.fast
        assert fast is not None
        try:
            status, body, headers = await fast.direct(
                cycle.scope, cycle.name, cycle.kind, _HotRequest(cycle)
            )
        except BaseException as exc:  # what uvicorn does: a 500 if it can, then close
            self.logger.error("Exception in the data plane's handler", exc_info=exc)
            if not cycle.disconnected and not self.transport.is_closing():
                self.transport.write(
                    self.status_line[500] + b"content-type: text/plain; charset=utf-8\r\n"
                    b"content-length: 21\r\nconnection: close\r\n\r\nInternal Server Error"
                )
                self.transport.close()
            cycle.response_complete = True
            if not isinstance(exc, Exception):
                raise
            return
        transport: Any = self.transport
        if self.flow.write_paused and not cycle.disconnected:
            # the client reads slower than it sends: wait, as uvicorn's send does, so that
            # answers never pile up in memory (reading stays paused until this one is out)
            await self.flow.drain()
        if cycle.disconnected or transport.is_closing():
            return
        head = [self.status_line[status]]
        head += [b"%s: %s\r\n" % h for h in self.server_state.default_headers]
        head += [b"%s: %s\r\n" % h for h in headers]
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", body)
        transport.answer(b"".join(head))
        cycle.response_complete = True
        if not cycle.keep_alive:
            transport.close()
        cycle.on_response()


def _httptools_class(fast: DataPlaneFastPath | None, limits: ConnectionLimits) -> Any:
    """uvicorn's httptools protocol with the module's three changes (`fast`: the hot routes'
    handler, None to send every request the ASGI way)."""
    from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

    attributes = {
        "base": HttpToolsProtocol,
        "fast": fast,
        "limits": limits,
        "period": limits.period,
        "max_head": limits.max_header_bytes,
        "high_water": HIGH_WATER_LIMIT,
        "status_line": STATUS_LINE,
    }
    return type("DataPlaneProtocol", (_DirectProtocol, HttpToolsProtocol), attributes)


def _h11_class(limits: ConnectionLimits) -> Any:
    """uvicorn's h11 protocol held to `limits` (h11 itself refuses a head over
    `h11_max_incomplete_event_size`, which `serving.http` sets to the same limit)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class LimitedH11Protocol(_Watchdog, H11Protocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._unwatch()
            super().connection_lost(exc)

        def _phase(self) -> str | None:
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                return "body"
            if state is h11.IDLE and self.conn.trailing_data[0]:
                return "head"
            cycle = self.cycle
            return "idle" if cycle is None or cycle.response_complete else None

        def send_400_response(self, msg: str) -> None:
            if len(self.conn.trailing_data[0]) > limits.max_header_bytes:
                _refuse(self, limits.head_too_large())
                return
            super().send_400_response(msg)

        def handle_events(self) -> None:
            try:
                super().handle_events()
            except _HeadTooLarge:
                _refuse(self, limits.head_too_large())

        def _should_upgrade(self) -> bool:
            # asked of every parsed head before its request starts: h11 refuses a head over
            # the limit only while it is incomplete, not one that arrived in a single read
            scope: Any = self.scope
            target = len(scope["raw_path"]) + len(scope["query_string"])
            if head_size(target, self.headers) > limits.max_header_bytes:
                raise _HeadTooLarge
            return bool(super()._should_upgrade())

    LimitedH11Protocol.limits = limits
    LimitedH11Protocol.period = limits.period
    return LimitedH11Protocol


def _hold_head(cycle: Any) -> None:
    """Make uvicorn's cycle send the head of its answer with the body's first write (a 100
    Continue still goes out before the start)."""
    send, transport = cycle.send, cycle.transport

    async def send_in_one_write(message: Any) -> None:
        if message["type"] == "http.response.start":
            transport.hold()
        await send(message)

    cycle.send = send_in_one_write
