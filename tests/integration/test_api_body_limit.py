"""The control plane's body limit over real HTTP: every /api route refuses a body over
`api_max_body_bytes` (413, JSON naming the limit) on its Content-Length before reading it,
and a chunked one once it passes the limit, without reading the rest. (The server process's
memory under a 300 MB body: tests/integration/test_transport_limits.py.)"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer

LIMIT = 64 * 1024


@pytest.fixture
def server(tmp_path: Any) -> Iterator[BackgroundServer]:
    settings = Settings(
        home=tmp_path,
        monitor_interval_seconds=0,
        rollout_interval_seconds=0,
        api_max_body_bytes=LIMIT,
    )
    with BackgroundServer(create_server_app(settings)) as srv:
        srv.wait_ready("/health/live")
        yield srv


ROUTES = ["/api/features/v/push", "/api/endpoints", "/api/models/m/aliases/a"]


@pytest.mark.parametrize("path", ROUTES)
def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    server: BackgroundServer, path: str
) -> None:
    method = b"PUT" if "aliases" in path else b"POST"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"%s %s HTTP/1.1\r\nhost: x\r\ncontent-length: 314572800\r\n\r\n"
            % (method, path.encode())
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    body = answer.split(b"\r\n\r\n", 1)[1]
    assert b'"field":"body"' in body and b'"limit":%d' % LIMIT in body
    assert b"connection: close" in answer.lower()


@pytest.mark.parametrize("path", ROUTES)
def test_a_chunked_body_is_refused_once_over_and_the_rest_is_not_read(
    server: BackgroundServer, path: str
) -> None:
    method = b"PUT" if "aliases" in path else b"POST"
    chunk = b"%x\r\n%s\r\n" % (1 << 16, b" " * (1 << 16))
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"%s %s HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            % (method, path.encode())
        )
        try:
            while sent < 300 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert answer.count(b"HTTP/1.1 ") == 1  # the route's own answer never follows
    assert b'"limit":%d' % LIMIT in answer
    assert sent < 300 << 20


def test_bodies_under_the_limit_and_other_routes_are_untouched(server: BackgroundServer) -> None:
    r = httpx.post(server.url + "/api/features/v/push", json={"rows": [{"id": 1}]})
    assert r.status_code == 404, r.text  # the route's own answer: no such view
    big = {"rows": [{"id": i, "x": "y" * 100} for i in range(1000)]}  # > LIMIT
    assert httpx.post(server.url + "/api/features/v/push", json=big).status_code == 413
    # the data plane keeps its own limit (max_body_bytes), not the control plane's
    r = httpx.post(server.url + "/endpoints/e/feedback", json=big)
    assert r.status_code == 404, r.text
