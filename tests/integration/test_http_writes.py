"""shipyard's HTTP server sends an answer's head and body in one write (and, under load, the
answers of one loop turn together): nothing may be lost, reordered or held back — HEAD
answers, streamed bodies, 100-continue, keep-alive and many connections at once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from shipyard.serving.http import BackgroundServer


def make_app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/hello", methods=["GET", "HEAD"])
    async def hello() -> PlainTextResponse:
        return PlainTextResponse("hello world")

    @app.post("/echo")
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse((await request.body()).decode())

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for i in range(3):
                await asyncio.sleep(0.05)
                yield f"part{i};".encode()

        return StreamingResponse(parts(), media_type="text/plain")

    @app.get("/empty", status_code=204)
    async def empty() -> None:
        return None

    return app


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with BackgroundServer(make_app()) as srv:
        yield srv.url


def test_plain_head_streamed_and_empty_answers(url: str) -> None:
    with httpx.Client(base_url=url, timeout=5) as client:  # one keep-alive connection
        for _ in range(3):
            r = client.get("/hello")
            assert (r.status_code, r.text) == (200, "hello world")
            head = client.head("/hello")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == "11"
            assert client.get("/stream").text == "part0;part1;part2;"
            assert client.get("/empty").status_code == 204
            assert client.post("/echo", content=b"x" * 100_000).text == "x" * 100_000


def test_expect_100_continue_is_not_held_back(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Content-Type: text/plain\r\nExpect: 100-continue\r\n\r\n"
        )
        # the server must say "continue" before the body is sent, not with the answer
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"abcde")
        answer = b""
        while not answer.endswith(b"abcde"):
            chunk = sock.recv(1024)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK")


def test_many_connections_at_once_each_get_their_own_answer(url: str) -> None:
    def session(i: int) -> list[str]:
        with httpx.Client(base_url=url, timeout=10) as client:
            return [client.post("/echo", content=f"{i}-{j}").text for j in range(30)]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(session, range(32)))
    assert results == [[f"{i}-{j}" for j in range(30)] for i in range(32)]
