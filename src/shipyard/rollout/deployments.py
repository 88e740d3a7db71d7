"""Deployments: an endpoint's stable version, at most one candidate, and the traffic policy
between them — stored on the endpoint, so every replica converges on it within seconds.

    d = Deployments(open_stores())
    d.canary("churn", "churn@challenger", steps=[5, 25, 50, 100], auto=True)
    d.promote("churn", reason="better AUC live")      # alias champion moves; audited
    d.rollback("churn", reason="error rate doubled")  # all traffic back to stable; audited
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
)
from shipyard.policy import (
    EndpointPolicy,
    LastRollout,
    RolloutPolicy,
    SinglePolicy,
    Thresholds,
    VerdictNote,
    build_policy,
    parse_policy,
    policy_of,
)
from shipyard.registry import Registry, parse_model_uri
from shipyard.stores.clock import now_ms

if TYPE_CHECKING:
    from shipyard.stores import Stores
    from shipyard.stores.records import EndpointRecord

POLICIES = ("single", "canary", "ab", "shadow", "bluegreen")
DEFAULT_THRESHOLDS: dict[str, float | None] = Thresholds().model_dump()


class Deployments:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.registry = Registry(stores)
        self.endpoints = stores.metadata.endpoints

    # -- endpoints -----------------------------------------------------------------------------

    def create(
        self,
        name: str,
        model: str,
        *,
        require_approval: bool = False,
        replace: bool = False,
        reason: str | None = None,
        override_gates: str | None = None,
        if_changed: bool = False,
    ) -> EndpointRecord:
        """An endpoint serving a model URI (an alias follows the alias when it moves). The
        version must be approved when `require_approval`; a pinned version must have passed
        its model's quality gates unless `override_gates` gives a reason (an alias passed
        them when it was set). Rollout candidates are always checked: promotion moves the
        alias to them. `if_changed`: an endpoint that serves this URI already (a rollout of
        it included) stays as it is; nothing is written."""
        _check_endpoint_name(name)
        uri = str(parse_model_uri(model))
        if if_changed:
            with contextlib.suppress(NotFoundError):
                current = self.endpoints.get(name)
                if current.model_uri == uri:
                    return current
        mv = self.registry.resolve(uri)
        if require_approval and mv.approval != "approved":
            raise InvalidArgumentError(
                f"{uri} is version {mv.version}, which is {mv.approval}; approve it first "
                f"(shipyard models approve {mv.name} {mv.version} --reviewer …)",
                field="model",
            )
        if parse_model_uri(uri).alias is None:  # an alias was gated when it was set
            self.registry.require_gates(
                mv.name, mv.version, action=f"deployment to '{name}'", override=override_gates
            )
        return self.endpoints.create(
            name,
            uri,
            actor=self.stores.actor,
            reason=reason,
            replace=replace,
            config=SinglePolicy(require_approval=require_approval).to_config(),
        )

    # -- starting a rollout --------------------------------------------------------------------

    def _start(
        self,
        name: str,
        model: str,
        policy: Literal["canary", "ab", "shadow", "bluegreen"],
        settings: dict[str, Any],
        *,
        auto: bool,
        thresholds: dict[str, float | None] | None,
        reason: str | None,
        override_gates: str | None,
    ) -> EndpointRecord:
        record = self.endpoints.get(name)
        current = policy_of(record)
        if not isinstance(current, SinglePolicy):
            raise AlreadyExistsError(
                f"endpoint '{name}' already runs a {current.kind} of "
                f"{current.candidate_uri}; promote or roll it back first",
                field="model",
            )
        candidate = self.registry.resolve(parse_model_uri(model))
        stable = self.registry.resolve(record.model_uri)
        if candidate.name != stable.name:
            raise InvalidArgumentError(
                f"endpoint '{name}' serves model '{stable.name}' and a rollout compares and "
                f"promotes versions of it; {candidate.name} version {candidate.version} belongs "
                f"to another model (to serve that one: shipyard deploy create {name} --model "
                f"{candidate.name}/{candidate.version} --replace)",
                field="model",
            )
        if current.require_approval and candidate.approval != "approved":
            raise InvalidArgumentError(
                f"endpoint '{name}' serves approved versions only and {candidate.name} version "
                f"{candidate.version} is {candidate.approval}; approve it first "
                f"(shipyard models approve {candidate.name} {candidate.version} --reviewer …)",
                field="model",
            )
        self.registry.require_gates(
            candidate.name,
            candidate.version,
            action=f"{policy} on '{name}'",
            override=override_gates,
        )
        if override_gates:
            settings = {**settings, "gate_override": override_gates}
        if (candidate.name, candidate.version) == (stable.name, stable.version):
            raise InvalidArgumentError(
                f"{model} is version {candidate.version}, which the endpoint already serves",
                field="model",
            )
        bad = sorted(set(thresholds or {}) - set(DEFAULT_THRESHOLDS))
        if bad:
            raise InvalidArgumentError(
                f"unknown threshold(s) {', '.join(bad)}; known: {', '.join(DEFAULT_THRESHOLDS)}",
                field="thresholds",
            )
        rollout = build_policy(
            policy,
            candidate_uri=f"models:/{candidate.name}/{candidate.version}",  # pinned
            candidate_version=candidate.version,
            stable_version=stable.version,
            started_ms=now_ms(),
            auto=auto,
            thresholds={**DEFAULT_THRESHOLDS, **(thresholds or {})},
            require_approval=current.require_approval,
            **settings,
        )
        return self.endpoints.set_policy(
            name,
            policy=rollout.kind,
            config=rollout.to_config(),
            actor=self.stores.actor,
            action=f"rollout.{policy}",
            reason=reason,
            evidence={"stable_version": stable.version, "candidate_version": candidate.version},
            expect_generation=record.generation,
        )

    def canary(
        self,
        name: str,
        model: str,
        *,
        steps: Sequence[float] = (5, 25, 50, 100),
        min_requests: int = 100,
        min_seconds: float = 30.0,
        auto: bool = False,
        thresholds: dict[str, float | None] | None = None,
        reason: str | None = None,
        override_gates: str | None = None,
    ) -> EndpointRecord:
        steps = [float(s) for s in steps]
        if not steps or any(not 0 < s <= 100 for s in steps):
            raise InvalidArgumentError(
                "canary steps are weights in (0, 100], e.g. 5,25,50,100", field="steps"
            )
        if any(b <= a for a, b in itertools.pairwise(steps)) or steps[-1] != 100:
            raise InvalidArgumentError("canary steps must increase and end at 100", field="steps")
        _positive(min_requests, "min_requests")
        return self._start(
            name,
            model,
            "canary",
            {
                "steps": steps,
                "step": 0,
                "weight": steps[0],
                "step_started_ms": now_ms(),
                "min_requests": int(min_requests),
                "min_seconds": float(min_seconds),
            },
            auto=auto,
            thresholds=thresholds,
            reason=reason,
            override_gates=override_gates,
        )

    def ab(
        self,
        name: str,
        model: str,
        *,
        split: float = 50.0,
        min_samples: int = 1000,
        alpha: float = 0.05,
        higher_is_better: bool = True,
        outcome_source: Literal["outcome", "label"] = "outcome",
        auto: bool = False,
        reason: str | None = None,
        override_gates: str | None = None,
    ) -> EndpointRecord:
        if not 0 < split < 100:
            raise InvalidArgumentError("split is the candidate's share in (0, 100)", field="split")
        if not 0 < alpha < 1:
            raise InvalidArgumentError("alpha must be between 0 and 1", field="alpha")
        _positive(min_samples, "min_samples")
        return self._start(
            name,
            model,
            "ab",
            {
                "split": float(split),
                "min_samples": int(min_samples),
                "alpha": float(alpha),
                "higher_is_better": higher_is_better,
                "outcome_source": outcome_source,
            },
            auto=auto,
            thresholds=None,
            reason=reason,
            override_gates=override_gates,
        )

    def shadow(
        self,
        name: str,
        model: str,
        *,
        sample: float = 1.0,
        min_requests: int = 200,
        min_seconds: float = 0.0,
        min_agreement: float = 0.95,
        agreement_rtol: float = 0.05,
        agreement_atol: float = 1e-8,
        auto: bool = False,
        thresholds: dict[str, float | None] | None = None,
        reason: str | None = None,
        override_gates: str | None = None,
    ) -> EndpointRecord:
        if not 0 < sample <= 1:
            raise InvalidArgumentError(
                "sample is the share of requests shadowed, in (0, 1]", field="sample"
            )
        _positive(min_requests, "min_requests")
        return self._start(
            name,
            model,
            "shadow",
            {
                "sample": float(sample),
                "min_requests": int(min_requests),
                "min_seconds": float(min_seconds),
                "min_agreement": float(min_agreement),
                "agreement_rtol": float(agreement_rtol),
                "agreement_atol": float(agreement_atol),
            },
            auto=auto,
            thresholds=thresholds,
            reason=reason,
            override_gates=override_gates,
        )

    def bluegreen(
        self,
        name: str,
        model: str,
        *,
        keep_seconds: float = 600.0,
        auto: bool = False,
        reason: str | None = None,
        override_gates: str | None = None,
    ) -> EndpointRecord:
        if keep_seconds < 0:
            raise InvalidArgumentError("keep_seconds must not be negative", field="keep_seconds")
        return self._start(
            name,
            model,
            "bluegreen",
            {
                "keep_seconds": float(keep_seconds),
                "switched": False,
            },
            auto=auto,
            thresholds=None,
            reason=reason,
            override_gates=override_gates,
        )

    # -- moving a rollout on -------------------------------------------------------------------

    def _active(self, name: str) -> tuple[EndpointRecord, RolloutPolicy]:
        record = self.endpoints.get(name)
        policy = policy_of(record)
        if isinstance(policy, SinglePolicy):
            raise ConflictError(f"endpoint '{name}' has no rollout in progress", field="name")
        return record, policy

    def advance(
        self, name: str, *, evidence: Any = None, reason: str | None = None
    ) -> EndpointRecord:
        """Next canary step (the last step promotes)."""
        record, policy = self._active(name)
        if policy.kind != "canary":
            raise InvalidArgumentError(f"endpoint '{name}' runs a {policy.kind}, not a canary")
        steps, step = policy.steps, policy.step + 1
        if step >= len(steps):
            return self.promote(name, reason=reason or "last canary step passed", evidence=evidence)
        moved = _changed(policy, step=step, weight=steps[step], step_started_ms=now_ms())
        return self.endpoints.set_policy(
            name,
            policy="canary",
            config=moved.to_config(),
            actor=self.stores.actor,
            action="rollout.step",
            reason=reason,
            evidence=evidence,
            expect_generation=record.generation,
        )

    def switch(self, name: str, *, reason: str | None = None) -> EndpointRecord:
        """Blue-green: send all traffic to the (loaded, warmed) candidate at once."""
        record, policy = self._active(name)
        if policy.kind != "bluegreen":
            raise InvalidArgumentError(f"endpoint '{name}' runs a {policy.kind}, not blue-green")
        switched = _changed(policy, switched=True, switched_ms=now_ms())
        return self.endpoints.set_policy(
            name,
            policy="bluegreen",
            config=switched.to_config(),
            actor=self.stores.actor,
            action="rollout.switch",
            reason=reason,
            expect_generation=record.generation,
        )

    def promote(
        self, name: str, *, reason: str | None = None, evidence: Any = None
    ) -> EndpointRecord:
        """The candidate becomes stable: the alias the endpoint follows moves to it (or the
        endpoint is pinned to it); the rollout ends."""
        record, policy = self._active(name)
        ref = parse_model_uri(record.model_uri)
        version = policy.candidate_version
        why = reason or "promoted"
        model_uri = None
        if ref.alias is not None and ref.name is not None:
            self.registry.set_alias(
                ref.name,
                ref.alias,
                version,
                reason=f"{name}: {why}",
                override_gates=policy.gate_override,  # given when it started
            )
        else:
            model_uri = policy.candidate_uri
        return self.endpoints.set_policy(
            name,
            policy="single",
            config=_ended(policy, "promoted", why, evidence),
            actor=self.stores.actor,
            action="rollout.promote",
            reason=why,
            evidence=evidence,
            model_uri=model_uri,
        )

    def rollback(
        self, name: str, *, reason: str | None = None, evidence: Any = None
    ) -> EndpointRecord:
        """All traffic back to stable; the alias is untouched; the reason is recorded."""
        _, policy = self._active(name)
        why = reason or "rolled back"
        return self.endpoints.set_policy(
            name,
            policy="single",
            config=_ended(policy, "rolled back", why, evidence),
            actor=self.stores.actor,
            action="rollout.rollback",
            reason=why,
            evidence=evidence,
        )

    def record_verdict(self, name: str, verdict: dict[str, Any]) -> None:
        """Keep the controller's latest 'hold' verdict on the endpoint (for `deploy status`);
        audited only when it says something new."""
        record = self.endpoints.get(name)
        policy = policy_of(record)
        note = VerdictNote.model_validate(verdict)
        last = getattr(policy, "verdict", None)
        if last is not None and (last.action, last.reason) == (note.action, note.reason):
            return
        self.endpoints.set_policy(
            name,
            policy=record.policy,
            config=_changed(policy, verdict=note).to_config(),
            actor=self.stores.actor,
            action="rollout.verdict",
            reason=verdict["reason"],
            evidence=verdict.get("evidence"),
            expect_generation=record.generation,
        )

    def history(self, name: str, limit: int = 100) -> list[Any]:
        self.endpoints.get(name)
        return [
            e
            for e in self.stores.metadata.audit.list(
                subject_type="endpoint", subject_prefix=name, limit=limit
            )
            if e.subject == name
        ]

    # -- reading and removing endpoints --------------------------------------------------------

    def get(self, name: str) -> EndpointRecord:
        """One endpoint (an unknown name fails with a suggestion)."""
        return self.endpoints.get(name)

    def list(self) -> list[EndpointRecord]:
        return self.endpoints.list()

    def delete(self, name: str, *, reason: str | None = None) -> None:
        """Remove an endpoint (audited); running servers stop serving it within seconds."""
        self.endpoints.delete(name, actor=self.stores.actor, reason=reason)


def _changed(policy: EndpointPolicy, **changes: Any) -> EndpointPolicy:
    """The policy with some fields changed, validated again."""
    return parse_policy(policy.kind, {**dict(policy), **changes})


def _ended(policy: RolloutPolicy, outcome: str, reason: str, evidence: Any) -> dict[str, Any]:
    """The single policy left when a rollout ends (the endpoint's lasting settings kept)."""
    last = LastRollout(
        policy=policy.kind,
        outcome=outcome,
        reason=reason,
        candidate_version=policy.candidate_version,
        stable_version=policy.stable_version,
        ended_ms=now_ms(),
        evidence=evidence,
    )
    return SinglePolicy(require_approval=policy.require_approval, last_rollout=last).to_config()


def _positive(value: float, field: str) -> None:
    if value < 1:
        raise InvalidArgumentError(f"{field} must be at least 1", field=field)


def _check_endpoint_name(name: str) -> None:
    """An endpoint's name appears in URLs and in the prediction log's folder names: the same
    rule as POST /api/endpoints, for every caller (the CLI too)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}", name or ""):
        raise InvalidArgumentError(
            f"endpoint name {name!r} is not valid: 1-256 letters, digits, '_', '-', '.', "
            "starting with a letter or digit",
            field="name",
        )
