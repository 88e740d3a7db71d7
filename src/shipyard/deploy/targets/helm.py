"""The helm target: a chart serving one model version with `shipyard serve`.

The templates (Deployment with startup, readiness and liveness probes, Service, HPA on CPU
and requests in flight, PodDisruptionBudget, ServiceMonitor behind `serviceMonitor.enabled`,
NetworkPolicy, NOTES.txt) are fixed Go-template files in `deploy/templates/helm/`; what the
model and the options decide goes into `values.yaml`, and `values.schema.json` (JSON Schema
draft-07, which Helm checks on lint, template, install and upgrade) refuses values of the
wrong type or shape: a negative replica count, an unknown key, a bad image reference, a CPU
or memory quantity Kubernetes would refuse. The container's arguments are built from the
values exactly as `Context.serve_args()` builds them, so `helm template` with the rendered
values gives the same command as the k8s target.

    shipyard deploy render models:/churn@champion -t helm -o deploy/chart
    helm lint --strict deploy/chart && helm upgrade --install churn deploy/chart
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from shipyard.deploy.manifests import SHUTDOWN_MARGIN, dump_yaml
from shipyard.deploy.options import CPU_QUANTITY, IMAGE_REFERENCE, MEMORY_QUANTITY
from shipyard.deploy.targets import BUNDLE_DIR, Context
from shipyard.errors import InvalidArgumentError

SETTINGS: dict[str, str] = {
    "stores_secret": "Secret with keys db_url and artifacts, for --model-source pull "
    "(default: <app>-stores)",
    "auth_secret": "Secret with key jwt_secret: callers send HS256 tokens signed with it "
    "(default: <app>-auth; without it every prediction is refused: 401)",
    "cpu_utilization": "the HPA's target average CPU utilization in percent (default 70)",
    "in_flight_target": "the HPA's target average of shipyard_requests_in_flight per pod "
    "(default 4; needs a custom-metrics adapter such as prometheus-adapter)",
    "scrape_interval": "the ServiceMonitor's scrape interval (default 15s)",
    "service_monitor": "true: values.yaml turns the ServiceMonitor on (needs the Prometheus "
    "Operator's CRD); default false",
    "chart_version": "the chart's SemVer version (default 0.1.0)",
}

# the chart's fixed files: package data path -> path in the chart
_FIXED = {
    "helmignore": ".helmignore",
    "templates/_helpers.tpl": "templates/_helpers.tpl",
    "templates/NOTES.txt": "templates/NOTES.txt",
    "templates/deployment.yaml": "templates/deployment.yaml",
    "templates/hpa.yaml": "templates/hpa.yaml",
    "templates/networkpolicy.yaml": "templates/networkpolicy.yaml",
    "templates/pdb.yaml": "templates/pdb.yaml",
    "templates/service.yaml": "templates/service.yaml",
    "templates/servicemonitor.yaml": "templates/servicemonitor.yaml",
}
_SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
_INTERVAL = "^[1-9][0-9]*(ms|s|m|h)$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def render(context: Context) -> dict[str, str | bytes]:
    """The chart's files: Chart.yaml, values.yaml, values.schema.json and the templates."""
    settings = _settings(context)
    values = chart_values(context, settings)
    folder = resources.files("shipyard.deploy").joinpath("templates", "helm")
    files: dict[str, str | bytes] = {
        "Chart.yaml": _chart_yaml(context, str(settings["chart_version"])),
        "values.yaml": _values_yaml(context, values),
        "values.schema.json": json.dumps(values_schema(), indent=2) + "\n",
    }
    for source, target in _FIXED.items():
        files[target] = folder.joinpath(*source.split("/")).read_text(encoding="utf-8")
    return files


def _settings(context: Context) -> dict[str, Any]:
    """The `--set` keys, each checked as values.schema.json would check its value."""
    given = context.options.settings
    service_monitor = given.get("service_monitor", "false").lower()
    if service_monitor not in ("true", "false"):
        raise InvalidArgumentError(
            f"--set service_monitor={given['service_monitor']}: give true or false",
            field="set",
        )
    checks = {
        "stores_secret": (f"{context.facts.app}-stores", _DNS_SUBDOMAIN, "a Secret's name"),
        "auth_secret": (f"{context.facts.app}-auth", _DNS_SUBDOMAIN, "a Secret's name"),
        "scrape_interval": ("15s", _INTERVAL, "a duration like 15s or 1m"),
        "chart_version": ("0.1.0", _SEMVER, "a SemVer version like 0.1.0 or 1.2.0-rc.1"),
    }
    out: dict[str, Any] = {"service_monitor": service_monitor == "true"}
    for key, (default, pattern, what) in checks.items():
        value = given.get(key, default)
        if not re.match(pattern, value):
            raise InvalidArgumentError(f"--set {key}={value} is not {what}", field="set")
        out[key] = value
    for key, fallback, top in (("cpu_utilization", 70, 100), ("in_flight_target", 4, 100_000)):
        text = given.get(key, str(fallback))
        if not text.isdigit() or not 1 <= int(text) <= top:
            raise InvalidArgumentError(
                f"--set {key}={text} is not a whole number from 1 to {top}", field="set"
            )
        out[key] = int(text)
    return out


def chart_values(context: Context, settings: dict[str, Any]) -> dict[str, Any]:
    """values.yaml as data: what the model's facts and the options decide."""
    options = context.options
    model = context.facts.model
    return {
        "image": context.image(),
        "imagePullPolicy": "IfNotPresent",
        "imagePullSecrets": [],
        "nameOverride": "",
        "fullnameOverride": "",
        "model": {
            "name": model.name,
            "version": model.version,
            "uri": model.uri,
            "digest": model.digest,
            "onnxDigest": model.onnx_digest or "",
            "endpoint": context.facts.app,
            "source": options.model_source,
            "bundleDir": BUNDLE_DIR,
            "trusted": model.needs_trust,
        },
        "server": {
            "port": options.port,
            "drainSeconds": yaml_number(options.drain_seconds),
            "shutdownSeconds": SHUTDOWN_MARGIN,
            "extraArgs": [],
        },
        "storesSecret": settings["stores_secret"],
        "authSecret": settings["auth_secret"],
        "replicas": options.replicas,
        "autoscaling": {
            "enabled": True,
            "maxReplicas": options.max_replicas,
            "cpuUtilization": settings["cpu_utilization"],
            "inFlightPerReplica": settings["in_flight_target"],
        },
        "resources": {"cpu": options.cpu, "memory": options.memory},
        "probes": {"startupSeconds": 300},
        "service": {"type": "ClusterIP", "port": 80},
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        "serviceMonitor": {
            "enabled": settings["service_monitor"],
            "interval": settings["scrape_interval"],
            "labels": {},
        },
        "networkPolicy": {"enabled": True, "from": []},
        "podAnnotations": {},
        "nodeSelector": {},
        "tolerations": [],
    }


# one comment above each top-level key of values.yaml
_COMMENTS = {
    "image": "the serving image (`shipyard deploy render -t docker` builds it); best by digest: "
    "registry/repo@sha256:…",
    "imagePullSecrets": "names of Secrets for a private registry",
    "model": "the version served, pinned: a render never follows an alias. source: bake (the "
    "image holds the model at bundleDir) or pull (the server fetches uri from the stores "
    "storesSecret names, refused unless its manifest has this digest). onnxDigest: the "
    "ONNX conversion's digest, pinned too (empty: none). trusted: the model "
    "runs its own code (pickle, a Python model)",
    "server": "after SIGTERM the server stays up, not ready, for drainSeconds; Kubernetes "
    "waits drainSeconds + shutdownSeconds before it kills the pod",
    "storesSecret": "with model.source pull: the Secret whose keys db_url and artifacts become "
    "SHIPYARD_DB_URL and SHIPYARD_ARTIFACTS",
    "authSecret": "the Secret whose key jwt_secret becomes SHIPYARD_JWT_SECRET: callers send "
    "HS256 tokens signed with it (a replica's API keys live in its own emptyDir); without it "
    "every prediction is refused (401)",
    "replicas": "replicas, and the autoscaler's minimum",
    "autoscaling": "on CPU and on shipyard_requests_in_flight per replica (that one needs a "
    "custom-metrics adapter such as prometheus-adapter; 0 scales on CPU alone)",
    "resources": "CPU request; memory request and limit, per replica",
    "probes": "seconds a replica may take to load and warm up the model before it is restarted",
    "serviceMonitor": "Prometheus Operator scraping of /metrics",
    "networkPolicy": "ingress to the server's port from this namespace and these peers",
}


def _values_yaml(context: Context, values: dict[str, Any]) -> str:
    import textwrap

    model = context.facts.model
    named = f" ({model.name}@{model.alias})" if model.alias else ""
    lines = [
        f"# Values of the chart serving {model.uri}{named}, rendered by shipyard "
        f"{context.facts.shipyard_version}.",
        "# values.schema.json checks them: helm lint, template, install and upgrade refuse bad "
        "ones.",
    ]
    lines += _rollout_note(context)
    for key, value in values.items():
        if key in _COMMENTS:
            lines.append("")
            lines += ["# " + line for line in textwrap.wrap(_COMMENTS[key], 94)]
        dumped = dump_yaml({key: value})
        lines.append(dumped.rstrip("\n"))
    return "\n".join(lines) + "\n"


def _rollout_note(context: Context) -> list[str]:
    """A chart serves one version: an endpoint's candidate is the argo target's job."""
    endpoint = context.facts.endpoint
    if endpoint is None or endpoint.candidate is None:
        return []
    return [
        f"# Endpoint {endpoint.name} is in a {endpoint.policy} of {endpoint.candidate.uri}: this "
        "chart serves its stable",
        "# version only; `shipyard deploy render --endpoint NAME -t argo` renders the rollout.",
    ]


def _chart_yaml(context: Context, version: str) -> str:
    facts = context.facts
    model = facts.model
    flavor = model.flavor
    doc = {
        "apiVersion": "v2",
        "name": facts.app,
        "description": f"Serves {model.uri} ({flavor}) with shipyard: the Open Inference "
        "Protocol (V2) and /endpoints/NAME/predict.",
        "type": "application",
        "version": version,
        "appVersion": str(model.version),
        "kubeVersion": ">=1.25.0-0",
        "keywords": ["shipyard", "model-serving", flavor],
        "annotations": {
            "shipyard.dev/model-uri": model.uri,
            "shipyard.dev/model-digest": model.digest,
            "shipyard.dev/rendered-by": f"shipyard {facts.shipyard_version}",
        },
    }
    return dump_yaml(doc)


def yaml_number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def _object(properties: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """A JSON Schema object with exactly these keys (a misspelt key is refused)."""
    out: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        out["required"] = list(properties)
    return out


def _int(minimum: int, maximum: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        out["maximum"] = maximum
    return out


_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _model_schema() -> dict[str, Any]:
    """The served version: pinned by number and digest, named as the server serves it."""
    return _object(
        {
            "name": {"type": "string", "minLength": 1},
            "version": _int(1),
            "uri": {"type": "string", "pattern": r"^models:/[^/@]+/[1-9][0-9]*$"},
            "digest": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "onnxDigest": {"type": "string", "pattern": "^([0-9a-f]{64})?$"},
            "endpoint": {"type": "string", "pattern": _DNS_LABEL, "maxLength": 63},
            "source": {"enum": ["bake", "pull"]},
            "bundleDir": {"type": "string", "pattern": "^/"},
            "trusted": {"type": "boolean"},
        }
    )


def values_schema() -> dict[str, Any]:
    """values.schema.json: JSON Schema draft-07, as Helm checks it."""
    properties: dict[str, Any] = {
        "image": {"type": "string", "pattern": IMAGE_REFERENCE.pattern, "maxLength": 512},
        "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
        "imagePullSecrets": {
            "type": "array",
            "items": {"type": "string", "pattern": _DNS_SUBDOMAIN},
        },
        "nameOverride": {"type": "string", "pattern": f"^$|{_DNS_LABEL}", "maxLength": 63},
        "fullnameOverride": {"type": "string", "pattern": f"^$|{_DNS_LABEL}", "maxLength": 63},
        "model": _model_schema(),
        "server": _object(
            {
                "port": _int(1, 65535),
                "drainSeconds": {"type": "number", "minimum": 0, "maximum": 3600},
                "shutdownSeconds": _int(1, 600),
                "extraArgs": {"type": "array", "items": {"type": "string"}},
            }
        ),
        "storesSecret": {"type": "string", "pattern": f"^$|{_DNS_SUBDOMAIN}"},
        "authSecret": {"type": "string", "pattern": _DNS_SUBDOMAIN},
        "replicas": _int(1, 1000),
        "autoscaling": _object(
            {
                "enabled": {"type": "boolean"},
                "maxReplicas": _int(1, 1000),
                "cpuUtilization": _int(1, 100),
                "inFlightPerReplica": {"type": "number", "minimum": 0},
            }
        ),
        "resources": _object(
            {
                "cpu": {"type": "string", "pattern": CPU_QUANTITY.pattern},
                "memory": {"type": "string", "pattern": MEMORY_QUANTITY.pattern},
            }
        ),
        "probes": _object({"startupSeconds": _int(2, 3600)}),
        "service": _object(
            {"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "port": _int(1, 65535)}
        ),
        "podDisruptionBudget": _object({"enabled": {"type": "boolean"}, "maxUnavailable": _int(1)}),
        "serviceMonitor": _object(
            {
                "enabled": {"type": "boolean"},
                "interval": {"type": "string", "pattern": _INTERVAL},
                "labels": _STRING_MAP,
            }
        ),
        "networkPolicy": _object(
            {"enabled": {"type": "boolean"}, "from": {"type": "array", "items": {"type": "object"}}}
        ),
        "podAnnotations": _STRING_MAP,
        "nodeSelector": _STRING_MAP,
        "tolerations": {"type": "array", "items": {"type": "object"}},
    }
    required = list(properties)
    # Helm passes `global` to every chart: allowed, never required
    properties["global"] = {"type": "object"}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Values of a shipyard model-serving chart",
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
        # the pull source reads the stores: it needs the Secret that names them
        "if": {"properties": {"model": {"properties": {"source": {"const": "pull"}}}}},
        "then": {"properties": {"storesSecret": {"minLength": 1}}},
    }
