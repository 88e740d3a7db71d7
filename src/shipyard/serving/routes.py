"""The data plane's route table: every route's method, path template and the scope it needs,
in one place. The ASGI app registers its routes from it, the auth middleware reads the
scopes from it, and the transport and the ASGI fast path recognise the hot routes with
patterns built from it.

    match = HOT_PATH.match("/endpoints/churn/predict")
    hot_route(match)                       # -> ("predict", "churn")
    required_scope("POST", "/v2/models/churn/infer")    # -> "predict"

Hot routes (`hot=True`) are the two a model answers per request; the fast path answers them
without the router (the same `DataPlane` method the route calls).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Route:
    """One data-plane route. `kind` names the route function in `asgi.DataPlaneRoutes` that
    answers it (for the hot routes, also the `DataPlane` method the fast path calls)."""

    kind: str
    method: str
    path: str
    scope: str | None  # None: open (probes, scrapers)
    hot: bool = False


PREDICT: Final = Route("predict", "POST", "/endpoints/{name}/predict", "predict", hot=True)
INFER: Final = Route("infer", "POST", "/v2/models/{name}/infer", "predict", hot=True)
INFER_VERSION: Final = Route(
    "infer_version", "POST", "/v2/models/{name}/versions/{version}/infer", "predict"
)
# labels and outcomes decide rollouts and alerts: a key that may only predict must not send them
FEEDBACK: Final = Route("feedback", "POST", "/endpoints/{name}/feedback", "feedback")
LIVE: Final = (
    Route("live", "GET", "/health/live", None),
    Route("live", "GET", "/v2/health/live", None),
)
READY: Final = (
    Route("ready", "GET", "/health/ready", None),
    Route("ready", "GET", "/v2/health/ready", None),
)
SERVER_METADATA: Final = Route("server_metadata", "GET", "/v2", None)
MODEL_METADATA: Final = Route("model_metadata", "GET", "/v2/models/{name}", "read")
# open like the health routes (which name every endpoint and why one failed): a kubelet's
# readiness probe sends no key
MODEL_READY: Final = Route("model_ready", "GET", "/v2/models/{name}/ready", None)
METRICS: Final = Route("metrics", "GET", "/metrics", None)

ROUTES: Final = (
    PREDICT,
    INFER,
    INFER_VERSION,
    FEEDBACK,
    *LIVE,
    *READY,
    SERVER_METADATA,
    MODEL_METADATA,
    MODEL_READY,
    METRICS,
)
HOT: Final = tuple(r for r in ROUTES if r.hot)

# a path segment in the raw request target that needs no decoding
_RAW_SEGMENT: Final = r"[^/?%#\x00-\x20\x7f-\xff]+"


def _pattern(template: str, segment: str) -> str:
    """`template` as a regular expression, each `{param}` one path segment (`segment`)."""
    parts = re.split(r"\{[a-z_]+\}", template)
    return segment.join(re.escape(p) for p in parts)


def _hot_pattern(segment: str) -> str:
    """The hot routes as alternatives, each with one group (the endpoint's name), in `HOT`
    order: the number of the group that matched tells the route (`hot_route`)."""
    return "|".join(_pattern(r.path, f"({segment})") for r in HOT)


# a decoded ASGI path (`scope["path"]`)
HOT_PATH: Final = re.compile(f"^(?:{_hot_pattern('[^/]+')})$")
# the raw request target as it arrives: anything to decode (escapes, a query) is not matched
HOT_TARGET: Final = re.compile(f"(?:{_hot_pattern(_RAW_SEGMENT)})\\Z".encode("latin-1"))
HOT_KINDS: Final = tuple(r.kind for r in HOT)

# open: the home page `/`, the routes above without a scope (every path under /health/ and
# /v2/health/), the API documents and their assets (/docs/assets/…), the favicon, and
# /health and /version as MLflow clients probe them (compat.mlflow)
_OPEN: Final = re.compile(
    r"^/($|health/|v2/health/|metrics$|docs|openapi\.json$|redoc|v2$|favicon|ui(/|$)"
    r"|health$|version$|v2/models/[^/]+/ready$)"
)
# POST routes that need the `predict` or the `feedback` scope (with any other method, the
# scope is "read" for GET/HEAD and "admin" otherwise)
_POST_SCOPES: Final = tuple(
    (
        scope,
        re.compile(
            "^(?:" + "|".join(_pattern(r.path, "[^/]+") for r in ROUTES if r.scope == scope) + ")$"
        ),
    )
    for scope in ("predict", "feedback")
)


def hot_route(match: re.Match[str] | re.Match[bytes]) -> tuple[str, str]:
    """(kind, endpoint name) of a `HOT_PATH` or `HOT_TARGET` match."""
    index = match.lastindex or 1
    name = match.group(index)
    return HOT_KINDS[index - 1], name if isinstance(name, str) else name.decode("ascii")


# MLflow's REST API (compat.mlflow) and its artifact proxy: reads need "read" (its searches
# are POSTs that only read), tracking and registering need "track" (a training job's key needs
# no admin rights); moving or deleting an alias, deleting a model or a version and changing a
# stage need "admin", as shipyard's own registry routes do (an alias is what endpoints follow)
_MLFLOW: Final = re.compile(r"^/(?:ajax-)?api/[23]\.0/mlflow(?:-artifacts)?/")
_MLFLOW_READS: Final = re.compile(
    r"^/(?:ajax-)?api/[23]\.0/mlflow/(?:runs/search|experiments/search|logged-models/search"
    r"|registered-models/get-latest-versions)/?$"
)
_MLFLOW_ADMIN: Final = re.compile(
    r"^/(?:ajax-)?api/2\.0/mlflow/(?:registered-models/(?:alias|delete|rename)"
    r"|model-versions/(?:delete|transition-stage))/?$"
)


def is_mlflow(path: str) -> bool:
    """Whether `path` is MLflow's API (its refusals then also carry MLflow's error fields)."""
    return _MLFLOW.match(path) is not None


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs; None for open routes."""
    if _OPEN.match(path):
        return None
    if _MLFLOW.match(path):
        # the MLflow dispatcher answers "mlflow//registered-models/alias" as the route it
        # names: so is its scope found (else "//" would turn an admin route into a "track" one)
        path = re.sub("/{2,}", "/", path)
        if method in ("GET", "HEAD") or _MLFLOW_READS.match(path):
            return "read"
        return "admin" if _MLFLOW_ADMIN.match(path) else "track"
    if method == "POST":
        for scope, pattern in _POST_SCOPES:
            if pattern.match(path):
                return scope
    if method in ("GET", "HEAD"):
        return "read"
    return "admin"
