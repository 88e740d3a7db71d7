"""The rollout controller: judges the candidate on live evidence and acts.

A candidate is supposed to differ from stable, so the verdict rests on what makes a model
worse for its callers: its own error rate (500 and 504, never a caller's bad input:
`analysis.py`), p99 latency, and — where late labels came back through feedback — live
quality (accuracy or MAE against stable's on the same kind of rows). A shift in the
distribution of its predictions is reported as a warning in the evidence, and rolls back only
when the policy sets `max_prediction_shift` (opt-in).

Canary: no verdict before the step's minimums — `min_requests` candidate requests and
`min_seconds` — are both met; then a regression rolls back, otherwise the step advances and
the last step promotes. The one exception is a candidate that is broken rather than different
(at least 10 of its own failures and half of what it was asked, more than stable's rate plus
the allowed delta): it is rolled back at once, since waiting for the minimums would only
serve more failures to the callers the step routes to it.
A/B: a fixed-horizon test — nothing is decided before both arms have `min_samples` outcomes
(no peeking); then one two-proportion z-test (0/1 outcomes) or Welch t-test: significantly
better promotes, anything else rolls back ("no evidence the candidate is better").
Shadow: the same thresholds and minimums as a canary (`min_requests`, `min_seconds`; broken
rolls back at once); then a regression rolls back, and an agreement (numbers within the
policy's tolerance, labels equal) of at least `min_agreement` promotes.
Blue-green: switches at once — safe, because each replica sends traffic to the candidate only
once it has loaded and warmed it, and then all of it — promotes after `keep_seconds`, rolls
back on a regression while the previous version is still loaded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from shipyard.policy import (
    AbPolicy,
    BlueGreenPolicy,
    CanaryPolicy,
    ShadowPolicy,
    SinglePolicy,
    Thresholds,
    policy_of,
)
from shipyard.rollout.analysis import Analysis, VariantStats, ab_test, analyze
from shipyard.rollout.deployments import Deployments

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.stores import Stores
    from shipyard.stores.records import EndpointRecord

log = logging.getLogger("shipyard.rollout")

MIN_LATENCY_REQUESTS = 50  # below this, a p99 is one unlucky request: no latency verdict
MIN_QUALITY_LABELS = 50  # labelled rows each side needs before quality counts
# a candidate failing this plainly is broken, not different: rolled back before the minimums
BROKEN_ERRORS = 10
BROKEN_ERROR_RATE = 0.5
WARN_PREDICTION_SHIFT = 0.2  # an effect size worth a warning when the shift is not a threshold


@dataclass
class Verdict:
    action: str  # hold | advance | promote | rollback | switch
    reason: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _errors(stable: VariantStats, cand: VariantStats, t: Thresholds, other: str) -> str | None:
    if (
        cand.requests
        and cand.errors >= 3
        and (cand.error_rate > stable.error_rate + t.max_error_rate_delta)
    ):
        return (
            f"{other} error rate {cand.error_rate:.1%} vs stable {stable.error_rate:.1%} "
            f"(limit +{t.max_error_rate_delta:.1%})"
        )
    return None


def _broken(stable: VariantStats, cand: VariantStats, t: Thresholds, other: str) -> str | None:
    """The error regression of a candidate that fails outright (see the module docstring)."""
    if cand.errors >= BROKEN_ERRORS and cand.error_rate >= BROKEN_ERROR_RATE:
        return _errors(stable, cand, t, other)
    return None


def _latency(stable: VariantStats, cand: VariantStats, t: Thresholds, other: str) -> str | None:
    if (
        cand.requests >= MIN_LATENCY_REQUESTS
        and stable.requests >= MIN_LATENCY_REQUESTS
        and cand.p99_ms is not None
        and stable.p99_ms is not None
        and cand.p99_ms > stable.p99_ms * t.max_p99_ratio + t.p99_slack_ms
    ):
        return (
            f"{other} p99 latency {cand.p99_ms:.1f} ms vs stable {stable.p99_ms:.1f} ms "
            f"(limit x{t.max_p99_ratio:g} + {t.p99_slack_ms:g} ms)"
        )
    return None


def _quality(analysis: Analysis, t: Thresholds, other: str) -> str | None:
    q = analysis.quality or {}
    s, c = q.get("stable") or {}, q.get(other) or {}
    if min(s.get("n", 0), c.get("n", 0)) < MIN_QUALITY_LABELS:
        return None
    if q.get("task") == "classification" and c["accuracy"] < s["accuracy"] - t.max_quality_drop:
        return (
            f"{other} live accuracy {c['accuracy']:.1%} vs stable {s['accuracy']:.1%} "
            f"on late labels (limit -{t.max_quality_drop:.1%})"
        )
    if q.get("task") == "regression" and c["mae"] > s["mae"] * (1 + t.max_quality_drop):
        return (
            f"{other} live MAE {c['mae']:.4g} vs stable {s['mae']:.4g} "
            f"on late labels (limit +{t.max_quality_drop:.0%})"
        )
    return None


def _shift(analysis: Analysis, t: Thresholds, other: str) -> tuple[str | None, str | None]:
    """(a regression, a warning) from the prediction-distribution test: a regression only
    when the policy opted in with `max_prediction_shift`, else a warning when it is large."""
    pt = analysis.prediction_test
    if pt is None or pt["p_value"] >= t.prediction_alpha or pt["effect_size"] is None:
        return None, None
    limit = t.max_prediction_shift
    text = (
        f"{other} predictions differ from stable: {pt['test']} p={pt['p_value']:.2g}, "
        f"{pt['effect_metric']}={pt['effect_size']:.3f}"
    )
    if limit is not None:
        return (f"{text} (limit {limit:g})" if pt["effect_size"] >= limit else None), None
    if pt["effect_size"] >= WARN_PREDICTION_SHIFT:
        return None, f"{text} (reported only: set max_prediction_shift to act on it)"
    return None, None


def _regression(
    stable: VariantStats, cand: VariantStats, t: Thresholds, analysis: Analysis, other: str
) -> str | None:
    return (
        _errors(stable, cand, t, other)
        or _latency(stable, cand, t, other)
        or _quality(analysis, t, other)
        or _shift(analysis, t, other)[0]
    )


def decide(record: EndpointRecord, analysis: Analysis, now_ms: int) -> Verdict:
    """What the controller would do now with the endpoint's rollout, on `analysis` (the live
    evidence) at time `now_ms`: a pure function of its arguments."""
    policy = policy_of(record)
    if isinstance(policy, SinglePolicy):
        return Verdict("hold", "no rollout", analysis.to_dict())
    other = "shadow" if policy.kind == "shadow" else "candidate"
    stable = analysis.variants.get("stable", VariantStats())
    cand = analysis.variants.get(other, VariantStats())
    t = policy.thresholds
    warning = _shift(analysis, t, other)[1]
    evidence = analysis.to_dict()
    if warning is not None:
        evidence["warnings"] = [*evidence.get("warnings", []), warning]
    if isinstance(policy, CanaryPolicy | ShadowPolicy):
        broken = _broken(stable, cand, t, other)
        if broken is not None:
            return Verdict("rollback", broken, evidence)
        waiting = _waiting(policy, cand, now_ms)
        if waiting is not None:
            return Verdict("hold", waiting, evidence)
    if policy.kind in ("canary", "shadow", "bluegreen"):
        why = _regression(stable, cand, t, analysis, other)
        if why is not None:
            return Verdict("rollback", why, evidence)
    if isinstance(policy, CanaryPolicy):
        return _decide_canary(policy, stable, cand, evidence)
    if isinstance(policy, AbPolicy):
        return _decide_ab(policy, analysis, evidence)
    if isinstance(policy, ShadowPolicy):
        return _decide_shadow(policy, cand, analysis, evidence)
    return _decide_bluegreen(policy, evidence, now_ms)


def _waiting(c: CanaryPolicy | ShadowPolicy, cand: VariantStats, now_ms: int) -> str | None:
    """Why no verdict may be given yet: the step's (or shadow's) minimums are not met."""
    if isinstance(c, CanaryPolicy):
        elapsed = (now_ms - c.step_started_ms) / 1000
        if cand.requests < c.min_requests or elapsed < c.min_seconds:
            return (
                f"step {c.step + 1}/{len(c.steps)} at {c.weight:g}%: "
                f"{cand.requests}/{c.min_requests} candidate requests, "
                f"{elapsed:.0f}/{c.min_seconds:g} s"
            )
        return None
    elapsed = (now_ms - c.started_ms) / 1000
    if cand.requests < c.min_requests or elapsed < c.min_seconds:
        seconds = f", {elapsed:.0f}/{c.min_seconds:g} s" if c.min_seconds else ""
        return f"{cand.requests}/{c.min_requests} shadowed requests{seconds}"
    return None


def _decide_canary(
    c: CanaryPolicy, stable: VariantStats, cand: VariantStats, evidence: dict[str, Any]
) -> Verdict:
    last = c.step + 1 >= len(c.steps)
    return Verdict(
        "promote" if last else "advance",
        f"step {c.step + 1} at {c.weight:g}% passed: {cand.requests} "
        f"candidate requests, error rate {cand.error_rate:.1%} "
        f"(stable {stable.error_rate:.1%})",
        evidence,
    )


def _decide_ab(c: AbPolicy, analysis: Analysis, evidence: dict[str, Any]) -> Verdict:
    outcomes = analysis.outcomes or {"stable": [], "candidate": []}
    n_s, n_c = len(outcomes["stable"]), len(outcomes["candidate"])
    if min(n_s, n_c) < c.min_samples:
        return Verdict(
            "hold",
            f"fixed horizon: {n_s} stable and {n_c} candidate outcomes "
            f"of {c.min_samples} each before any decision",
            evidence,
        )
    test = ab_test(outcomes["stable"], outcomes["candidate"])
    evidence["ab_test"] = test
    better = test["lift"] > 0 if c.higher_is_better else test["lift"] < 0
    if test["p_value"] < c.alpha and better:
        return Verdict(
            "promote",
            f"{test['test']}: candidate {test['candidate_mean']:.4g} vs "
            f"stable {test['stable_mean']:.4g}, p={test['p_value']:.3g}",
            evidence,
        )
    return Verdict(
        "rollback",
        f"no evidence the candidate is better at the planned horizon "
        f"({test['test']} p={test['p_value']:.3g}, lift {test['lift']:+.4g})",
        evidence,
    )


def _decide_shadow(
    c: ShadowPolicy, cand: VariantStats, analysis: Analysis, evidence: dict[str, Any]
) -> Verdict:
    if analysis.agreement is None:
        return Verdict(
            "hold", f"{cand.requests}/{c.min_requests} shadowed requests, none paired", evidence
        )
    if analysis.agreement >= c.min_agreement:
        return Verdict(
            "promote",
            f"shadow agreed on {analysis.agreement:.1%} of "
            f"{cand.requests} requests (needed {c.min_agreement:.0%})",
            evidence,
        )
    return Verdict(
        "hold",
        f"shadow agreement {analysis.agreement:.1%} is below "
        f"{c.min_agreement:.0%}; promote or roll back by hand",
        evidence,
    )


def _decide_bluegreen(c: BlueGreenPolicy, evidence: dict[str, Any], now_ms: int) -> Verdict:
    if not c.switched:
        return Verdict("switch", "the candidate is loaded: switching all traffic", evidence)
    held = (now_ms - (c.switched_ms if c.switched_ms is not None else now_ms)) / 1000
    if held >= c.keep_seconds:
        return Verdict("promote", f"{held:.0f} s on the new version without a regression", evidence)
    return Verdict(
        "hold",
        f"{held:.0f}/{c.keep_seconds:g} s before the previous version is released",
        evidence,
    )


class Controller:
    """Runs `decide` for endpoints with a rollout and carries out the verdicts of automatic
    ones (`auto`); manual ones only get their verdict recorded."""

    def __init__(self, settings: Settings, stores: Stores) -> None:
        self.settings = settings
        self.deployments = Deployments(stores)

    def tick(self, name: str) -> Verdict | None:
        record = self.deployments.endpoints.get(name)
        if record.policy == "single":
            return None
        now = time.time_ns() // 1_000_000
        verdict = decide(record, analyze(self.settings, record, now_ms=now), now)
        summary = {"action": verdict.action, "reason": verdict.reason, "at_ms": now}
        if not getattr(policy_of(record), "auto", False) or verdict.action == "hold":
            self.deployments.record_verdict(name, {**summary, "evidence": _brief(verdict)})
            return verdict
        d = self.deployments
        if verdict.action == "advance":
            d.advance(name, evidence=_brief(verdict), reason=verdict.reason)
        elif verdict.action == "promote":
            d.promote(name, reason=verdict.reason, evidence=_brief(verdict))
        elif verdict.action == "rollback":
            d.rollback(name, reason=verdict.reason, evidence=_brief(verdict))
        elif verdict.action == "switch":
            d.switch(name, reason=verdict.reason)
        log.info("rollout %s: %s (%s)", name, verdict.action, verdict.reason)
        return verdict

    def tick_all(self) -> dict[str, Verdict]:
        out = {}
        for record in self.deployments.endpoints.list():
            if record.policy != "single":
                try:
                    verdict = self.tick(record.name)
                except Exception:  # one endpoint's trouble must not stop the others
                    log.exception("rollout controller failed on %s", record.name)
                    continue
                if verdict is not None:
                    out[record.name] = verdict
        return out


def _brief(verdict: Verdict) -> dict[str, Any]:
    """The numbers that justified a verdict, without bulky parts."""
    e = verdict.evidence
    return {
        "variants": e.get("variants"),
        "prediction_test": e.get("prediction_test"),
        "agreement": e.get("agreement"),
        "quality": e.get("quality"),
        "warnings": e.get("warnings") or None,
        "ab_test": e.get("ab_test"),
    }


def status(settings: Settings, stores: Stores, name: str) -> dict[str, Any]:
    """An endpoint's rollout now: policy, weights, per-variant live numbers, what the
    controller would decide, and its last recorded verdict."""
    record = stores.metadata.endpoints.get(name)
    config = policy_of(record).to_config()
    doc: dict[str, Any] = {
        "endpoint": name,
        "policy": record.policy,
        "model_uri": record.model_uri,
        "generation": record.generation,
        "config": {k: v for k, v in config.items() if k != "verdict"},
        "last_verdict": config.get("verdict"),
    }
    if record.policy != "single":
        now = time.time_ns() // 1_000_000
        analysis = analyze(settings, record, now_ms=now)
        verdict = decide(record, analysis, now)
        doc["live"] = analysis.to_dict()
        doc["would_decide"] = {
            "action": verdict.action,
            "reason": verdict.reason,
            "warnings": verdict.evidence.get("warnings") or [],
        }
    return doc
