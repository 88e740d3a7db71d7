"""The web UI at /ui: one HTML shell, its scripts and styles from this package (no CDN), and
plotly.js's "strict" bundle (static/vendor/, gzipped; MIT, from the npm package
plotly.js-strict-dist-min): the regular bundle compiles its WebGL code with `eval`, which the
shell's CSP forbids, so parallel coordinates and WebGL traces would not draw. Every page reads
the same /api the CLI's HTTP clients use, with the same credentials (an API key or JWT the
browser keeps for the tab), so the UI can do nothing the caller's scopes do not allow.

    install_ui(app)      # GET /ui, /ui/<page…> (the shell), /ui/assets/* (files)

The view's whole state (filters, sort, columns, selection, time range) lives in the page's
URL: `static/app.js` reads it on load and writes it on every change, so a link reproduces the
view. The shell is served under a strict Content-Security-Policy: scripts only from this
origin, no inline script, no plugins, no framing by other sites.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from fastapi import FastAPI


PREFIX: Final = "/ui"
STATIC: Final = Path(__file__).parent / "static"
# Plotly injects its own <style> elements; scripts stay same-origin only
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' blob: data:; frame-src 'self' blob:; connect-src 'self'; "
    "font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'self'"
)
HEADERS: Final = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


# plotly.js's "strict" bundle (npm plotly.js-strict-dist-min 4.1.1, MIT, vendor/): the regular
# one compiles its WebGL code with eval, which the CSP forbids (parcoords would not draw)
PLOTLY: Final = STATIC / "vendor" / "plotly-strict.min.js.gz"


def install_ui(app: FastAPI) -> None:
    """Serve the UI on `app` at /ui (auth leaves the shell and its files open: they hold no
    data; every /api call the pages make is checked as usual)."""
    import gzip
    from functools import cache

    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
    from starlette.staticfiles import StaticFiles

    shell = (STATIC / "index.html").read_bytes()

    @cache
    def plotly_gz() -> bytes:
        return PLOTLY.read_bytes()

    async def page(request: object) -> Response:
        return Response(shell, media_type="text/html; charset=utf-8", headers=HEADERS)

    async def plotly_js(request: Request) -> Response:
        headers = {"cache-control": "max-age=86400", "vary": "accept-encoding"}
        body = plotly_gz()
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(
                body, media_type="text/javascript", headers={**headers, "content-encoding": "gzip"}
            )
        return Response(gzip.decompress(body), media_type="text/javascript", headers=headers)

    app.router.routes.append(
        Route(f"{PREFIX}/assets/vendor/plotly.min.js", plotly_js, include_in_schema=False)
    )
    app.mount(f"{PREFIX}/assets", StaticFiles(directory=STATIC), name="ui-assets")
    app.router.routes.append(Route(PREFIX, page, include_in_schema=False))
    app.router.routes.append(Route(PREFIX + "/{rest:path}", page, include_in_schema=False))
