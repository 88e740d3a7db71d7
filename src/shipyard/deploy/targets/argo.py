"""Argo Rollouts: a Rollout whose canary steps mirror the endpoint's canary policy, a stable
and a canary Service, and two AnalysisTemplates on shipyard's own metrics (the candidate's
server-error rate against stable's, its p99 latency against stable's), via Prometheus; with
the k8s target's HPA (scaling the Rollout) and PodDisruptionBudget, and a PodMonitor.

The Rollout's pod template serves the version the rollout moves to: the candidate of an
endpoint in a canary (or blue-green), else the subject's version. Argo runs the steps when the
template changes; the first apply of a Rollout starts at 100% without steps.

Every canary step is `setWeight` then an `analysis` step. Each metric first waits the policy's
`min_seconds` (initialDelay), then measures every `interval`; it succeeds after 2 consecutive
successful measurements (consecutiveSuccessLimit), fails on the first failed one
(failureLimit 0) and is otherwise Inconclusive, which pauses the rollout for a person to judge.
No traffic is never a failure (argo-rollouts#1466, #1905): the queries return an empty vector
until the candidate has answered the policy's `min_requests` in the window (the `and on()`
guard) and while stable has answered nothing, and both conditions need a non-empty, non-NaN
result, so such a measurement is Inconclusive; more inconclusive measurements than leave room
for the success streak end the metric Inconclusive (inconclusiveLimit = count - 2).

A model URI, or an endpoint with no rollout, renders the steps of `--set steps=` (default
5,25,50,100, shipyard's own canary default) with the default thresholds: its Rollout's steps
run when the next version is rendered over it, and a single 100% step would send all traffic
to a version nobody measured. An endpoint in an A/B test or a shadow is refused: a canary
moves traffic step by step to one winner, and neither a fixed split judged by outcomes nor
mirrored requests are steps of one. A blue-green endpoint is one 100% step, analysed for its
`keep_seconds`. Argo weights are whole percents: a step like 2.5 is refused.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from shipyard.deploy.facts import VersionFacts
from shipyard.deploy.manifests import (
    METRICS_PATH,
    PORT_NAME,
    dump,
    header_of,
    metadata,
    pod_template,
    selector,
)
from shipyard.deploy.targets import Context
from shipyard.deploy.targets.k8s import SETTINGS as K8S_SETTINGS
from shipyard.deploy.targets.k8s import hpa, pdb, service
from shipyard.errors import InvalidArgumentError

SETTINGS = K8S_SETTINGS | {
    "prometheus_url": "Prometheus the analysis queries "
    "(default http://prometheus-operated.monitoring.svc:9090)",
    "analysis_interval": "seconds between two measurements of an analysis (default 30)",
    "analysis_window": "the rate window of the analysis queries, a PromQL duration (default 2m)",
    "steps": "canary weights for a model URI or an endpoint with no rollout (default 5,25,50,100)",
}
SUCCESS_STREAK = 2  # consecutive successful measurements that pass an analysis
MEASUREMENTS = 6  # measurements an analysis takes at most
LATENCY_QUANTILE = 0.99  # the policy's latency threshold is on p99


@dataclass(frozen=True)
class Plan:
    """What the Rollout does: the version it moves to, its weights and its judgement."""

    version: VersionFacts
    steps: list[int]
    min_requests: int
    min_seconds: float
    max_error_rate_delta: float
    max_p99_ratio: float
    p99_slack_ms: float


def render(context: Context) -> dict[str, str | bytes]:
    plan = plan_of(context)
    header = header_of(
        context,
        f"the Rollout moves to {plan.version.uri}\n"
        "No trafficRouting: Argo approximates each weight by replica counts (with 2 replicas\n"
        "a 5% step runs 1 canary pod beside 2 stable: a third of the traffic). For exact\n"
        "weights add spec.strategy.canary.trafficRouting (Istio, NGINX, SMI, a Gateway).",
    )
    app = context.facts.app
    return {
        "rollout.yaml": dump([rollout(context, plan)], header=header),
        "services.yaml": dump([service(context), service(context, f"{app}-canary")], header=header),
        "analysistemplates.yaml": dump(analysis_templates(context, plan), header=header),
        "hpa.yaml": dump([hpa(context, ("argoproj.io/v1alpha1", "Rollout"))], header=header),
        "pdb.yaml": dump([pdb(context)], header=header),
        "podmonitor.yaml": dump([pod_monitor(context)], header=header),
    }


def pod_monitor(context: Context) -> dict[str, Any]:
    """Prometheus scrapes the pods themselves, stable and canary alike, each once: Argo
    narrows each Service's selector to its ReplicaSet, and both point at the same pods once
    the weight is 100, so a ServiceMonitor would miss pods or count them twice."""
    interval = context.options.setting("scrape_interval", "15s")
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": metadata(context, context.facts.app),
        "spec": {
            "selector": {"matchLabels": selector(context)},
            "namespaceSelector": {"matchNames": [context.options.namespace]},
            "podMetricsEndpoints": [
                {"port": PORT_NAME, "path": METRICS_PATH, "interval": interval}
            ],
        },
    }


def plan_of(context: Context) -> Plan:
    from shipyard.policy import Thresholds

    endpoint = context.facts.endpoint
    policy = endpoint.policy if endpoint else "single"
    config = endpoint.config if endpoint else {}
    if policy in ("ab", "shadow"):
        what = "an A/B test" if policy == "ab" else "a shadow"
        raise InvalidArgumentError(
            f"endpoint {endpoint.name if endpoint else ''} is in {what}, which an Argo canary "
            "cannot express (it moves traffic step by step to one version); render it when "
            "the test has ended, or move the endpoint to a canary (shipyard deploy canary)",
            field="policy",
        )
    if policy != "single" and "steps" in context.options.settings:
        raise InvalidArgumentError(
            f"--set steps: the steps come from the endpoint's {policy} policy", field="steps"
        )
    thresholds = Thresholds.model_validate(config.get("thresholds", {}))
    if policy == "canary":
        raw, min_seconds = list(config["steps"]), float(config.get("min_seconds", 30.0))
    elif policy == "bluegreen":
        raw, min_seconds = [100.0], float(config.get("keep_seconds", 600.0))
    else:
        raw, min_seconds = _parse_steps(context.options.setting("steps", "5,25,50,100")), 30.0
    candidate = endpoint.candidate if endpoint else None
    return Plan(
        version=candidate or context.facts.model,
        steps=_whole_weights(raw),
        min_requests=int(config.get("min_requests", 100)),
        min_seconds=min_seconds,
        max_error_rate_delta=thresholds.max_error_rate_delta,
        max_p99_ratio=thresholds.max_p99_ratio,
        p99_slack_ms=thresholds.p99_slack_ms,
    )


def _parse_steps(text: str) -> list[float]:
    try:
        steps = [float(s) for s in text.split(",")]
    except ValueError:
        steps = []
    ordered = all(b > a for a, b in itertools.pairwise(steps))
    if not steps or not ordered or steps[0] <= 0 or steps[-1] != 100:
        raise InvalidArgumentError(
            f"--set steps={text}: give increasing weights ending at 100, e.g. 5,25,50,100",
            field="steps",
        )
    return steps


def _whole_weights(steps: list[float]) -> list[int]:
    for step in steps:
        if not float(step).is_integer() or not 1 <= step <= 100:
            raise InvalidArgumentError(
                f"canary step {step:g}: Argo Rollouts sets whole percents from 1 to 100; "
                "start a canary with whole-number steps (e.g. 5,25,50,100)",
                field="steps",
            )
    return [int(s) for s in steps]


def rollout(context: Context, plan: Plan) -> dict[str, Any]:
    app = context.facts.app
    args = [
        {"name": "endpoint", "value": app},
        {"name": "canary-version", "value": str(plan.version.version)},
    ]
    analysis = {
        "templates": [{"templateName": f"{app}-error-rate"}, {"templateName": f"{app}-latency"}],
        "args": args,
    }
    steps: list[dict[str, Any]] = []
    for weight in plan.steps:
        steps += [{"setWeight": weight}, {"analysis": analysis}]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": metadata(context, app),
        "spec": {
            "replicas": context.options.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(context)},
            "template": pod_template(context, plan.version),
            "strategy": {
                "canary": {
                    "stableService": app,
                    "canaryService": f"{app}-canary",
                    "maxUnavailable": 0,
                    "steps": steps,
                }
            },
        },
    }


def analysis_templates(context: Context, plan: Plan) -> list[dict[str, Any]]:
    """The error-rate and latency templates; each query's value is 'how much worse than
    allowed', so success is `<= 0` and failure `> 0` (or the error-rate delta itself)."""
    window = context.options.setting("analysis_window", "2m")
    canary = 'endpoint="{{args.endpoint}}",version="{{args.canary-version}}"'
    stable = 'endpoint="{{args.endpoint}}",version!="{{args.canary-version}}"'
    guard = (
        f"and on() (sum(increase(shipyard_requests_total{{{canary}}}[{window}])) "
        f">= {plan.min_requests})"
    )
    error_rate = (
        f"(\n  {_error_rate(canary, window)}\n  - on()\n  {_error_rate(stable, window)}\n)\n"
        f"{guard}\n"
    )
    slack = plan.p99_slack_ms / 1000
    latency = (
        f"(\n  {_quantile(canary, window)}\n  - on()\n"
        f"  ({_quantile(stable, window)} * {plan.max_p99_ratio:g} + {slack:g})\n)\n{guard}\n"
    )
    return [
        _template(context, plan, "error-rate", error_rate, plan.max_error_rate_delta),
        _template(context, plan, "latency", latency, 0.0),
    ]


def _error_rate(selector: str, window: str) -> str:
    errors = f'sum(rate(shipyard_requests_total{{{selector},status=~"5.."}}[{window}]))'
    total = f"sum(rate(shipyard_requests_total{{{selector}}}[{window}]))"
    return f"((({errors}) or on() vector(0)) / {total})"


def _quantile(selector: str, window: str) -> str:
    buckets = f"rate(shipyard_request_latency_seconds_bucket{{{selector}}}[{window}])"
    return f"histogram_quantile({LATENCY_QUANTILE:g}, sum by (le) ({buckets}))"


def _template(context: Context, plan: Plan, name: str, query: str, limit: float) -> dict[str, Any]:
    interval = context.options.setting("analysis_interval", "30")
    if not interval.isdigit() or not 1 <= int(interval) <= 3600:
        raise InvalidArgumentError(
            f"--set analysis_interval={interval}: give whole seconds from 1 to 3600",
            field="analysis_interval",
        )
    measured = "len(result) > 0 && !isNaN(result[0])"
    metric: dict[str, Any] = {
        "name": name,
        "interval": f"{interval}s",
        "count": MEASUREMENTS,
        "consecutiveSuccessLimit": SUCCESS_STREAK,
        "failureLimit": 0,
        "inconclusiveLimit": MEASUREMENTS - SUCCESS_STREAK,
        "successCondition": f"{measured} && result[0] <= {limit:g}",
        "failureCondition": f"{measured} && result[0] > {limit:g}",
        "provider": {
            "prometheus": {
                "address": context.options.setting(
                    "prometheus_url", "http://prometheus-operated.monitoring.svc:9090"
                ),
                "query": query,
            }
        },
    }
    if plan.min_seconds > 0:
        metric = {"name": name, "initialDelay": f"{math.ceil(plan.min_seconds)}s"} | metric
    app = context.facts.app
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": metadata(context, f"{app}-{name}"),
        "spec": {
            "args": [{"name": "endpoint"}, {"name": "canary-version"}],
            "metrics": [metric],
        },
    }
