"""What a connection may cost before its request is in, on a real `shipyard server` process
over raw sockets, with shipyard's own protocol (httptools, hot routes) and with uvicorn's h11
one: a head over the size limit is refused (431) without the server's memory growing, a head
or body that trickles in (or stops) is cut off within its timeout, an idle connection closes,
and /api bodies are held to their own limit, declared or chunked."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

pytestmark = pytest.mark.slow

# uvicorn's h11 protocol held to the same limits (what runs where httptools is missing)
_H11_SERVER = """
import sys, uvicorn
from shipyard.config import get_settings
from shipyard.server.app import create_server_app
from shipyard.serving import runner
from shipyard.serving.transport import ConnectionLimits
from shipyard.serving.uvicorn_fence import _h11_class
settings = get_settings()
config = runner._config(create_server_app(settings), "warning")
config.http = _h11_class(ConnectionLimits.from_settings(settings))
uvicorn.Server(config).run(sockets=[runner.bind("127.0.0.1", int(sys.argv[1]))])
"""

HEADER_SECONDS = 1.0
BODY_SECONDS = 2.0
MAX_HEADER = 16 * 1024
MAX_API_BODY = 64 * 1024


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def memory_kib(self, field: str) -> int:
        """VmRSS (now) or VmHWM (the peak so far) of the server process."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(field)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "SHIPYARD_HOME": str(tmp_path_factory.mktemp("transport-home")),
        "SHIPYARD_MAX_HEADER_BYTES": str(MAX_HEADER),
        "SHIPYARD_HEADER_TIMEOUT_SECONDS": str(HEADER_SECONDS),
        "SHIPYARD_KEEP_ALIVE_SECONDS": str(HEADER_SECONDS),
        "SHIPYARD_REQUEST_TIMEOUT_SECONDS": str(BODY_SECONDS),
        "SHIPYARD_API_MAX_BODY_BYTES": str(MAX_API_BODY),
        "SHIPYARD_MONITOR_INTERVAL_SECONDS": "0",
        "SHIPYARD_ROLLOUT_INTERVAL_SECONDS": "0",
    }
    if request.param == "httptools":
        cmd = [sys.executable, "-m", "shipyard", "server", "--port", str(port)]
        cmd += ["--log-level", "error"]
    else:
        cmd = [sys.executable, "-c", _H11_SERVER, str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    srv = Server(proc, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(srv.url + "/health/live", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.1)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def _send_until_refused(sock: socket.socket, chunk: bytes, total: int) -> int:
    """Send up to `total` bytes of `chunk`s; the number sent when the server stopped reading."""
    sent = 0
    sock.settimeout(5)
    try:
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    return sent


@pytest.mark.parametrize("path", ["/api/models", "/endpoints/churn/predict"])
def test_a_200_mb_header_is_refused_without_the_server_growing(server: Server, path: str) -> None:
    peak_before = server.memory_kib("VmHWM")
    with server.connect() as sock:
        sock.sendall(b"POST %s HTTP/1.1\r\nhost: x\r\nx-big: " % path.encode())
        sent = _send_until_refused(sock, b"a" * (1 << 20), 200 << 20)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"field":"headers"' in answer and b'"limit":%d' % MAX_HEADER in answer
    assert sent < 200 << 20  # the server stopped reading long before the end
    growth_kib = server.memory_kib("VmHWM") - peak_before
    assert growth_kib < 20 * 1024, f"the server's peak RSS grew by {growth_kib} KiB"


def test_a_head_over_the_limit_in_one_read_or_in_many_headers_is_refused(server: Server) -> None:
    one_header = b"GET /api/models HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 2 * MAX_HEADER
    many = b"GET /api/models HTTP/1.1\r\nhost: x\r\n" + b"x-h: 0123456789\r\n" * 2000
    for head in (one_header + b"\r\n\r\n", many + b"\r\n"):
        with server.connect() as sock:
            sock.sendall(head)
            assert _read_all(sock).startswith(b"HTTP/1.1 431 ")
    # just under the limit is fine
    with server.connect() as sock:
        sock.sendall(b"GET /api/models HTTP/1.1\r\nhost: x\r\nx-ok: " + b"a" * (MAX_HEADER // 2))
        sock.sendall(b"\r\nconnection: close\r\n\r\n")
        assert _read_all(sock).startswith(b"HTTP/1.1 200 ")


def _closed_within(sock: socket.socket, trickle: list[bytes], every: float) -> tuple[float, bytes]:
    """Send `trickle` one piece every `every` s (after the first) until the server closes;
    the seconds that took and what it answered."""
    start = time.monotonic()
    answer = b""
    sock.settimeout(every)
    pieces = iter(trickle)
    while True:
        piece = next(pieces, None)
        if piece is not None:
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        answer += chunk
        if time.monotonic() - start > 30:
            break
    return time.monotonic() - start, answer


def test_a_head_trickled_or_stopped_midway_is_cut_off_within_the_timeout(server: Server) -> None:
    lines = [b"GET /api/models HTTP/1.1\r\n"] + [b"x-slow-%d: 1\r\n" % i for i in range(100)]
    for trickle in (lines, lines[:3]):  # one header line every 0.2 s; three, then nothing
        with server.connect() as sock:
            took, answer = _closed_within(sock, trickle, 0.2)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"field":"head"' in answer
        assert HEADER_SECONDS <= took < 2 * HEADER_SECONDS + 1, took


def test_an_idle_connection_closes_and_keep_alive_still_works(server: Server) -> None:
    with server.connect() as sock:  # connects, sends nothing
        took, answer = _closed_within(sock, [], 0.2)
    assert answer == b"" and took < 2 * HEADER_SECONDS + 1, took
    with server.connect() as sock:  # requests on one connection, each within the idle limit
        sock.settimeout(5)
        for _ in range(3):
            sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"live":true}'):
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 ")
            time.sleep(HEADER_SECONDS / 2)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/features/v/push", b"408"),  # the route waits for its body: it never comes
        ("/endpoints/churn/predict", b"404"),  # answered early: the rest is not waited for
    ],
)
def test_a_trickled_body_is_cut_off_within_the_request_timeout(
    server: Server, path: str, status: bytes
) -> None:
    head = b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" % path.encode()
    with server.connect() as sock:
        trickle = [head + b"content-length: 1000\r\n\r\n"] + [b" "] * 200
        took, answer = _closed_within(sock, trickle, 0.2)
    assert BODY_SECONDS <= took < 2 * BODY_SECONDS + 1, took
    assert answer.startswith(b"HTTP/1.1 %s " % status), answer
    assert answer.count(b"HTTP/1.1") == 1, answer
    if status == b"408":
        assert b'"field":"body"' in answer


def test_api_bodies_over_the_limit_are_refused_declared_or_chunked(server: Server) -> None:
    peak_before = server.memory_kib("VmHWM")
    head = b"POST /api/features/v/push HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    with server.connect() as sock:  # declared: refused before any of it is read
        sock.sendall(head + b"content-length: 314572800\r\n\r\n")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b'"limit":%d' % MAX_API_BODY in answer
    with server.connect() as sock:  # chunked: refused once over, the rest never read
        sock.sendall(head + b"transfer-encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (1 << 16, b" " * (1 << 16))
        sent = _send_until_refused(sock, chunk, 300 << 20)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert b'"field":"body"' in answer
    assert sent < 300 << 20
    growth_kib = server.memory_kib("VmHWM") - peak_before
    assert growth_kib < 20 * 1024, f"the server's peak RSS grew by {growth_kib} KiB"
    # under the limit, the route answers as before (an unknown view)
    r = httpx.post(server.url + "/api/features/v/push", json={"rows": [{"id": 1}]})
    assert r.status_code == 404, r.text
