"""The transport's parts that need nothing private of uvicorn: the listening socket, what one
connection may cost (`ConnectionLimits`), the transport wrapper that sends an answer's head
and body in one write, and a one-waiter event. The protocol that uses them on uvicorn's
connections is `serving.uvicorn_fence`; running a server is `serving.runner`.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.errors import HeadersTooLargeError, InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.config import Settings


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Created with IPPROTO_TCP on purpose: asyncio sets TCP_NODELAY on
    accepted connections only when the listening socket says proto == IPPROTO_TCP, and a plain
    socket(AF_INET, SOCK_STREAM) says 0 (the cause of uvicorn's multi-worker Nagle delays)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise _cannot_listen(host, port, exc) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _cannot_listen(host: str, port: int, exc: OSError) -> InvalidArgumentError:
    """Why a server cannot listen on host:port, and what to do about it."""
    import errno

    if exc.errno == errno.EADDRINUSE:
        why = "is in use by another process: stop it, or choose another port with --port"
    elif exc.errno == errno.EACCES:
        why = "needs privileges this user lacks: choose a port above 1023 with --port"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "is not an address of this machine: check --host"
    else:
        why = f"cannot be listened on ({exc.strerror})"
    return InvalidArgumentError(f"{host}:{port} {why}", field="port")


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may cost before its request is in: a request head over
    `max_header_bytes` is answered 431, a head must arrive within `header_seconds`, a body
    within `body_seconds`, and an idle connection closes after `keep_alive_seconds`."""

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

    @property
    def period(self) -> float:
        """How often a connection's watchdog looks at it."""
        return min(self.header_seconds, self.keep_alive_seconds, self.body_seconds) / 2


def head_size(target: int, headers: list[tuple[bytes, bytes]]) -> int:
    """About the bytes of a parsed head: request line and header lines."""
    return target + 16 + sum(len(n) + len(v) + 4 for n, v in headers)


class OneWriteTransport:
    """A transport that sends an answer's head and the first part of its body in one write
    (or takes a whole answer, `answer`), and, while other requests are in flight, the answers
    of one event-loop turn together at its end.

    An HTTP server commonly writes the status line and headers, then the body, as two writes;
    with TCP_NODELAY each is a system call and a packet of its own, and the client may wake up
    for each. Once told that an answer starts (`hold`), this keeps the head and sends it with
    the next write. A lone request goes out at once; under load, the answers of a turn leave
    in one write (see benchmarks/serving for the effect). Everything but writing is the
    wrapped transport's."""

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


class Signal:
    """A set/clear flag with one waiter at a time (the handler reading a body): what a hot
    request's cycle needs of an event, for less than an asyncio.Event costs."""

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
