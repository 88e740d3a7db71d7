"""KServe: one InferenceService (serving.kserve.io/v1beta1) whose predictor is a custom
container running the same image and `shipyard serve` arguments as the k8s target.

Why a custom container rather than the model-format route (`predictor.model` with
`modelFormat`, `protocolVersion: v2` and a `storageUri`): KServe's runtimes load a framework's
own files (a joblib, a SavedModel) from storage, and none of them loads a shipyard bundle,
checks its digest or serves its signature; the route would need a ServingRuntime of shipyard's
own registered in the cluster. shipyard's server speaks the Open Inference (V2) protocol
itself: `/v2/models/<name>/infer` and the ready route the probes use, so the container is
what KServe users get from a V2 custom predictor. (`protocolVersion` is a field of the model
route only; the CRD has no place for it on a container.)

The readiness probe is the model's V2 ready route, and a startup probe guards the liveness
probe while the model loads, so no request reaches a replica before its model is loaded
(kserve#3113). In Serverless (Knative) mode startupProbe needs Knative Serving 1.15 or later
(knative/serving#15309): `--set startup_probe=false` leaves it out for an older one.

An endpoint in a canary renders its candidate with `spec.predictor.canaryTrafficPercent` at
the policy's current weight: Knative then sends that share to the latest revision and the rest
to the previous ready one (the stable version applied before). In RawDeployment (Standard)
mode KServe ignores canaryTrafficPercent without an error or a status (kserve#5335, #4074),
on every version through 0.20; 0.20's `spec.canary` for Standard mode (kserve#5672) requires
a predictor with a storageUri or model, which a custom container is not. So raw mode with a
traffic split is refused: use Serverless, or the argo target.
"""

from __future__ import annotations

import re
from typing import Any

from shipyard.deploy.facts import VersionFacts
from shipyard.deploy.manifests import (
    POD_SETTINGS,
    UID,
    container,
    dump,
    grace_seconds,
    header_of,
    labels,
)
from shipyard.deploy.targets import Context
from shipyard.errors import InvalidArgumentError

SETTINGS = POD_SETTINGS | {
    "deployment_mode": "Serverless (Knative) or RawDeployment (Standard); default Serverless",
    "kserve_version": "the KServe release the cluster runs, e.g. 0.15 (default 0.15): from "
    "0.16 the modes are written Knative and Standard",
    "startup_probe": "true or false: Knative Serving before 1.15 refuses startupProbe "
    "(default true)",
}
_MODES = {"serverless": "Serverless", "knative": "Serverless"}
_MODES |= {"rawdeployment": "RawDeployment", "standard": "RawDeployment", "raw": "RawDeployment"}
# the names KServe 0.16 gave the modes (the old ones are deprecated aliases)
_RENAMED = {"Serverless": "Knative", "RawDeployment": "Standard"}


def render(context: Context) -> dict[str, str | bytes]:
    mode = _mode(context)
    version = _kserve_version(context)
    serving, percent = _traffic(context)
    if percent is not None and mode == "RawDeployment":
        raise InvalidArgumentError(
            f"canaryTrafficPercent ({percent}) is silently ignored by KServe in "
            f"RawDeployment mode (kserve#5335; KServe {version[0]}.{version[1]} included): "
            "every request would reach the new version at once. Render with --set "
            "deployment_mode=Serverless, or use --target argo for a canary on plain "
            "Deployments",
            field="canaryTrafficPercent",
        )
    annotation = _RENAMED[mode] if version >= (0, 16) else mode
    doc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": context.facts.app,
            "namespace": context.options.namespace,
            "labels": labels(context),
            "annotations": {
                "serving.kserve.io/deploymentMode": annotation,
                "shipyard.dev/model-uri": serving.uri,
                "shipyard.dev/model-digest": serving.digest,
            },
        },
        "spec": {"predictor": _predictor(context, serving, mode, percent)},
    }
    note = f"the predictor serves {serving.uri}"
    if percent is not None:
        note += f", {percent}% of requests (the previous revision answers the rest)"
    return {"inferenceservice.yaml": dump([doc], header=header_of(context, note))}


def _predictor(
    context: Context, version: VersionFacts, mode: str, percent: int | None
) -> dict[str, Any]:
    options = context.options
    c = container(context, version)
    c["name"] = "kserve-container"
    # non-root on the container: Knative takes a pod securityContext only behind a flag
    c["securityContext"] |= {"runAsNonRoot": True, "runAsUser": UID}
    if mode == "Serverless":  # Knative takes one port, named http1 (or h2c)
        c["ports"] = [{"name": "http1", "containerPort": options.port, "protocol": "TCP"}]
    # the probes name the port by number: the schema requires one, and Knative accepts only
    # the container's own
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        c[probe]["httpGet"]["port"] = options.port
    if not _flag(context, "startup_probe"):
        del c["startupProbe"]
    predictor: dict[str, Any] = {
        "minReplicas": options.replicas,
        "maxReplicas": options.max_replicas,
    }
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    if mode == "RawDeployment":  # Knative sets the grace period from its own timeouts
        predictor["terminationGracePeriodSeconds"] = grace_seconds(context)
    predictor["automountServiceAccountToken"] = False
    predictor["containers"] = [c]
    predictor["volumes"] = [
        {"name": "shipyard-home", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    return predictor


def _traffic(context: Context) -> tuple[VersionFacts, int | None]:
    """The version the predictor serves and the share of the latest revision, if split."""
    endpoint = context.facts.endpoint
    if endpoint is None or endpoint.candidate is None:
        return context.facts.model, None
    config = endpoint.config
    if endpoint.policy == "canary":
        weight = float(config["weight"])
    elif endpoint.policy == "bluegreen":
        weight = 100.0 if config.get("switched") else 0.0
    else:
        what = "an A/B test by caller key" if endpoint.policy == "ab" else "a shadow"
        raise InvalidArgumentError(
            f"endpoint {endpoint.name} is in {what}, which an InferenceService's "
            "canaryTrafficPercent (a random share of requests) cannot express; render it "
            "when the test has ended",
            field="policy",
        )
    if not weight.is_integer():
        raise InvalidArgumentError(
            f"canaryTrafficPercent is a whole percent; the canary of {endpoint.name} is at "
            f"{weight:g}%: render it at a whole-number step",
            field="canaryTrafficPercent",
        )
    return endpoint.candidate, int(weight)


def _mode(context: Context) -> str:
    raw = context.options.setting("deployment_mode", "Serverless")
    mode = _MODES.get(raw.lower())
    if mode is None:
        raise InvalidArgumentError(
            f"--set deployment_mode={raw}: give Serverless or RawDeployment",
            field="deployment_mode",
        )
    return mode


def _kserve_version(context: Context) -> tuple[int, int]:
    raw = context.options.setting("kserve_version", "0.15")
    found = re.fullmatch(r"v?(\d+)\.(\d+)(\.\d+)?(-[0-9A-Za-z.]+)?", raw)
    if found is None:
        raise InvalidArgumentError(
            f"--set kserve_version={raw}: give a KServe release like 0.15 or v0.16.0",
            field="kserve_version",
        )
    return int(found.group(1)), int(found.group(2))


def _flag(context: Context, key: str) -> bool:
    raw = context.options.setting(key, "true").lower()
    if raw not in ("true", "false"):
        raise InvalidArgumentError(f"--set {key}={raw}: give true or false", field=key)
    return raw == "true"
