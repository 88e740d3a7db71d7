"""Kubernetes manifests as text, and the pod template the k8s and argo targets share.

    text = dump([deployment, service], header="churn-api, models:/churn/2")
    template = pod_template(context, version, track="stable")

`dump` writes a multi-document YAML stream with the keys in the order the code built them
(never sorted, never a flow style), so two renders of the same facts are byte-identical.
The pod template runs the image's `shipyard serve` with Context.serve_args(): a startup
probe on the liveness route (a slow model load never trips the liveness probe), readiness on
the model's V2 ready route (no request reaches a replica before its model is loaded, nor
after it began to drain), a non-root read-only root filesystem with SHIPYARD_HOME and /tmp
on emptyDirs, and a grace period longer than the server's own `--drain`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.deploy.facts import VersionFacts
from shipyard.deploy.targets import Context

PORT_NAME = "http"  # the serving port, which also answers /metrics
METRICS_PATH = "/metrics"
HOME = "/var/lib/shipyard"  # SHIPYARD_HOME: the server writes its key and caches here
UID = 10001
# seconds uvicorn may take to finish after the drain, before the kubelet's SIGKILL
SHUTDOWN_MARGIN = 10


def dump_yaml(doc: Any, *, width: int = 4096) -> str:
    """One YAML document: keys in insertion order, no anchors or aliases (a step two jobs
    share is written out in each, as a reader expects), multi-line text (PromQL, a shell
    script) as a literal block."""
    import yaml

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no types
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        # a literal block cannot keep a line's trailing spaces: those stay quoted
        literal = "\n" in data and not any(line.endswith(" ") for line in data.split("\n"))
        return dumper.represent_scalar(
            "tag:yaml.org,2002:str", data, style="|" if literal else None
        )

    Dumper.add_representer(str, text)
    out: str = yaml.dump(
        doc,
        Dumper=Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=width,
        allow_unicode=True,
    )
    return out


def dump(docs: Sequence[Mapping[str, Any]], *, header: str = "") -> str:
    """A multi-document YAML stream, each document after `---` (as `dump_yaml` writes it)."""
    parts = [f"# {line}\n" for line in header.splitlines()] if header else []
    parts += ["---\n" + dump_yaml(dict(doc), width=100) for doc in docs]
    return "".join(parts)


def header_of(context: Context, note: str = "") -> str:
    """The comment at the top of every rendered file: what it was rendered from."""
    facts = context.facts
    lines = [f"Rendered by shipyard {facts.shipyard_version} for {facts.model.uri}"]
    if facts.model.alias:
        lines[0] += f" (alias {facts.model.alias}, pinned)"
    endpoint = facts.endpoint
    if endpoint is not None:
        lines.append(f"endpoint {endpoint.name}, policy {endpoint.policy}")
        if endpoint.candidate is not None:
            lines.append(f"a {endpoint.policy} of {endpoint.candidate.uri} is in progress")
    return "\n".join(lines + ([note] if note else []))


def labels(context: Context, *, component: str = "server") -> dict[str, str]:
    """The labels every object of a render carries; the selector is their first two."""
    return {
        "app.kubernetes.io/name": context.facts.app,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "shipyard",
    }


def selector(context: Context) -> dict[str, str]:
    return dict(list(labels(context).items())[:2])


def metadata(context: Context, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": context.options.namespace, "labels": labels(context)} | {
        k: v for k, v in extra.items() if v is not None
    }


def grace_seconds(context: Context) -> int:
    """The pod's terminationGracePeriodSeconds: the drain plus time to finish after it."""
    return math.ceil(context.options.drain_seconds) + SHUTDOWN_MARGIN


def pod_template(
    context: Context, version: VersionFacts, *, extra_labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The pod template that serves `version` (a Deployment's or a Rollout's)."""
    pod_labels = labels(context) | {"shipyard.dev/model-version": str(version.version)}
    pod_labels |= dict(extra_labels or {})
    return {
        "metadata": {
            "labels": pod_labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(context.options.port),
                "prometheus.io/path": METRICS_PATH,
                "shipyard.dev/model-uri": version.uri,
                "shipyard.dev/model-digest": version.digest,
            },
        },
        "spec": {
            "terminationGracePeriodSeconds": grace_seconds(context),
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": UID,
                "runAsGroup": UID,
                "fsGroup": UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container(context, version)],
            "volumes": [
                {"name": "shipyard-home", "emptyDir": {}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }


def container(context: Context, version: VersionFacts) -> dict[str, Any]:
    """The serving container: the image's `shipyard serve`, probes, resources, env."""
    options = context.options
    http = {"port": PORT_NAME}
    return {
        "name": "server",
        "image": context.image(version),
        "imagePullPolicy": "IfNotPresent",
        "args": context.serve_args(version),
        "ports": [{"name": PORT_NAME, "containerPort": options.port, "protocol": "TCP"}],
        "env": env(context),
        "resources": {
            "requests": {"cpu": options.cpu, "memory": options.memory},
            "limits": {"memory": options.memory},
        },
        # the liveness route answers once the server runs; the model may still be loading:
        # up to 5 minutes of loading before the kubelet gives up
        "startupProbe": {
            "httpGet": {"path": context.live_path} | http,
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        # 200 once the model is loaded and warmed up, 503 again while draining
        "readinessProbe": {
            "httpGet": {"path": context.ready_path} | http,
            "periodSeconds": 5,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": context.live_path} | http,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "shipyard-home", "mountPath": HOME},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def stores_secret(context: Context) -> str:
    """The Secret holding SHIPYARD_DB_URL and SHIPYARD_ARTIFACTS (with --model-source pull)."""
    return context.options.setting("stores_secret", f"{context.facts.app}-stores")


def auth_secret(context: Context) -> str:
    """The Secret whose key jwt_secret signs the callers' HS256 tokens: a replica's API keys
    live in its own emptyDir, so tokens are how callers authenticate to a baked model."""
    return context.options.setting("auth_secret", f"{context.facts.app}-auth")


def env(context: Context) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": "SHIPYARD_HOME", "value": HOME}]
    jwt = {"secretKeyRef": {"name": auth_secret(context), "key": "jwt_secret", "optional": True}}
    out.append({"name": "SHIPYARD_JWT_SECRET", "valueFrom": jwt})
    if context.options.model_source == "pull":
        secret = stores_secret(context)
        for name, key in (("SHIPYARD_DB_URL", "db_url"), ("SHIPYARD_ARTIFACTS", "artifacts")):
            ref = {"secretKeyRef": {"name": secret, "key": key}}
            out.append({"name": name, "valueFrom": ref})
    return out


# the --set keys of the targets that run this pod template
POD_SETTINGS = {
    "auth_secret": "Secret with key jwt_secret: callers send HS256 tokens signed with it "
    "(default: <app>-auth; without it every prediction is refused: 401)",
    "stores_secret": "Secret with keys db_url and artifacts, for --model-source pull "
    "(default: <app>-stores)",
}
