"""The API's documentation pages served from the package, so they render on a machine without
internet, and the home page `/`.

    app = ServingApp(title="…")        # installs /docs, /docs/oauth2-redirect, /redoc and
                                       # /docs/assets/* (FastAPI's CDN pages are off)
    install_home(app, "/docs", {…})    # `/`: a browser is sent to the target, a program
                                       # gets a JSON index of links

The scripts and styles (Swagger UI 5, ReDoc 2) are the files the `fastapi-offline` package
ships in its `static/` folder, mounted at /docs/assets; auth leaves them open like the pages
(`routes._OPEN`). The folder is checked when an app is made: should a release of that package
move its files, one line is logged and the pages load FastAPI's defaults from a CDN instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request  # at run time: FastAPI reads the handlers' annotations
from starlette.responses import Response

log = logging.getLogger("shipyard.serving")

ASSETS_URL: Final = "/docs/assets"
ASSETS: Final = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def assets_dir() -> Path | None:
    """The folder holding every file of `ASSETS`, or None (logged) when it cannot be found."""
    from importlib.resources import files

    try:
        folder = Path(str(files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        log.warning("fastapi-offline is not installed: /docs and /redoc load from a CDN")
        return None
    gone = [name for name in ASSETS if not (folder / name).is_file()]
    if gone:
        log.warning(
            "fastapi-offline lacks %s in %s: /docs and /redoc load from a CDN",
            ", ".join(gone),
            folder,
        )
        return None
    return folder


def install_docs(app: FastAPI, docs_url: str | None, redoc_url: str | None) -> None:
    """Swagger UI at `docs_url` and ReDoc at `redoc_url` (None: not offered), their assets
    from the package. `app` must have been made with FastAPI's own pages off."""
    from fastapi.openapi.docs import (
        get_redoc_html,
        get_swagger_ui_html,
        get_swagger_ui_oauth2_redirect_html,
    )
    from fastapi.staticfiles import StaticFiles

    folder = assets_dir()
    if folder is not None and (docs_url or redoc_url):
        app.mount(ASSETS_URL, StaticFiles(directory=folder), name="docs-assets")

    def urls(request: Request, page: str, names: dict[str, str]) -> dict[str, Any]:
        """The page function's `{page}_{kind}_url` arguments for the asset files `names`
        ({kind: file}) under the app's root path; none (FastAPI's CDN defaults) without them."""
        if folder is None:
            return {}
        root = f"{_root(request)}{ASSETS_URL}"
        return {f"{page}_{kind}_url": f"{root}/{name}" for kind, name in names.items()}

    oauth2_url = app.swagger_ui_oauth2_redirect_url
    if docs_url:

        async def swagger_ui(request: Request) -> Response:
            assets = {
                "js": "swagger-ui-bundle.js",
                "css": "swagger-ui.css",
                "favicon": "favicon.png",
            }
            return get_swagger_ui_html(
                openapi_url=f"{_root(request)}{app.openapi_url}",
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=oauth2_url,
                swagger_ui_parameters=app.swagger_ui_parameters,
                **urls(request, "swagger", assets),
            )

        app.add_api_route(docs_url, swagger_ui, methods=["GET"], include_in_schema=False)
        if oauth2_url:

            async def oauth2_redirect() -> Response:
                return get_swagger_ui_oauth2_redirect_html()

            app.add_api_route(oauth2_url, oauth2_redirect, methods=["GET"], include_in_schema=False)
    if redoc_url:

        async def redoc(request: Request) -> Response:
            assets = {"js": "redoc.standalone.js", "favicon": "favicon.png"}
            page = get_redoc_html(
                openapi_url=f"{_root(request)}{app.openapi_url}",
                title=f"{app.title} - ReDoc",
                with_google_fonts=folder is None,  # fonts from Google only with the CDN's
                **urls(request, "redoc", assets),
            )
            if folder is not None:  # ReDoc's menu always fetches its maker's logo from a CDN
                page.headers["content-security-policy"] = "img-src 'self' data:"
            return page

        app.add_api_route(redoc_url, redoc, methods=["GET"], include_in_schema=False)


def install_home(app: FastAPI, target: str, links: dict[str, Any]) -> None:
    """`GET /`: a browser (its Accept names text/html) is redirected to `target`; any other
    caller gets `links`, a JSON index of where things are. The target is an argument so the
    page that takes `/` later (the web UI) is a change of one call."""
    from starlette.responses import JSONResponse, RedirectResponse

    async def home(request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"{_root(request)}{target}", status_code=307)
        return JSONResponse(links)

    app.add_api_route("/", home, methods=["GET"], include_in_schema=False)


def index_links(**extra: Any) -> dict[str, Any]:
    """The links every app's `/` lists, with `extra` (what only that app offers)."""
    from shipyard import __version__

    return {
        "name": "shipyard",
        "version": __version__,
        "docs": "/docs",
        "redoc": "/redoc",
        "openapi": "/openapi.json",
        "live": "/v2/health/live",
        "ready": "/v2/health/ready",
        "metrics": "/metrics",
        **extra,
    }


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def endpoint_links(names: list[str]) -> dict[str, dict[str, str]]:
    """Each endpoint's routes, for the index of an app whose endpoints are no secret (`shipyard
    serve` names its one endpoint in its OpenAPI document already)."""
    return {
        name: {
            "predict": f"/endpoints/{name}/predict",
            "feedback": f"/endpoints/{name}/feedback",
            "metadata": f"/v2/models/{name}",
            "infer": f"/v2/models/{name}/infer",
        }
        for name in names
    }
