"""/api/models and /api/audit: registered models, versions, approvals, gates, aliases."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from shipyard.registry import MAX_VERSION
from shipyard.server.plane import Plane
from shipyard.server.routes import Routes
from shipyard.serving.app import json_response

routes = Routes()

# a version number in a path: one rule on SQLite and PostgreSQL (a 422 naming `version`)
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION, description="a model version number")]
# text the registry stores: no control character but tab and newline (PostgreSQL refuses NUL);
# the same rule as `registry._check_text`, stated in the schema for clients and fuzzers
TEXT = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"
KeyPath = Annotated[
    str,
    Path(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$", description="a tag key"),
]


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


class DescriptionBody(BaseModel):
    description: str = Field(
        max_length=65536, pattern=TEXT, description="the new description ('' clears it)"
    )


class TagBody(BaseModel):
    value: str = Field(max_length=65536, pattern=TEXT, description="the tag's value")


class GatesBody(BaseModel):
    gates: list[dict[str, Any]] = Field(
        description='e.g. [{"kind": "metric", "metric": "roc_auc", "max_drop": 0.01}]'
    )


class OptimizeBody(BaseModel):
    """What `shipyard models optimize` takes over HTTP. Held-out, training and calibration
    rows are the datasets the version's run logged with `keep_rows=True` (the server reads no
    file a caller names)."""

    technique: Literal["quantize-dynamic", "quantize-static", "prune", "distill"] = Field(
        description="INT8 quantization of the ONNX model, fewer trees, or a small student"
    )
    target: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="the label column of the held-out rows (default: the one non-input column)",
    )
    tolerance: float = Field(
        default=0.005, ge=0, lt=1, description="prune: metric loss allowed vs the original"
    )
    amount: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="prune of a PyTorch MLP: share of hidden neurons removed (default: the "
        "largest within tolerance)",
    )
    finetune: bool = Field(
        default=True, description="prune of a PyTorch MLP: fine-tune on the original's outputs"
    )
    student: Literal["hgb", "mlp"] = Field(default="hgb", description="distill: the student")


@routes.get("/api/models", tags=["models"])
def list_models(
    plane: Plane,
    summary: bool = Query(
        False,
        description="also each model's latest version (`latest`) and how many of its versions "
        "are in each approval state (`approvals`)",
    ),
) -> Response:
    if summary:
        from shipyard.registry.overview import RegistryOverview

        return json_response({"models": RegistryOverview(plane.stores).models()})
    return json_response({"models": [m.to_dict() for m in plane.registry.list_models()]})


@routes.get("/api/models/{name}", tags=["models"])
def get_model(
    name: str,
    plane: Plane,
    summary: bool = Query(
        False, description="also each version's latest gate result (`gate`: passed, when)"
    ),
) -> Response:
    doc: dict[str, Any] = plane.registry.get_model(name).to_dict()
    if summary:
        from shipyard.registry.overview import RegistryOverview

        doc["versions"] = RegistryOverview(plane.stores).versions(name)
    else:
        doc["versions"] = [v.to_dict() for v in plane.registry.list_versions(name)]
    return json_response(doc)


@routes.get("/api/models/{name}/versions/{version}", tags=["models"])
def get_version(name: str, version: VersionPath, plane: Plane) -> Response:
    return json_response(plane.registry.get_version(name, version).to_dict())


@routes.post("/api/models/{name}/versions/{version}/approval", tags=["models"])
def set_approval(name: str, version: VersionPath, body: ApprovalBody, plane: Plane) -> Response:
    registry = plane.registry
    if body.state == "approved":
        mv = registry.approve(name, version, reviewer=body.reviewer, comment=body.comment)
    else:
        mv = registry.reject(name, version, reviewer=body.reviewer, comment=body.comment)
    return json_response(mv.to_dict())


@routes.post("/api/models/{name}/versions/{version}/optimize", tags=["models"], status_code=201)
def optimize_version(name: str, version: VersionPath, body: OptimizeBody, plane: Plane) -> Response:
    """Make a NEW version from this one (quantized, pruned or distilled), measured on held-out
    data and audited; the model's quality gates are checked on it (`gates` in the answer)."""
    from shipyard.optimize import Optimizer, Options

    options = Options(
        target=body.target,
        tolerance=body.tolerance,
        student=body.student,
        amount=body.amount,
        finetune=body.finetune,
    )
    result = Optimizer(plane.stores).optimize(f"models:/{name}/{version}", body.technique, options)
    return json_response(result.to_dict(), 201)


@routes.get("/api/models/{name}/gates", tags=["gates"])
def get_gates(name: str, plane: Plane) -> Response:
    return json_response({"name": name, "gates": plane.registry.gates(name)})


@routes.put("/api/models/{name}/gates", tags=["gates"])
def put_gates(name: str, body: GatesBody, plane: Plane) -> Response:
    from shipyard.pipelines.gates import from_dict, to_dict

    docs = [to_dict(from_dict(g)) for g in body.gates]  # validated before anything is stored
    plane.registry.set_gates(name, docs)
    return json_response({"name": name, "gates": docs})


@routes.get("/api/models/{name}/versions/{version}/gate-report", tags=["gates"])
def get_gate_report(name: str, version: VersionPath, plane: Plane) -> Response:
    from shipyard.errors import NotFoundError

    record = plane.registry.gate_report(name, version)
    if record is None:
        raise NotFoundError(
            f"{name} version {version} has no gate report; run `shipyard gate check`",
            kind="gate_report",
            name=f"{name}/{version}",
        )
    return json_response(record.to_dict())


@routes.get("/api/models/{name}/versions/{version}/gate-reports", tags=["gates"])
def list_gate_reports(name: str, version: VersionPath, plane: Plane) -> Response:
    """Every gate report of the version, newest first (`[]` when its gates never ran)."""
    from shipyard.registry.overview import RegistryOverview

    records = RegistryOverview(plane.stores).gate_reports(name, version)
    return json_response({"reports": [r.to_dict() for r in records]})


@routes.get("/api/models/{name}/versions/{version}/lineage", tags=["models"])
def version_lineage(name: str, version: VersionPath, plane: Plane) -> Response:
    """Datasets → run → this version → the endpoints serving it; the version it was optimized
    from (`parent`) and those optimized from it (`children`)."""
    from shipyard.registry.overview import RegistryOverview

    return json_response(RegistryOverview(plane.stores).lineage(name, version))


@routes.get("/api/models/{name}/versions/{version}/environment", tags=["models"])
def version_environment(name: str, version: VersionPath, plane: Plane) -> Response:
    """The lock of package versions the version needs, and how this server's differ
    (`differences`; `refuses`: loading here would need `ignore_env`)."""
    uri = f"models:/{name}/{version}"
    env = plane.registry.environment(uri)
    found = plane.registry.check_environment(uri, ignore_env=True, warn=False)
    differences = [
        {
            "package": d.package,
            "wanted": d.wanted,
            "installed": d.installed,
            "level": d.level,
            "framework": d.framework,
            "refuses": d.refuses,
        }
        for d in found
    ]
    return json_response({**env.to_dict(), "differences": differences})


@routes.put("/api/models/{name}/aliases/{alias}", tags=["models"])
def set_alias(name: str, alias: str, body: AliasBody, plane: Plane) -> Response:
    plane.registry.set_alias(
        name, alias, body.version, reason=body.reason, override_gates=body.override_gates
    )
    return json_response({"name": name, "alias": alias, "version": body.version})


@routes.delete("/api/models/{name}/aliases/{alias}", tags=["models"])
def delete_alias(name: str, alias: str, plane: Plane, reason: str | None = None) -> Response:
    plane.registry.delete_alias(name, alias, reason=reason)
    return json_response({"name": name, "alias": alias, "deleted": True})


@routes.get("/api/models/{name}/audit", tags=["models"])
def model_audit(name: str, plane: Plane, limit: int = Query(100, ge=1, le=10000)) -> Response:
    return json_response({"events": [e.to_dict() for e in plane.registry.audit(name, limit)]})


@routes.get("/api/audit", tags=["audit"])
def audit(plane: Plane, limit: int = Query(100, ge=1, le=10000)) -> Response:
    return json_response({"events": [e.to_dict() for e in plane.registry.audit(None, limit)]})


@routes.route("PATCH", "/api/models/{name}", tags=["models"])
def describe_model(name: str, body: DescriptionBody, plane: Plane) -> Response:
    plane.registry.set_description(name, body.description)
    return json_response(plane.registry.get_model(name).to_dict())


@routes.route("PATCH", "/api/models/{name}/versions/{version}", tags=["models"])
def describe_version(
    name: str, version: VersionPath, body: DescriptionBody, plane: Plane
) -> Response:
    plane.registry.set_description(name, body.description, version)
    return json_response(plane.registry.get_version(name, version).to_dict())


@routes.put("/api/models/{name}/tags/{key}", tags=["models"])
def set_model_tag(name: str, key: KeyPath, body: TagBody, plane: Plane) -> Response:
    plane.registry.set_model_tag(name, key, body.value)
    return json_response({"name": name, "key": key, "value": body.value})


@routes.delete("/api/models/{name}/tags/{key}", tags=["models"])
def delete_model_tag(name: str, key: KeyPath, plane: Plane) -> Response:
    plane.registry.delete_tag(name, key)
    return json_response({"name": name, "key": key, "deleted": True})


@routes.put("/api/models/{name}/versions/{version}/tags/{key}", tags=["models"])
def set_version_tag(
    name: str, version: VersionPath, key: KeyPath, body: TagBody, plane: Plane
) -> Response:
    plane.registry.set_version_tag(name, version, key, body.value)
    return json_response({"name": name, "version": version, "key": key, "value": body.value})


@routes.delete("/api/models/{name}/versions/{version}/tags/{key}", tags=["models"])
def delete_version_tag(name: str, version: VersionPath, key: KeyPath, plane: Plane) -> Response:
    plane.registry.delete_tag(name, key, version)
    return json_response({"name": name, "version": version, "key": key, "deleted": True})


@routes.delete("/api/models/{name}/versions/{version}", tags=["models"])
def delete_version(
    name: str, version: VersionPath, plane: Plane, reason: str | None = None
) -> Response:
    """Refused (409 naming them) while an alias or an endpoint uses the version."""
    plane.registry.delete(name, version, reason=reason)
    return json_response({"name": name, "version": version, "deleted": True})


@routes.delete("/api/models/{name}", tags=["models"])
def delete_model(name: str, plane: Plane, reason: str | None = None) -> Response:
    """Refused (409 naming them) while an alias or an endpoint uses one of its versions."""
    count = plane.registry.delete(name, reason=reason)
    return json_response({"name": name, "deleted": True, "versions": count})
