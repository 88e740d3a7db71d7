"""The one route table: every route's pattern and scope, and the auth middleware, the
transport and the ASGI app all reading it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from shipyard.serving import routes
from shipyard.serving.routes import HOT_PATH, HOT_TARGET, ROUTES, hot_route, required_scope


def filled(path: str) -> str:
    return path.replace("{name}", "churn").replace("{version}", "3")


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_route_needs_the_scope_the_table_gives_it(route: routes.Route) -> None:
    assert required_scope(route.method, filled(route.path)) == route.scope


def test_the_hot_routes_are_predict_and_infer_with_the_predict_scope() -> None:
    assert [(r.kind, r.method, r.path, r.scope) for r in routes.HOT] == [
        ("predict", "POST", "/endpoints/{name}/predict", "predict"),
        ("infer", "POST", "/v2/models/{name}/infer", "predict"),
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/endpoints/churn/predict", ("predict", "churn")),
        ("/v2/models/churn/infer", ("infer", "churn")),
        ("/endpoints/a.b-c/predict", ("predict", "a.b-c")),
        ("/endpoints/churn/feedback", None),
        ("/v2/models/churn/versions/3/infer", None),
        ("/endpoints/churn/predict/x", None),
        ("/endpoints//predict", None),
        ("/api/endpoints/churn/predict", None),
    ],
)
def test_hot_patterns_on_a_path_and_on_a_raw_target(
    path: str, expected: tuple[str, str] | None
) -> None:
    match = HOT_PATH.match(path)
    target = HOT_TARGET.match(path.encode())
    assert (hot_route(match) if match else None) == expected
    assert (hot_route(target) if target else None) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"/endpoints/ch%75rn/predict",
        b"/endpoints/churn/predict?x=1",
        b"/endpoints/\xc3\xa9/predict",
    ],
)
def test_a_raw_target_to_decode_is_not_hot(raw: bytes) -> None:
    assert HOT_TARGET.match(raw) is None  # the ASGI way decodes it, to the same handler


def test_scopes_of_other_routes() -> None:
    assert required_scope("GET", "/health/anything") is None
    assert required_scope("GET", "/docs") is None
    assert required_scope("GET", "/api/runs") == "read"
    assert required_scope("POST", "/api/runs") == "admin"
    assert required_scope("DELETE", "/endpoints/churn/predict") == "admin"


def test_auth_and_transport_read_the_table() -> None:
    from shipyard.serving import auth, uvicorn_fence

    assert auth.required_scope is routes.required_scope
    assert uvicorn_fence.HOT_TARGET is routes.HOT_TARGET


def test_the_asgi_app_registers_every_route_of_the_table() -> None:
    from shipyard.serving.asgi import DataPlaneRoutes

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    DataPlaneRoutes(None).mount(app)  # type: ignore[arg-type]
    registered = [(m, r.path) for r in app.routes for m in getattr(r, "methods", ())]
    assert sorted(registered) == sorted((r.method, r.path) for r in ROUTES)
