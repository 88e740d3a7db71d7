"""Control-plane REST routes under /api: runs, models, aliases, audit, endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from shipyard.serving.app import json_response
from shipyard.serving.auth import visible_endpoints
from shipyard.stores.records import MAX_VERSION

if TYPE_CHECKING:
    from shipyard.registry import Registry
    from shipyard.stores import Stores


# a version number in a path: one rule on SQLite and PostgreSQL (a 422 naming `version`)
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION, description="a model version number")]


class AliasBody(BaseModel):
    version: int = Field(ge=1, le=MAX_VERSION, description="the version the alias points at")
    reason: str | None = Field(default=None, description="why, for the audit log")
    override_gates: str | None = Field(
        default=None, description="proceed despite failed quality gates: the reason (audited)"
    )


class ApprovalBody(BaseModel):
    state: str = Field(pattern="^(approved|rejected)$")
    reviewer: str = Field(min_length=1)
    comment: str = ""


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
    thresholds: dict[str, float] | None = None


class AbBody(RolloutBody):
    split: float = Field(default=50.0, gt=0, lt=100)
    min_samples: int = Field(default=1000, ge=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    higher_is_better: bool = True


class ShadowBody(RolloutBody):
    sample: float = Field(default=1.0, gt=0, le=1)
    min_requests: int = Field(default=200, ge=1)
    min_agreement: float = Field(default=0.95, ge=0, le=1)
    thresholds: dict[str, float] | None = None


class BlueGreenBody(RolloutBody):
    keep_seconds: float = Field(default=600.0, ge=0)


class GatesBody(BaseModel):
    gates: list[dict[str, Any]] = Field(
        description='e.g. [{"kind": "metric", "metric": "roc_auc", "max_drop": 0.01}]'
    )


class ReasonBody(BaseModel):
    reason: str | None = None


class EndpointBody(BaseModel):
    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    model_uri: str = Field(min_length=1, description="e.g. models:/churn@champion")
    reason: str | None = None
    replace: bool = False
    require_approval: bool = False
    override_gates: str | None = Field(
        default=None, description="proceed despite failed quality gates: the reason (audited)"
    )


class FeaturePushBody(BaseModel):
    rows: list[dict[str, Any]] = Field(
        min_length=1, max_length=10_000, description="join keys, features, optional timestamp"
    )
    to: str = Field(default="online", pattern="^(online|offline|online_and_offline)$")


class FeatureLookupBody(BaseModel):
    features: list[str] | str = Field(description="a service name or view:feature references")
    entities: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


def mount_api(app: FastAPI, stores: Stores, registry: Registry) -> None:
    runs = stores.metadata.runs

    @app.get("/api/experiments", tags=["runs"])
    def list_experiments() -> Response:
        return json_response({"experiments": runs.list_experiments()})

    @app.get("/api/runs", tags=["runs"])
    def search(
        filter: str | None = Query(None, description="e.g. metrics.auc > 0.9"),
        order_by: list[str] | None = Query(None, description="e.g. metrics.auc DESC"),
        experiment: list[str] | None = Query(None),
        limit: int = Query(100, ge=1, le=10000),
    ) -> Response:
        from shipyard.tracking.search import parse_filter, parse_order_by

        found = runs.search_runs(
            experiments=experiment,
            clauses=parse_filter(filter),
            order_by=parse_order_by(order_by),
            limit=limit,
        )
        return json_response({"runs": [r.to_dict() for r in found]})

    @app.get("/api/runs/{run_id}", tags=["runs"])
    def get_run(run_id: str) -> Response:
        return json_response(runs.get_run(run_id).to_dict())

    @app.get("/api/runs/{run_id}/metrics/{key}", tags=["runs"])
    def metric_history(run_id: str, key: str) -> Response:
        run = runs.get_run(run_id)
        points = runs.metric_history(run.id, key)
        return json_response(
            {
                "run_id": run.id,
                "key": key,
                "points": [
                    {"value": p.value, "step": p.step, "timestamp": p.timestamp} for p in points
                ],
            }
        )

    @app.get("/api/models", tags=["models"])
    def list_models() -> Response:
        return json_response({"models": [m.to_dict() for m in registry.list_models()]})

    @app.get("/api/models/{name}", tags=["models"])
    def get_model(name: str) -> Response:
        doc: dict[str, Any] = registry.get_model(name).to_dict()
        doc["versions"] = [v.to_dict() for v in registry.list_versions(name)]
        return json_response(doc)

    @app.get("/api/models/{name}/versions/{version}", tags=["models"])
    def get_version(name: str, version: VersionPath) -> Response:
        return json_response(stores.metadata.models.get_version(name, version).to_dict())

    @app.post("/api/models/{name}/versions/{version}/approval", tags=["models"])
    def set_approval(name: str, version: VersionPath, body: ApprovalBody) -> Response:
        if body.state == "approved":
            mv = registry.approve(name, version, reviewer=body.reviewer, comment=body.comment)
        else:
            mv = registry.reject(name, version, reviewer=body.reviewer, comment=body.comment)
        return json_response(mv.to_dict())

    @app.get("/api/models/{name}/gates", tags=["gates"])
    def get_gates(name: str) -> Response:
        return json_response({"name": name, "gates": registry.gates(name)})

    @app.put("/api/models/{name}/gates", tags=["gates"])
    def put_gates(name: str, body: GatesBody) -> Response:
        from shipyard.pipelines.gates import from_dict, to_dict

        docs = [to_dict(from_dict(g)) for g in body.gates]  # validated before anything is stored
        registry.set_gates(name, docs)
        return json_response({"name": name, "gates": docs})

    @app.get("/api/models/{name}/versions/{version}/gate-report", tags=["gates"])
    def get_gate_report(name: str, version: VersionPath) -> Response:
        from shipyard.errors import NotFoundError

        record = registry.gate_report(name, version)
        if record is None:
            raise NotFoundError(
                f"{name} version {version} has no gate report; run `shipyard gate check`",
                kind="gate_report",
                name=f"{name}/{version}",
            )
        return json_response(record.to_dict())

    @app.put("/api/models/{name}/aliases/{alias}", tags=["models"])
    def set_alias(name: str, alias: str, body: AliasBody) -> Response:
        registry.set_alias(
            name, alias, body.version, reason=body.reason, override_gates=body.override_gates
        )
        return json_response({"name": name, "alias": alias, "version": body.version})

    @app.delete("/api/models/{name}/aliases/{alias}", tags=["models"])
    def delete_alias(name: str, alias: str, reason: str | None = None) -> Response:
        registry.delete_alias(name, alias, reason=reason)
        return json_response({"name": name, "alias": alias, "deleted": True})

    @app.get("/api/models/{name}/audit", tags=["models"])
    def model_audit(name: str, limit: int = Query(100, ge=1, le=10000)) -> Response:
        return json_response({"events": [e.to_dict() for e in registry.audit(name, limit)]})

    @app.get("/api/audit", tags=["audit"])
    def audit(limit: int = Query(100, ge=1, le=10000)) -> Response:
        return json_response(
            {"events": [e.to_dict() for e in stores.metadata.audit.list(limit=limit)]}
        )

    @app.get("/api/monitoring/{name}", tags=["monitoring"])
    def monitoring(
        name: str, evaluate: bool = Query(False, description="evaluate now")
    ) -> Response:
        """The latest evaluation of an endpoint's live window (drift, quality, accuracy)."""
        stores.metadata.endpoints.get(name)
        monitor = app.state.monitor
        if evaluate or name not in monitor.latest:
            monitor.evaluate_all([name])
        return json_response(monitor.latest[name].to_dict())

    from shipyard.policy import policy_of
    from shipyard.rollout import Deployments

    deployments = Deployments(stores)

    @app.get("/api/deployments", tags=["deployments"])
    def list_deployments(request: Request) -> Response:
        """Every endpoint's policy; for a caller limited to some endpoints, those."""
        visible = visible_endpoints(request.scope)
        return json_response(
            {
                "deployments": [
                    {
                        "endpoint": e.name,
                        "policy": e.policy,
                        "model_uri": e.model_uri,
                        "candidate": getattr(policy_of(e), "candidate_uri", None),
                    }
                    for e in stores.metadata.endpoints.list()
                    if visible is None or e.name in visible
                ]
            }
        )

    @app.get("/api/deployments/{name}", tags=["deployments"])
    def deployment_status(name: str) -> Response:
        from shipyard.rollout.controller import status

        return json_response(status(app.state.settings, stores, name))

    @app.get("/api/deployments/{name}/history", tags=["deployments"])
    def deployment_history(name: str, limit: int = Query(100, ge=1, le=10000)) -> Response:
        return json_response({"events": [e.to_dict() for e in deployments.history(name, limit)]})

    @app.post("/api/deployments/{name}/canary", tags=["deployments"])
    def start_canary(name: str, body: CanaryBody, request: Request) -> Response:
        if body.auto:
            _may_move_alias(request, stores, name)
        record = deployments.canary(
            name,
            body.model,
            steps=body.steps,
            min_requests=body.min_requests,
            min_seconds=body.min_seconds,
            auto=body.auto,
            thresholds=body.thresholds,
            reason=body.reason,
            override_gates=body.override_gates,
        )
        return json_response(record.to_dict())

    @app.post("/api/deployments/{name}/ab", tags=["deployments"])
    def start_ab(name: str, body: AbBody, request: Request) -> Response:
        if body.auto:
            _may_move_alias(request, stores, name)
        record = deployments.ab(
            name,
            body.model,
            split=body.split,
            min_samples=body.min_samples,
            alpha=body.alpha,
            higher_is_better=body.higher_is_better,
            auto=body.auto,
            reason=body.reason,
            override_gates=body.override_gates,
        )
        return json_response(record.to_dict())

    @app.post("/api/deployments/{name}/shadow", tags=["deployments"])
    def start_shadow(name: str, body: ShadowBody, request: Request) -> Response:
        if body.auto:
            _may_move_alias(request, stores, name)
        record = deployments.shadow(
            name,
            body.model,
            sample=body.sample,
            min_requests=body.min_requests,
            min_agreement=body.min_agreement,
            auto=body.auto,
            thresholds=body.thresholds,
            reason=body.reason,
            override_gates=body.override_gates,
        )
        return json_response(record.to_dict())

    @app.post("/api/deployments/{name}/bluegreen", tags=["deployments"])
    def start_bluegreen(name: str, body: BlueGreenBody, request: Request) -> Response:
        if body.auto:
            _may_move_alias(request, stores, name)
        record = deployments.bluegreen(
            name,
            body.model,
            keep_seconds=body.keep_seconds,
            auto=body.auto,
            reason=body.reason,
            override_gates=body.override_gates,
        )
        return json_response(record.to_dict())

    @app.post("/api/deployments/{name}/promote", tags=["deployments"])
    def promote(name: str, body: ReasonBody, request: Request) -> Response:
        _may_move_alias(request, stores, name)
        return json_response(deployments.promote(name, reason=body.reason).to_dict())

    @app.post("/api/deployments/{name}/rollback", tags=["deployments"])
    def rollback(name: str, body: ReasonBody) -> Response:
        return json_response(deployments.rollback(name, reason=body.reason).to_dict())

    @app.post("/api/deployments/{name}/step", tags=["deployments"])
    def step(name: str, body: ReasonBody, request: Request) -> Response:
        _may_move_alias(request, stores, name)
        return json_response(deployments.advance(name, reason=body.reason).to_dict())

    @app.post("/api/deployments/{name}/switch", tags=["deployments"])
    def switch(name: str, body: ReasonBody, request: Request) -> Response:
        _may_move_alias(request, stores, name)
        return json_response(deployments.switch(name, reason=body.reason).to_dict())

    @app.get("/api/endpoints", tags=["endpoints"])
    def list_endpoints(request: Request) -> Response:
        """Every stored endpoint; for a caller limited to some endpoints, those."""
        visible = visible_endpoints(request.scope)
        table = app.state.table
        served = {s.endpoint: s.describe() for s in table.all()}
        return json_response(
            {
                "endpoints": [
                    {**e.to_dict(), "serving": served.get(e.name)}
                    for e in stores.metadata.endpoints.list()
                    if visible is None or e.name in visible
                ]
            }
        )

    @app.post("/api/endpoints", tags=["endpoints"], status_code=201)
    def create_endpoint(body: EndpointBody) -> Response:
        record = deployments.create(
            body.name,
            body.model_uri,
            require_approval=body.require_approval,
            replace=body.replace,
            reason=body.reason,
            override_gates=body.override_gates,
        )
        return json_response(record.to_dict(), 201)

    @app.get("/api/endpoints/{name}", tags=["endpoints"])
    def get_endpoint(name: str) -> Response:
        record = stores.metadata.endpoints.get(name)
        table = app.state.table
        serving = table.get(name).describe() if name in table.names() else None
        return json_response({**record.to_dict(), "serving": serving})

    @app.delete("/api/endpoints/{name}", tags=["endpoints"])
    def delete_endpoint(name: str, reason: str | None = None) -> Response:
        stores.metadata.endpoints.delete(name, actor=stores.actor, reason=reason)
        return json_response({"name": name, "deleted": True})

    @app.delete("/api/keys/{key_id}", tags=["keys"])
    def revoke_key(key_id: str, reason: str | None = None) -> Response:
        """Revoke an API key: refused from now on by this server, by other replicas within
        SHIPYARD_AUTH_CACHE_SECONDS."""
        keys = stores.metadata.keys
        keys.revoke(key_id, actor=stores.actor, reason=reason)
        return json_response({"id": key_id, "revoked": True})

    mount_features(app, stores)


def _may_move_alias(request: Request, stores: Stores, name: str) -> None:
    """An endpoint-limited caller may not move a model's alias (another endpoint may follow
    it), so it may not promote — or let the controller promote — on an endpoint that follows
    one; a pinned endpoint is its own."""
    from shipyard.errors import ForbiddenError
    from shipyard.registry import parse_model_uri

    limited = visible_endpoints(request.scope)
    if limited is None:
        return
    ref = parse_model_uri(stores.metadata.endpoints.get(name).model_uri)
    if ref.alias is not None:
        raise ForbiddenError(
            f"endpoint '{name}' follows {ref.name}@{ref.alias}, and promoting moves that alias, "
            "which other endpoints may follow: a key limited to endpoints cannot promote here "
            "(or start an --auto rollout); ask an unlimited admin, or pin the endpoint to a "
            "version"
        )


def mount_features(app: FastAPI, stores: Stores) -> None:
    """/api/features: definitions, push of fresh values, online lookups."""
    from shipyard.features import FeatureStore

    holder: dict[str, FeatureStore] = {}

    def feature_store() -> FeatureStore:
        if "store" not in holder:
            holder["store"] = FeatureStore(app.state.settings, stores=stores)
        return holder["store"]

    @app.get("/api/features", tags=["features"])
    def list_features(kind: str | None = None) -> Response:
        return json_response(
            {"definitions": [r.to_dict() for r in feature_store().list_definitions(kind)]}
        )

    @app.post("/api/features/online", tags=["features"])
    def online_features(body: FeatureLookupBody) -> Response:
        return json_response(feature_store().get_online_features(body.features, body.entities))

    @app.post("/api/features/{view}/push", tags=["features"])
    def push_features(view: str, body: FeaturePushBody) -> Response:
        written = feature_store().push(view, body.rows, to=body.to)
        return json_response({"view": view, "rows": len(body.rows), "written": written})
