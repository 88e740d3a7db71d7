"""The authorization matrix: every route of `shipyard server` by every kind of caller, over a
real socket, each answer as the README's Security section documents it.

The rows come from the app's route table, so a new route is in the matrix the day it is added;
one whose path needs a value this file does not know fails until someone says what to send.
The expectations are written here from the documentation, not asked of the code under test.
The two hot routes (predict, infer) are also asked with a query string, which sends them the
ASGI way instead of the server's direct path: both ways must answer alike.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import httpx
import jwt
from pydantic import SecretStr
from starlette.routing import Mount, Route

from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from shipyard.stores import open_stores
from tests.integration import test_auth as _auth

model = _auth.model  # the fixture: endpoints churn and other, on one model

SECRET = "s3cret-for-tests-only-0123456789abcdef"
TARGET, ELSEWHERE = "churn", "other"  # every route is asked about `churn`
# what each path parameter is filled with (a route with another one fails: add it here)
VALUES = {
    "name": TARGET,  # the endpoint, and the model it serves
    "version": "1",
    "alias": "champion",
    "run_id": "0" * 32,
    "key": "auc",
    "view": "nope",
    "key_id": "00000000",  # no such key: the admin's own stays valid
    "file": "swagger-ui.css",  # the docs' assets (a mounted folder)
    "asset": "app.js",  # the web UI's files (a mounted folder)
    "path": "report.html",  # a run artifact (the run does not exist: 404 once let in)
    "rest": "runs",  # a page of the web UI (every one is the same shell)
}
# the mounted folders of files, and the path parameter naming one of them
MOUNTS = {"/docs/assets": "file", "/ui/assets": "asset"}
# documented as open: probes, scrapers and the API docs
OPEN = {
    "/health/live",
    "/health/ready",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{name}/ready",  # a kubelet's readiness probe sends no key
    "/v2",
    "/metrics",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/",
    "/docs/assets/{file}",
    "/ui",
    "/ui/{rest:path}",
    "/ui/assets/{asset}",
    "/ui/assets/vendor/plotly.min.js",
    "/health",  # MLflow clients' probes
    "/version",
}
# MLflow's REST API and its artifact proxy: reads need `read` (its searches are POSTs), other
# calls `track` (but alias moves and deletes: `admin`, tested in test_mlflow_registry_api.py)
MLFLOW = tuple(
    f"/{api}/{v}/{service}/"
    for api in ("api", "ajax-api")
    for v in ("2.0", "3.0")
    for service in ("mlflow", "mlflow-artifacts")
)
# the `predict` scope's routes (POST)
PREDICT = {
    "/endpoints/{name}/predict",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
}
# the `feedback` scope's route (POST): labels and outcomes decide rollouts, not for predict keys
FEEDBACK = {"/endpoints/{name}/feedback"}
HOT = {"/endpoints/{name}/predict", "/v2/models/{name}/infer"}
# the routes about one endpoint, and the listings an endpoint-limited caller sees filtered
ABOUT_ONE = (
    "/endpoints/{name}",
    "/v2/models/{name}",
    "/api/endpoints/{name}",
    "/api/deployments/{name}",
    "/api/monitoring/{name}",
)
# (and /api/whoami: an endpoint-limited caller may ask who it is)
LISTINGS = {"/api/endpoints", "/api/deployments", "/api/monitoring", "/api/whoami"}
# the callers: their scopes and endpoint limit; None for one that must not get in
CALLERS: dict[str, tuple[set[str], set[str] | None] | None] = {
    "no credential": None,
    "wrong key": None,
    "revoked key": None,
    "expired JWT": None,
    "alg none JWT": None,
    "read": ({"read"}, None),
    "predict": ({"predict"}, None),
    "feedback": ({"feedback"}, None),
    "track": ({"track"}, None),
    "predict, another endpoint": ({"predict"}, {ELSEWHERE}),
    "admin, another endpoint": ({"admin"}, {ELSEWHERE}),
    "admin": ({"admin"}, None),  # last: its calls change state (an endpoint deleted, …)
}


def expected(caller: str, method: str, template: str) -> int | str:
    """401, 403, or "handler" (whatever the route answers, never 401/403/5xx)."""
    if template in OPEN:
        return "handler"
    grant = CALLERS[caller]
    if grant is None:
        return 401
    scopes, limit = grant
    if method == "POST" and template in PREDICT:
        need = "predict"
    elif method == "POST" and template in FEEDBACK:
        need = "feedback"
    elif template.startswith(MLFLOW) and method not in ("GET", "HEAD"):
        need = "track"  # (VALUES' path is no search)
    elif method in ("GET", "HEAD"):
        need = "read"
    else:
        need = "admin"
    if "admin" not in scopes and need not in scopes:
        return 403
    if limit is not None and TARGET not in limit:
        listing = method in ("GET", "HEAD") and template in LISTINGS
        if template.startswith(ABOUT_ONE) or not listing:
            return 403
    return "handler"


def credentials(settings: Settings) -> dict[str, dict[str, str]]:
    keys = open_stores(settings).metadata.keys
    now = int(time.time())

    def key(name: str, scopes: list[str], endpoints: list[str] | None = None) -> str:
        return keys.create(name, scopes=scopes, endpoints=endpoints, actor="t")[1]

    revoked_record, revoked = keys.create("gone", scopes=["admin"], actor="t")
    keys.revoke(revoked_record.id, actor="t")
    claims = {"sub": "svc", "scope": "admin", "exp": now + 600}
    unsigned = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
        for part in ({"alg": "none", "typ": "JWT"}, claims)
    )
    tokens = {
        "no credential": None,
        "wrong key": "sy_00000000_not-a-real-secret",
        "revoked key": revoked,
        "expired JWT": jwt.encode({**claims, "exp": now - 60}, SECRET, "HS256"),
        "alg none JWT": unsigned + ".",
        "read": key("reader", ["read"]),
        "predict": key("predictor", ["predict"]),
        "feedback": key("labeller", ["feedback"]),
        "track": key("trainer", ["track"]),
        "predict, another endpoint": key("p-other", ["predict"], [ELSEWHERE]),
        "admin, another endpoint": jwt.encode({**claims, "endpoints": [ELSEWHERE]}, SECRET),
        "admin": key("root", ["admin"]),
    }
    return {c: ({"authorization": f"Bearer {t}"} if t else {}) for c, t in tokens.items()}


def route_table(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route the server has."""
    rows = []
    for route in app.routes:
        if isinstance(route, Mount):  # a folder of files: asked for one of them
            assert route.path in MOUNTS, f"{route!r}: say in MOUNTS what to ask for"
            file = f"{route.path}/{{{MOUNTS[route.path]}}}"
            rows += [("GET", file), ("HEAD", file)]
            continue
        assert isinstance(route, Route), f"{route!r}: the matrix knows only plain routes"
        for method in sorted(route.methods or ()):
            rows.append((method, route.path))
    return rows


def fill(template: str) -> str:
    path = template
    for name in Route(template, endpoint=lambda: None).param_convertors:
        assert name in VALUES, f"{template}: say in VALUES what to send for {{{name}}}"
        path = re.sub(rf"\{{{name}(:\w+)?\}}", VALUES[name], path)  # {key} and {key:path}
    assert "{" not in path, path
    return path


def test_every_route_answers_every_caller_as_documented(settings: Settings, model: Any) -> None:
    settings = settings.model_copy(
        update={"auth_required": True, "jwt_secret": SecretStr(SECRET), "auth_cache_seconds": 0}
    )
    app = create_server_app(settings, refresh_seconds=0.2)
    rows = route_table(app)
    assert ("POST", "/endpoints/{name}/predict") in rows and ("GET", "/api/audit") in rows
    headers = credentials(settings)
    srv = BackgroundServer(app).start()
    srv.wait_ready()
    wrong: list[str] = []
    asked = 0
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            for caller in CALLERS:  # the admin last: its calls change state
                for method, template in rows:
                    want = expected(caller, method, template)
                    path = fill(template)
                    ways = [path, path + "?via=asgi"] if template in HOT else [path]
                    for target in ways:
                        r = client.request(method, target, headers=headers[caller])
                        asked += 1
                        got = r.status_code
                        if want == "handler":
                            ok = got not in (401, 403) and got < 500
                        else:  # a HEAD answer has no body to read
                            ok = got == want and (
                                method == "HEAD"
                                or r.json()["type"].endswith(
                                    "UnauthorizedError" if want == 401 else "ForbiddenError"
                                )
                            )
                        if not ok:
                            wrong.append(f"{caller:26} {method:6} {target}: {got}, want {want}")
    finally:
        srv.stop()
    assert not wrong, f"{len(wrong)} of {asked} answers differ:\n" + "\n".join(wrong)
    assert asked >= len(rows) * len(CALLERS)
