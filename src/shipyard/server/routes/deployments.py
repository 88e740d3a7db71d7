"""/api/deployments: an endpoint's rollout — canary, A/B, shadow, blue-green — and its
promotion, rollback and history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from shipyard.errors import StoreError
from shipyard.policy import policy_of
from shipyard.rollout import Deployments
from shipyard.server.plane import Plane
from shipyard.server.routes import Routes
from shipyard.serving.app import json_response
from shipyard.serving.auth import visible_endpoints

routes = Routes(tags=["deployments"])


class RolloutBody(BaseModel):
    model: str = Field(min_length=1, description="candidate, e.g. churn@challenger")
    auto: bool = Field(default=False, description="let the controller promote or roll back")
    reason: str | None = None
    override_gates: str | None = Field(
        default=None, description="proceed despite failed quality gates: the reason (audited)"
    )


class CanaryBody(RolloutBody):
    steps: list[Annotated[float, Field(gt=0, le=100)]] = Field(
        default=[5, 25, 50, 100], min_length=1, description="traffic weights, rising to 100"
    )
    min_requests: int = Field(default=100, ge=1)
    min_seconds: float = Field(default=30.0, ge=0)
    thresholds: dict[str, float | None] | None = Field(
        default=None,
        description="max_error_rate_delta, max_p99_ratio, p99_slack_ms, max_quality_drop, "
        "max_prediction_shift (null: a shift is only a warning), prediction_alpha",
    )


class AbBody(RolloutBody):
    split: float = Field(default=50.0, gt=0, lt=100)
    min_samples: int = Field(default=1000, ge=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    higher_is_better: bool = True
    outcome_source: Literal["outcome", "label"] = Field(
        default="outcome", description="the field of /feedback that holds the outcome"
    )


class ShadowBody(RolloutBody):
    sample: float = Field(default=1.0, gt=0, le=1)
    min_requests: int = Field(default=200, ge=1)
    min_seconds: float = Field(default=0.0, ge=0)
    min_agreement: float = Field(default=0.95, ge=0, le=1)
    agreement_rtol: float = Field(default=0.05, ge=0, description="numbers agree within")
    agreement_atol: float = Field(default=1e-8, ge=0, description="... plus this")
    thresholds: dict[str, float | None] | None = Field(
        default=None, description="the same thresholds as a canary's"
    )


class BlueGreenBody(RolloutBody):
    keep_seconds: float = Field(default=600.0, ge=0)


class ReasonBody(BaseModel):
    reason: str | None = None


@routes.get("/api/deployments")
def list_deployments(request: Request, plane: Plane) -> Response:
    """Every endpoint's policy; for a caller limited to some endpoints, those."""
    visible = visible_endpoints(request.scope)
    return json_response(
        {
            "deployments": [
                _listed(e) for e in plane.deployments.list() if visible is None or e.name in visible
            ]
        }
    )


@routes.get("/api/deployments/{name}")
def deployment_status(name: str, plane: Plane) -> Response:
    from shipyard.rollout.controller import status

    return json_response(status(plane.settings, plane.stores, name))


@routes.get("/api/deployments/{name}/history")
def deployment_history(
    name: str, plane: Plane, limit: int = Query(100, ge=1, le=10000)
) -> Response:
    events = plane.deployments.history(name, limit)
    return json_response({"events": [e.to_dict() for e in events]})


@routes.post("/api/deployments/{name}/canary")
def start_canary(name: str, body: CanaryBody, request: Request, plane: Plane) -> Response:
    return _start(plane.deployments.canary, name, body, request, plane)


@routes.post("/api/deployments/{name}/ab")
def start_ab(name: str, body: AbBody, request: Request, plane: Plane) -> Response:
    return _start(plane.deployments.ab, name, body, request, plane)


@routes.post("/api/deployments/{name}/shadow")
def start_shadow(name: str, body: ShadowBody, request: Request, plane: Plane) -> Response:
    return _start(plane.deployments.shadow, name, body, request, plane)


@routes.post("/api/deployments/{name}/bluegreen")
def start_bluegreen(name: str, body: BlueGreenBody, request: Request, plane: Plane) -> Response:
    return _start(plane.deployments.bluegreen, name, body, request, plane)


def _start(
    policy: Callable[..., Any],
    name: str,
    body: RolloutBody,
    request: Request,
    plane: Plane,
) -> Response:
    """Start a rollout policy: the body's fields are the policy's keyword arguments (an
    automatic rollout moves the alias, which an endpoint-limited caller may not do)."""
    if body.auto:
        may_move_alias(request, plane.deployments, name)
    record = policy(name, body.model, **body.model_dump(exclude={"model"}))
    return json_response(record.to_dict())


@routes.post("/api/deployments/{name}/promote")
def promote(name: str, body: ReasonBody, request: Request, plane: Plane) -> Response:
    may_move_alias(request, plane.deployments, name)
    return json_response(plane.deployments.promote(name, reason=body.reason).to_dict())


@routes.post("/api/deployments/{name}/rollback")
def rollback(name: str, body: ReasonBody, plane: Plane) -> Response:
    return json_response(plane.deployments.rollback(name, reason=body.reason).to_dict())


@routes.post("/api/deployments/{name}/step")
def step(name: str, body: ReasonBody, request: Request, plane: Plane) -> Response:
    may_move_alias(request, plane.deployments, name)
    return json_response(plane.deployments.advance(name, reason=body.reason).to_dict())


@routes.post("/api/deployments/{name}/switch")
def switch(name: str, body: ReasonBody, request: Request, plane: Plane) -> Response:
    may_move_alias(request, plane.deployments, name)
    return json_response(plane.deployments.switch(name, reason=body.reason).to_dict())


def may_move_alias(request: Request, deployments: Deployments, name: str) -> None:
    """An endpoint-limited caller may not move a model's alias (another endpoint may follow
    it), so it may not promote — or let the controller promote — on an endpoint that follows
    one; a pinned endpoint is its own."""
    from shipyard.errors import ForbiddenError
    from shipyard.registry import parse_model_uri

    limited = visible_endpoints(request.scope)
    if limited is None:
        return
    ref = parse_model_uri(deployments.get(name).model_uri)
    if ref.alias is not None:
        raise ForbiddenError(
            f"endpoint '{name}' follows {ref.name}@{ref.alias}, and promoting moves that alias, "
            "which other endpoints may follow: a key limited to endpoints cannot promote here "
            "(or start an --auto rollout); ask an unlimited admin, or pin the endpoint to a "
            "version"
        )


def _listed(e: Any) -> dict[str, Any]:
    """One endpoint of the list; a row that no longer validates is listed with its problem
    (it hides neither the others nor itself)."""
    doc: dict[str, Any] = {"endpoint": e.name, "policy": e.policy, "model_uri": e.model_uri}
    try:
        doc["candidate"] = getattr(policy_of(e), "candidate_uri", None)
    except StoreError as exc:
        doc["candidate"], doc["invalid"] = None, exc.message
    return doc
