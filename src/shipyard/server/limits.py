"""The control plane's body limit: a request body under /api is refused (413, JSON naming the
limit, then the connection closes) on its declared Content-Length before any of it is read,
and, when it streams (chunked), as soon as it passes the limit; reading stops there. Pure
ASGI in front of the routes, so no handler can forget it.

    app.add_middleware(BodyLimitMiddleware, limit=settings.api_max_body_bytes)

Streamed uploads (MLflow's artifact proxy) have their own, larger limit (`larger`).
"""

from __future__ import annotations

from typing import Any

from shipyard.errors import ShipyardError
from shipyard.serving.answers import Headers as _Headers
from shipyard.serving.answers import body_too_large, check_declared_length, error_answer


class BodyLimitMiddleware:
    """Bodies of requests whose path starts with `prefix` are held to `limit` bytes."""

    def __init__(
        self,
        app: Any,
        limit: int,
        prefix: str | tuple[str, ...] = "/api",
        larger: tuple[tuple[str, int], ...] = (),
    ) -> None:
        self.app = app
        self.limit = limit
        self.prefix = prefix
        self.larger = larger  # (path prefix, limit) of routes that stream their bodies

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        limit = next((n for p, n in self.larger if scope["path"].startswith(p)), self.limit)
        try:
            check_declared_length(_Headers(scope["headers"]), limit)
        except ShipyardError as exc:
            await _answer(send, exc)
            return
        received = 0
        started = refused = False

        async def limited_receive() -> Any:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # the app is told the client left; it answers nothing
                    refused = True
                    if not started:
                        await _answer(send, body_too_large(limit))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:  # the app's failure when told the client left is no failure
                raise


async def _answer(send: Any, exc: ShipyardError) -> None:
    """`exc` as the answer, closing the connection (the rest of the body is not read)."""
    status, body, headers = error_answer(exc)
    headers = [*headers, (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
