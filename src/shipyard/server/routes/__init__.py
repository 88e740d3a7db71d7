"""The control plane's /api routes, one module per capability. Each handler is a module-level
function of its request parameters and the typed `ControlPlane` (see `server.plane`), so it
can be named, imported and called in a test without a socket.

A module declares its routes on a `Routes` next to the handlers; `mount` adds them to the
app's own route table as plain routes, exactly as `@app.get(...)` would (an included
APIRouter would put a wrapper in the table instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from fastapi import FastAPI

Handler = TypeVar("Handler", bound=Callable[..., Any])


class Routes:
    """Routes declared at import time and added to an app later, in declaration order."""

    def __init__(self, tags: list[str] | None = None) -> None:
        self.tags = tags
        self.declared: list[tuple[str, str, Callable[..., Any], dict[str, Any]]] = []

    def route(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            self.declared.append((method, path, handler, options))
            return handler

        return declare

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)

    def mount(self, app: FastAPI) -> None:
        for method, path, handler, options in self.declared:
            if self.tags is not None:
                options = {"tags": self.tags, **options}
            app.add_api_route(path, handler, methods=[method], **options)
