"""Property tests of the route matcher: for any path, the auth layer's idea of what a request
needs agrees with the route the app actually runs, and shipyard's own fast path takes exactly
the requests the app's predict and infer routes would take, with the same endpoint name.

Paths are drawn from the route table's own words, path tricks ('..', '.', '', '%2F', '//',
';') and arbitrary text, so a route added later is covered without editing this file."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Match

from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.routes import HOT_TARGET as _HOT_TARGET
from shipyard.serving.routes import required_scope

# README, Security: "Health, readiness, /metrics, /, the docs (with their scripts under
# /docs/assets/) and the web UI's page and files under /ui/ ... stay open."
OPEN = {
    "/ui",
    "/ui/{rest:path}",
    "/ui/assets",  # the mounted folder of the UI's files
    "/ui/assets/vendor/plotly.min.js",
    "/",
    "/docs/assets",  # the mounted folder of the docs' scripts
    "/health/live",
    "/health/ready",
    "/v2/health/live",
    "/v2/health/ready",
    "/metrics",
    "/docs",
    "/docs/oauth2-redirect",
    "/openapi.json",
    "/redoc",
    "/v2",
    "/health",  # as MLflow clients probe them
    "/version",
}
# MLflow's searches are POSTs that only read (README, MLflow clients)
READ_POSTS = re.compile(
    r"^/(?:ajax-)?api/2\.0/mlflow/(?:runs/search|experiments/search|logged-models/search"
    r"|registered-models/get-latest-versions)/?$"
)
HOT = {"/endpoints/{name}/predict", "/v2/models/{name}/infer"}


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    home = tmp_path_factory.mktemp("routes")
    app = create_server_app(Settings(home=home, db_url=f"sqlite:///{home / 'm.db'}"))
    return [r for r in app.routes if hasattr(r, "path")]


def _words(routes: list[Any]) -> list[str]:
    words = {w for r in routes for w in r.path.split("/") if w and not w.startswith("{")}
    return sorted(words | {"..", ".", "", "%2F", "churn", "a;b", "HEALTH", "predict/"})


def _route(routes: list[Any], method: str, path: str) -> Any:
    scope = {"type": "http", "path": path, "method": method, "root_path": ""}
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
    return None


def _paths(routes: list[Any]) -> st.SearchStrategy[str]:
    segment = st.one_of(st.sampled_from(_words(routes)), st.text(min_size=1, max_size=12))
    return st.lists(segment, min_size=1, max_size=6).map(lambda parts: "/" + "/".join(parts))


METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])


def test_every_route_the_app_runs_needs_the_scope_its_kind_needs(routes: list[Any]) -> None:
    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(method=METHODS, path=_paths(routes))
    def check(method: str, path: str) -> None:
        route = _route(routes, method, path)
        need = required_scope(method, path)
        if route is None:
            return
        if route.path in OPEN:
            assert need is None, (method, path)
            return
        assert need is not None, f"{method} {path} runs {route.path} without credentials"
        if need == "predict":  # the narrowest scope reaches only the prediction routes
            assert route.path in {
                "/endpoints/{name}/predict",
                "/endpoints/{name}/feedback",
                "/v2/models/{name}/infer",
                "/v2/models/{name}/versions/{version}/infer",
            }, (method, path, route.path)
        if method not in ("GET", "HEAD") and need == "read" and not READ_POSTS.match(path):
            raise AssertionError(f"{method} {path} needs only read")

    check()


def test_the_fast_path_takes_exactly_the_hot_routes(routes: list[Any]) -> None:
    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(path=_paths(routes))
    def check(path: str) -> None:
        raw = path.encode("utf-8", "surrogateescape")
        fast = _HOT_TARGET.match(raw)
        route = _route(routes, "POST", path)
        if fast is not None:
            assert route is not None and route.path in HOT, path
            name = (fast.group(1) or fast.group(2)).decode()
            assert (
                route.matches({"type": "http", "path": path, "method": "POST"})[1]["path_params"][
                    "name"
                ]
                == name
            )
        elif route is not None and route.path in HOT:
            # the ASGI way: only targets the fast path must not take raw (to be decoded)
            assert (
                any(c in path for c in "%?#")
                or not path.isascii()
                or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in path)
            ), path

    check()


def test_the_route_table_is_what_this_file_knows(routes: list[Any]) -> None:
    """A new open or hot route must be added here on purpose."""
    paths = {r.path for r in routes}
    assert paths >= OPEN and paths >= HOT
