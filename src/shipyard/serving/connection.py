"""One HTTP/1.1 connection of shipyard's server: uvicorn's httptools protocol, with the data
plane's hot routes (POST /endpoints/{name}/predict and /v2/models/{name}/infer) handed to
their handler directly, and every answer's head written together with its body.

For each request uvicorn builds a RequestResponseCycle with an asyncio.Event, runs the ASGI
app in a task through its middleware, and turns two ASGI messages back into bytes, checking
every header against two regular expressions. For a hot route that is all overhead around a
handler that needs a few headers and the body: such a request gets a small cycle of its own
(`_HotCycle`), its handler runs as soon as the headers are in, and the answer (status, JSON
body and the data plane's own headers) leaves in one write. uvicorn keeps everything else:
parsing, every other request (the whole ASGI app), keep-alive, pipelining, flow control,
limits and graceful shutdown. Counted with callgrind on one connection (`benchmarks/serving`),
the hot path costs ~20 % fewer instructions per request this way than through ASGI.

A hot route whose path needs decoding (percent escapes, a query string) takes the ASGI way
to the same handler; so does every request when uvicorn limits concurrency or mounts the app
under a root path.

Both protocols (this one, and uvicorn's h11 one where httptools is missing) also bound what a
connection may cost before its request is in (`ConnectionLimits`): a request head over
`max_header_bytes` is answered 431, a head must arrive within `header_seconds`, a body within
`body_seconds`, and an idle connection closes after `keep_alive_seconds` (uvicorn arms its
keep-alive timer only after an answer, and any byte cancels it). One timer per connection
checks this (`_Watchdog`); the request path only counts the bytes a head takes.

This is shipyard's one module that uses uvicorn's private names (its protocols' attributes
and `_start_asgi_task`); `protocol_class` checks at start-up that they exist and falls back
to uvicorn's own protocol if not. pyproject bounds uvicorn to the releases tested.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect

from shipyard.errors import ClientTimeoutError, HeadersTooLargeError, ShipyardError
from shipyard.serving.app import (
    DataPlaneFastPath,
    _Headers,
    body_too_large,
    check_declared_length,
)
from shipyard.serving.protocol import dumps

if TYPE_CHECKING:
    from shipyard.config import Settings

log = logging.getLogger("shipyard.serving")

# the hot routes on the raw request target: anything to decode goes the ASGI way
_HOT_TARGET = re.compile(
    rb"/(?:endpoints/([^/?%#\x00-\x20\x7f-\xff]+)/predict|v2/models/([^/?%#\x00-\x20\x7f-\xff]+)/infer)\Z"
)


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may cost before its request is in (see the module's docstring)."""

    max_header_bytes: int = 64 * 1024
    header_seconds: float = 10.0
    keep_alive_seconds: float = 5.0
    body_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            settings.max_header_bytes,
            settings.header_timeout_seconds,
            settings.keep_alive_seconds,
            settings.request_timeout_seconds,
        )

    def head_too_large(self) -> HeadersTooLargeError:
        return HeadersTooLargeError(
            f"the request line and headers exceed {self.max_header_bytes} bytes",
            field="headers",
            limit=self.max_header_bytes,
        )


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


def _head_size(target: int, headers: list[tuple[bytes, bytes]]) -> int:
    """About the bytes of a parsed head: request line and header lines."""
    return target + 16 + sum(len(n) + len(v) + 4 for n, v in headers)


class _OneWriteTransport:
    """A transport that sends an answer's head and the first part of its body in one write
    (or takes a whole answer, `answer`), and, while other requests are in flight, the answers
    of one event-loop turn together at its end.

    uvicorn writes the status line and headers, then the body, as two writes; with TCP_NODELAY
    each is a system call and a packet of its own, and the client may wake up for each. Once
    told that an answer starts (`hold`), this keeps the head and sends it with the next write.
    A lone request goes out at once; under load, deferring to the end of the turn measured
    +30 % req/s at 16 connections (1-row requests), and nothing at 1. Everything but writing is
    the wrapped transport's."""

    __slots__ = ("_held", "_holding", "_loop", "_pending", "_tasks", "_transport")

    def __init__(self, transport: Any, loop: Any, tasks: Any) -> None:
        self._transport = transport
        self._holding = False
        self._held: bytes | None = None
        self._loop = loop
        self._tasks = tasks
        self._pending: list[bytes] = []

    def hold(self) -> None:
        self._holding = True

    def write(self, data: bytes) -> None:
        if self._holding:
            if self._held is None:
                self._held = data
                return
            data = self._held + data
            self._held = None
            self._holding = False
            self.answer(data)
            return
        if self._pending:
            self._pending.append(data)
            return
        self._transport.write(data)

    def answer(self, data: bytes) -> None:
        """A whole answer, head and body: out at once, or at the end of the turn when busy."""
        if len(self._tasks) > 1:  # busy: answers of this turn leave together at its end
            if not self._pending:
                self._loop.call_soon(self._send_pending)
            self._pending.append(data)
        elif self._pending:
            self._pending.append(data)
        else:
            self._transport.write(data)

    def _send_pending(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def _release(self) -> None:
        self._send_pending()
        held, self._held, self._holding = self._held, None, False
        if held is not None:
            self._transport.write(held)

    def get_write_buffer_size(self) -> int:
        pending = sum(map(len, self._pending)) + len(self._held or b"")
        return int(self._transport.get_write_buffer_size()) + pending

    def is_closing(self) -> bool:  # asked after every answer: not through __getattr__
        return bool(self._transport.is_closing())

    def write_eof(self) -> None:
        self._release()
        self._transport.write_eof()

    def close(self) -> None:
        self._release()
        self._transport.close()

    def abort(self) -> None:
        self._held, self._holding = None, False
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Signal:
    """What a hot cycle's `message_event` must do: `set` for uvicorn's parser callbacks and
    for a lost connection, and one waiter (the handler reading the body) at a time."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


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
        self.message_event = _Signal()


class _HotRequest:
    """A hot-route request as the data plane's handler reads it: `headers.get(name)` and
    `await read(limit)`."""

    __slots__ = ("_cycle", "headers")

    def __init__(self, cycle: _HotCycle) -> None:
        self._cycle = cycle
        self.headers = _Headers(cycle.scope["headers"])

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
                raise ClientDisconnect()
            if cycle.waiting_for_100_continue and not cycle.transport.is_closing():
                cycle.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                cycle.waiting_for_100_continue = False
            cycle.flow.resume_reading()
            await cycle.message_event.wait()
            cycle.message_event.clear()


def protocol_class(app: Any, limits: ConnectionLimits | None = None) -> Any:
    """The HTTP protocol for uvicorn to run `app` with, holding every connection to `limits`:
    hot routes answered directly when `app` is the data plane's fast path, and every answer's
    head sent with its body (uvicorn's h11 protocol, limits only, without httptools)."""
    limits_: ConnectionLimits = limits or ConnectionLimits()
    try:
        from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        return _h11_class(limits_)
    if not hasattr(HttpToolsProtocol, "send_400_response"):  # pragma: no cover
        log.warning("this uvicorn lacks what shipyard's protocol uses: uvicorn's own runs")
        return "auto"

    # the hook every task start goes through, pipelined requests included (uvicorn 0.55 has
    # it); without it, every request takes the ASGI way (correct, slower)
    hooked = hasattr(HttpToolsProtocol, "_start_asgi_task")
    fast = app if isinstance(app, DataPlaneFastPath) and hooked else None
    max_head = limits_.max_header_bytes
    base_data_received = HttpToolsProtocol.data_received

    class DataPlaneProtocol(_Watchdog, HttpToolsProtocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(_OneWriteTransport(transport, self.loop, self.tasks))  # type: ignore[arg-type]
            self._direct = fast is not None and not self.root_path and not self.limit_concurrency
            # `_head_seen`: bytes read while a head is being read (whole reads that began in
            # it: a head that starts within the read that ends the request before it is
            # counted from the next read, so memory stays bounded by the limit plus one read)
            self._in_head = True
            self._head_seen = 0
            self._too_large = False
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._unwatch()
            super().connection_lost(exc)

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
            base_data_received(self, data)
            if self._in_head and self._head_seen > max_head:  # a head still growing
                self._too_large = True
                self.send_400_response("")

        def send_400_response(self, msg: str) -> None:
            if self._too_large:
                _refuse(self, self.limits.head_too_large())
                return
            super().send_400_response(msg)

        def on_headers_complete(self) -> None:
            self._in_head = False
            if self._head_seen > max_head and _head_size(len(self.url), self.headers) > max_head:
                self._too_large = True  # parsing stops; uvicorn answers (send_400_response)
                raise _HeadTooLarge
            route = _HOT_TARGET.match(self.url) if self._direct else None
            parser = self.parser
            if route is None or parser.get_method() != b"POST" or parser.should_upgrade():
                super().on_headers_complete()
                return
            http_version = parser.get_http_version()
            scope: Any = self.scope
            scope["method"] = "POST"
            if http_version != "1.1":
                scope["http_version"] = http_version
            scope["path"] = self.url.decode("ascii")
            scope["raw_path"] = self.url
            scope["query_string"] = b""
            name = route.group(1) or route.group(2)
            cycle = _HotCycle(
                scope,
                self.transport,
                self.flow,
                http_version != "1.0" and parser.should_keep_alive(),
                self.expect_100_continue,
                self.on_response_complete,
                name.decode("ascii"),
                "predict" if route.group(1) else "infer",
            )
            existing, self.cycle = self.cycle, cycle  # type: ignore[assignment]
            if existing is None or existing.response_complete:
                self._start_asgi_task(cycle, self.app)
            else:  # pipelined: after the answers before it, as uvicorn does
                self.flow.pause_reading()
                self.pipeline.appendleft((cycle, self.app))  # type: ignore[arg-type]

        def on_body(self, body: bytes) -> None:
            cycle: Any = self.cycle
            if type(cycle) is not _HotCycle:
                super().on_body(body)
                return
            if cycle.response_complete:
                return
            cycle.chunks.append(body)
            cycle.size += len(body)
            if cycle.size > HIGH_WATER_LIMIT:
                self.flow.pause_reading()
            cycle.message_event.set()

        def on_message_complete(self) -> None:
            self._in_head = True
            self._head_seen = 0
            cycle: Any = self.cycle
            if type(cycle) is not _HotCycle:
                super().on_message_complete()
                return
            if cycle.response_complete:
                return
            cycle.more_body = False
            cycle.message_event.set()

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            if type(cycle) is not _HotCycle:
                if cycle.scope["method"] != "HEAD":  # HEAD answers have no body to wait for
                    _hold_head(cycle)
                super()._start_asgi_task(cycle, app)
                return
            task = self.loop.create_task(self._answer(cycle))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

        async def _answer(self, cycle: _HotCycle) -> None:
            assert fast is not None
            try:
                status, body, headers = await fast.direct(
                    cycle.scope, cycle.name, cycle.kind, _HotRequest(cycle)
                )
            except BaseException as exc:  # what uvicorn does: a 500 if it can, then close
                self.logger.error("Exception in the data plane's handler", exc_info=exc)
                if not cycle.disconnected and not self.transport.is_closing():
                    self.transport.write(
                        STATUS_LINE[500] + b"content-type: text/plain; charset=utf-8\r\n"
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
            head = [STATUS_LINE[status]]
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

    DataPlaneProtocol.limits = limits_
    DataPlaneProtocol.period = _period(limits_)
    return DataPlaneProtocol


def _period(limits: ConnectionLimits) -> float:
    return min(limits.header_seconds, limits.keep_alive_seconds, limits.body_seconds) / 2


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
            if _head_size(target, self.headers) > limits.max_header_bytes:
                raise _HeadTooLarge
            return bool(super()._should_upgrade())

    LimitedH11Protocol.limits = limits
    LimitedH11Protocol.period = _period(limits)
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
