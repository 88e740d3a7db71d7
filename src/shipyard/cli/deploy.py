"""`shipyard deploy`: the endpoints `shipyard server` serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from shipyard.cli._common import new_app, print_json, table, ts

if TYPE_CHECKING:
    from shipyard.stores.records import EndpointRecord

app = new_app("""Endpoints and safe rollouts: canary, A/B, shadow, blue-green.

\b
Examples:
  shipyard deploy create churn --model churn@champion
  shipyard deploy canary churn --model churn@challenger --steps 5,25,50,100 --auto
  shipyard deploy status churn
  shipyard deploy rollback churn --reason "p99 doubled"
""")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Endpoint name (appears in URLs).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model URI, e.g. churn@champion")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite an existing endpoint.")
    ] = False,
    if_changed: Annotated[
        bool,
        typer.Option(
            "--if-changed", help="Leave an endpoint that serves this URI already as it is."
        ),
    ] = False,
    require_approval: Annotated[
        bool, typer.Option("--require-approval", help="Serve approved versions only.")
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (audit log).")] = None,
    override_gates: Annotated[
        str | None,
        typer.Option("--override-gates", help="Deploy despite failed quality gates: the reason."),
    ] = None,
) -> None:
    """Create an endpoint serving a model URI (an alias follows the alias when it moves).

    \b
    Examples:
      shipyard deploy create churn --model models:/churn@champion
      shipyard deploy create churn --model churn@served --replace --if-changed
    """
    from shipyard.registry import Registry
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    record = Deployments(open_stores()).create(
        name,
        model,
        require_approval=require_approval,
        replace=replace,
        reason=reason,
        override_gates=override_gates,
        if_changed=if_changed,
    )
    uri = record.model_uri
    mv = Registry(open_stores()).resolve(uri)
    typer.echo(
        f"endpoint {name} -> {uri} (now version {mv.version}); "
        f"POST /endpoints/{name}/predict on `shipyard server`"
    )


@app.command("list")
def list_endpoints(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List endpoints.

    \b
    Example:
      shipyard deploy list
    """
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    endpoints = Deployments(open_stores()).list()
    if as_json:
        print_json([e.to_dict() for e in endpoints])
        return
    table(
        f"{len(endpoints)} endpoint(s)",
        ["name", "model", "policy", "generation", "updated"],
        [[e.name, e.model_uri, e.policy, e.generation, ts(e.updated_at)] for e in endpoints],
    )


@app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (audit log).")] = None,
) -> None:
    """Delete an endpoint (running servers stop serving it within seconds).

    \b
    Example:
      shipyard deploy delete churn --reason "replaced by churn-v2"
    """
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    Deployments(open_stores()).delete(name, reason=reason)
    typer.echo(f"deleted endpoint {name}")


Model = Annotated[str, typer.Option("--model", "-m", help="Candidate, e.g. churn@challenger")]
Auto = Annotated[bool, typer.Option("--auto", help="Let the controller promote or roll back.")]
Reason = Annotated[str | None, typer.Option("--reason", "-r", help="Why (audit log).")]
OverrideGates = Annotated[
    str | None,
    typer.Option("--override-gates", help="Start despite failed quality gates: the reason."),
]
Thresholds = Annotated[
    list[str] | None,
    typer.Option(
        "--threshold",
        "-t",
        help="KEY=VALUE, e.g. max_error_rate_delta=0.01, max_p99_ratio=1.3 (repeat).",
    ),
]


MaxShift = Annotated[
    float | None,
    typer.Option(
        "--max-prediction-shift",
        min=0,
        help="Roll back when the candidate's predictions shift by this effect size or more "
        "(Wasserstein in stable's sds, or Jensen-Shannon for labels). Off by default: a "
        "candidate is meant to differ, so a shift is only reported as a warning.",
    ),
]
MinRequests = Annotated[int, typer.Option(min=1, help="Candidate requests before any verdict.")]
MinSeconds = Annotated[float, typer.Option(min=0, help="Seconds before any verdict.")]


def _thresholds(
    items: list[str] | None, max_prediction_shift: float | None = None
) -> dict[str, float | None] | None:
    from shipyard.errors import InvalidArgumentError

    if not items and max_prediction_shift is None:
        return None
    out: dict[str, float | None] = {}
    if max_prediction_shift is not None:
        out["max_prediction_shift"] = max_prediction_shift
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InvalidArgumentError(f"--threshold takes KEY=NUMBER, not {item!r}")
    return out


def _outcome_source(value: str) -> Literal["outcome", "label"]:
    from shipyard.errors import InvalidArgumentError

    if value not in ("outcome", "label"):
        raise InvalidArgumentError(
            f"--outcome-source is 'outcome' or 'label', not {value!r}", field="outcome_source"
        )
    return "outcome" if value == "outcome" else "label"


def _done(record: EndpointRecord) -> None:
    from shipyard.policy import AbPolicy, CanaryPolicy, SinglePolicy, policy_of

    c = policy_of(record)
    extra = ""
    if isinstance(c, CanaryPolicy):
        extra = f" at {c.weight:g}% (steps {', '.join(f'{s:g}' for s in c.steps)})"
    elif isinstance(c, AbPolicy):
        extra = f", {c.split:g}% of keys to the candidate, horizon {c.min_samples} outcomes"
    assert not isinstance(c, SinglePolicy)  # a rollout just started
    typer.echo(f"{record.name}: {c.kind} of {c.candidate_uri}{extra}{' (auto)' if c.auto else ''}")


@app.command("canary")
def canary(
    name: Annotated[str, typer.Argument(help="Endpoint.")],
    model: Model,
    steps: Annotated[str, typer.Option(help="Weights in %, e.g. 5,25,50,100.")] = "5,25,50,100",
    min_requests: MinRequests = 100,
    min_seconds: MinSeconds = 30.0,
    auto: Auto = False,
    threshold: Thresholds = None,
    max_prediction_shift: MaxShift = None,
    reason: Reason = None,
    override_gates: OverrideGates = None,
) -> None:
    """Send a share of traffic to a candidate, step by step.

    No verdict before each step has its minimum requests and seconds (a candidate failing
    outright is the exception); then errors, p99 latency and, where labels came back through
    /feedback, live quality decide.

    \b
    Example:
      shipyard deploy canary churn --model churn@challenger --steps 5,25,50,100 --auto
    """
    from shipyard.errors import InvalidArgumentError
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    try:
        weights = [float(s) for s in steps.split(",") if s.strip()]
    except ValueError as exc:
        raise InvalidArgumentError(
            f"--steps must be numbers like 5,25,50,100, not {steps!r}"
        ) from exc
    _done(
        Deployments(open_stores()).canary(
            name,
            model,
            steps=weights,
            min_requests=min_requests,
            min_seconds=min_seconds,
            auto=auto,
            thresholds=_thresholds(threshold, max_prediction_shift),
            reason=reason,
            override_gates=override_gates,
        )
    )


@app.command("ab")
def ab(
    name: Annotated[str, typer.Argument(help="Endpoint.")],
    model: Model,
    split: Annotated[float, typer.Option(help="Candidate share of keys, %.")] = 50.0,
    min_samples: Annotated[
        int, typer.Option(min=1, help="Outcomes per arm before deciding.")
    ] = 1000,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    lower_is_better: Annotated[
        bool, typer.Option(help="A lower outcome wins (e.g. cost).")
    ] = False,
    outcome_source: Annotated[
        str,
        typer.Option(
            help="Which field of /feedback is the outcome: 'outcome', or 'label' when the late "
            "label is the outcome itself."
        ),
    ] = "outcome",
    auto: Auto = False,
    reason: Reason = None,
    override_gates: OverrideGates = None,
) -> None:
    """A/B test: callers (by "key") stick to a variant; outcomes come through /feedback
    (`{"request_id": …, "outcome": 1}`, beside any `label` for live accuracy).

    \b
    Example:
      shipyard deploy ab churn --model churn@challenger --split 50 --min-samples 2000 --auto
    """
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    _done(
        Deployments(open_stores()).ab(
            name,
            model,
            split=split,
            min_samples=min_samples,
            alpha=alpha,
            higher_is_better=not lower_is_better,
            outcome_source=_outcome_source(outcome_source),
            auto=auto,
            reason=reason,
            override_gates=override_gates,
        )
    )


@app.command("shadow")
def shadow(
    name: Annotated[str, typer.Argument(help="Endpoint.")],
    model: Model,
    sample: Annotated[float, typer.Option(help="Share of requests shadowed, (0, 1].")] = 1.0,
    min_requests: MinRequests = 200,
    min_seconds: MinSeconds = 0.0,
    min_agreement: Annotated[float, typer.Option(help="Agreement needed to promote.")] = 0.95,
    rtol: Annotated[
        float, typer.Option(min=0, help="Numbers agree within this relative tolerance.")
    ] = 0.05,
    atol: Annotated[float, typer.Option(min=0, help="... plus this absolute tolerance.")] = 1e-8,
    auto: Auto = False,
    threshold: Thresholds = None,
    max_prediction_shift: MaxShift = None,
    reason: Reason = None,
    override_gates: OverrideGates = None,
) -> None:
    """Also send requests to a candidate, off the response path; compare its answers.

    Numeric predictions agree within |shadow - stable| <= atol + rtol * |stable|, labels
    when equal. The shadow is held to the same thresholds as a canary (errors, p99 latency,
    live quality; --threshold, --max-prediction-shift), after --min-requests and
    --min-seconds.

    \b
    Example:
      shipyard deploy shadow churn --model churn@challenger --sample 0.5 --rtol 0.1
    """
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    _done(
        Deployments(open_stores()).shadow(
            name,
            model,
            sample=sample,
            min_requests=min_requests,
            min_seconds=min_seconds,
            min_agreement=min_agreement,
            agreement_rtol=rtol,
            agreement_atol=atol,
            auto=auto,
            thresholds=_thresholds(threshold, max_prediction_shift),
            reason=reason,
            override_gates=override_gates,
        )
    )


@app.command("bluegreen")
def bluegreen(
    name: Annotated[str, typer.Argument(help="Endpoint.")],
    model: Model,
    keep_seconds: Annotated[
        float, typer.Option(min=0, help="Keep the old version this long.")
    ] = 600.0,
    auto: Auto = False,
    reason: Reason = None,
    override_gates: OverrideGates = None,
) -> None:
    """Load and warm a candidate, then switch all traffic at once (old version kept loaded).

    \b
    Example:
      shipyard deploy bluegreen churn --model churn/7 --keep-seconds 900 --auto
    """
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    _done(
        Deployments(open_stores()).bluegreen(
            name,
            model,
            keep_seconds=keep_seconds,
            auto=auto,
            reason=reason,
            override_gates=override_gates,
        )
    )


@app.command("status")
def status_command(
    name: Annotated[str, typer.Argument(help="Endpoint.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Policy, weights, per-version live numbers and the controller's verdict.

    \b
    Example:
      shipyard deploy status churn
    """
    from shipyard.config import get_settings
    from shipyard.rollout.controller import status
    from shipyard.stores import open_stores

    settings = get_settings()
    doc = status(settings, open_stores(settings), name)
    if as_json:
        print_json(doc)
        return
    typer.echo(f"{name}: {doc['policy']} (stable {doc['model_uri']})")
    c = doc["config"]
    if doc["policy"] != "single":
        typer.echo(
            f"  candidate {c.get('candidate_uri')}"
            + (f", weight {c['weight']:g}%" if "weight" in c else "")
        )
        rows = [
            [
                v,
                s["requests"],
                f"{s['error_rate']:.2%}",
                "" if s["p99_ms"] is None else f"{s['p99_ms']:.1f}",
            ]
            for v, s in doc["live"]["variants"].items()
        ]
        table(None, ["variant", "requests", "errors", "p99 ms"], rows)
        typer.echo(
            f"  controller: {doc['would_decide']['action']}: {doc['would_decide']['reason']}"
        )
        for warning in doc["would_decide"].get("warnings", []):
            typer.echo(f"  warning: {warning}")
    if doc.get("last_verdict"):
        v = doc["last_verdict"]
        typer.echo(f"  last verdict: {v['action']} at {ts(v['at_ms'])}: {v['reason']}")
    if c.get("last_rollout"):
        last = c["last_rollout"]
        typer.echo(
            f"  last rollout: {last['policy']} of version {last['candidate_version']} "
            f"{last['outcome']}: {last['reason']}"
        )


@app.command("promote")
def promote(name: Annotated[str, typer.Argument(help="Endpoint.")], reason: Reason = None) -> None:
    """Make the candidate stable (the endpoint's alias moves to it).

    \b
    Example:
      shipyard deploy promote churn --reason "better conversion"
    """
    from shipyard.policy import SinglePolicy, policy_of
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    ended = policy_of(Deployments(open_stores()).promote(name, reason=reason))
    assert isinstance(ended, SinglePolicy) and ended.last_rollout is not None
    typer.echo(f"{name}: promoted version {ended.last_rollout.candidate_version}")


@app.command("rollback")
def rollback(name: Annotated[str, typer.Argument(help="Endpoint.")], reason: Reason = None) -> None:
    """All traffic back to the stable version; the alias is untouched.

    \b
    Example:
      shipyard deploy rollback churn --reason "p99 doubled"
    """
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    Deployments(open_stores()).rollback(name, reason=reason)
    typer.echo(f"{name}: rolled back to stable")


@app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="Endpoint.")],
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every traffic change, verdict, promotion and rollback, newest first.

    \b
    Example:
      shipyard deploy history churn --limit 20
    """
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    events = Deployments(open_stores()).history(name, limit)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    table(
        f"history of {name}",
        ["when", "who", "action", "why"],
        [[ts(e.ts), e.actor, e.action, e.reason or ""] for e in events],
    )


@app.command("watch")
def watch(
    name: Annotated[str, typer.Argument(help="Endpoint.")],
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between checks.")] = 10.0,
    once: Annotated[bool, typer.Option(help="Check once and exit.")] = False,
) -> None:
    """Run the rollout controller for one endpoint in the foreground (auto rollouts act).

    \b
    Example:
      shipyard deploy watch churn --interval 5
    """
    import time

    from shipyard.config import get_settings
    from shipyard.rollout import Controller
    from shipyard.stores import open_stores

    settings = get_settings()
    controller = Controller(settings, open_stores(settings))
    while True:
        verdict = controller.tick(name)
        if verdict is None:
            typer.echo(f"{name}: no rollout in progress")
            return
        typer.echo(f"{ts(time.time_ns() // 1_000_000)} {name}: {verdict.action}: {verdict.reason}")
        if once or verdict.action in ("promote", "rollback"):
            return
        time.sleep(interval)


# `deploy render` lives in its own module (assets, not endpoints)
from shipyard.cli.deploy_render import render_command  # noqa: E402

app.command("render")(render_command)
