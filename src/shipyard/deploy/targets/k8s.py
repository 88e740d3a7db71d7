"""Plain Kubernetes: a Deployment of the serving image, its Service, an HPA (CPU and the
in-flight requests of shipyard's own /metrics), a PodDisruptionBudget, a ServiceMonitor for
the Prometheus operator and a NetworkPolicy, one file per kind.

For an endpoint, the Deployment serves its stable version: weighted traffic between stable and
a candidate is what the argo and kserve targets render, and a rollout in progress is named in
the header of every file. With `--model-source pull` the pods read SHIPYARD_DB_URL and
SHIPYARD_ARTIFACTS from a Secret (`--set stores_secret=`), and the server refuses a version
whose manifest lacks the digest recorded here.
"""

from __future__ import annotations

from typing import Any

from shipyard.deploy.manifests import (
    METRICS_PATH,
    POD_SETTINGS,
    PORT_NAME,
    dump,
    header_of,
    labels,
    metadata,
    pod_template,
    selector,
)
from shipyard.deploy.targets import Context
from shipyard.errors import InvalidArgumentError

SETTINGS = POD_SETTINGS | {
    "cpu_utilization": "the HPA's target average CPU utilization in percent (default 70)",
    "in_flight_target": "the HPA's target average of shipyard_requests_in_flight per pod "
    "(default 4; needs a custom-metrics adapter such as prometheus-adapter)",
    "scrape_interval": "the ServiceMonitor's scrape interval (default 15s)",
}


def render(context: Context) -> dict[str, str | bytes]:
    header = _header(context)
    docs = {
        "deployment.yaml": deployment(context),
        "service.yaml": service(context),
        "hpa.yaml": hpa(context),
        "pdb.yaml": pdb(context),
        "servicemonitor.yaml": service_monitor(context),
        "networkpolicy.yaml": network_policy(context),
    }
    return {path: dump([doc], header=header) for path, doc in docs.items()}


def _header(context: Context) -> str:
    rolling = context.facts.endpoint is not None and context.facts.endpoint.candidate is not None
    note = "this serves the stable version; the argo and kserve targets split the traffic"
    return header_of(context, note if rolling else "")


def deployment(context: Context) -> dict[str, Any]:
    app = context.facts.app
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(context, app),
        # no `replicas`: the HPA owns the count (minReplicas is --replicas); one set here
        # would be reset by every `kubectl apply`
        "spec": {
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(context)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": pod_template(context, context.facts.model),
        },
    }


def service(context: Context, name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(context, name or context.facts.app),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(context),
            "ports": [{"name": PORT_NAME, "port": 80, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def hpa(context: Context, target: tuple[str, str] = ("apps/v1", "Deployment")) -> dict[str, Any]:
    """The HPA of the replicas: of the Deployment, or (argo) of the Rollout."""
    options = context.options
    cpu = _int_setting(context, "cpu_utilization", "70", 1, 100)
    in_flight = _int_setting(context, "in_flight_target", "4", 1, 100_000)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(context, context.facts.app),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": target[0],
                "kind": target[1],
                "name": context.facts.app,
            },
            "minReplicas": options.replicas,
            "maxReplicas": options.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": cpu},
                    },
                },
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "shipyard_requests_in_flight"},
                        "target": {"type": "AverageValue", "averageValue": str(in_flight)},
                    },
                },
            ],
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                }
            },
        },
    }


def pdb(context: Context) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(context, context.facts.app),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(context)}},
    }


def service_monitor(context: Context) -> dict[str, Any]:
    interval = context.options.setting("scrape_interval", "15s")
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(context, context.facts.app),
        "spec": {
            "selector": {"matchLabels": selector(context)},
            "namespaceSelector": {"matchNames": [context.options.namespace]},
            "endpoints": [{"port": PORT_NAME, "path": METRICS_PATH, "interval": interval}],
        },
    }


def network_policy(context: Context) -> dict[str, Any]:
    """Only the serving port is reachable (callers and Prometheus alike); egress is left
    open, since a pulling server reaches its database and artifact store."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(context, context.facts.app),
        "spec": {
            "podSelector": {"matchLabels": selector(context)},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": PORT_NAME}]}],
        },
    }


def _int_setting(context: Context, key: str, default: str, low: int, high: int) -> int:
    raw = context.options.setting(key, default)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidArgumentError(
            f"--set {key}={raw}: give a whole number from {low} to {high}", field=key
        )
    return int(raw)


__all__ = ["SETTINGS", "labels", "render"]
