"""Every verdict of `decide(record, analysis, now_ms)`, with time and evidence as arguments."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.policy import Thresholds
from shipyard.rollout.analysis import Analysis, VariantStats
from shipyard.rollout.controller import decide
from shipyard.stores.records import EndpointRecord

T0 = 1_700_000_000_000  # when the rollout (and its current step) started, in ms
ROLLOUT = {
    "candidate_uri": "models:/churn/2",
    "candidate_version": 2,
    "stable_version": 1,
    "started_ms": T0,
    "thresholds": Thresholds().model_dump(),
}
SETTINGS: dict[str, dict[str, Any]] = {
    "canary": {
        "steps": [5.0, 25.0, 100.0],
        "step": 0,
        "weight": 5.0,
        "step_started_ms": T0,
        "min_requests": 100,
        "min_seconds": 30.0,
    },
    "ab": {"split": 50.0, "min_samples": 100, "alpha": 0.05, "higher_is_better": True},
    "shadow": {"sample": 1.0, "min_requests": 200, "min_agreement": 0.95},
    "bluegreen": {"keep_seconds": 600.0, "switched": False},
}


def record(kind: str, **changes: Any) -> EndpointRecord:
    config = {**ROLLOUT, **SETTINGS[kind], **changes} if kind != "single" else changes
    return EndpointRecord("churn", "models:/churn@champion", kind, config, 3, T0, T0)


def seen(
    candidate: int = 0,
    stable: int = 1000,
    *,
    errors: int = 0,
    p99_ms: float = 10.0,
    cand_p99_ms: float = 10.0,
    other: str = "candidate",
    **fields: Any,
) -> Analysis:
    variants = {
        "stable": VariantStats(requests=stable, p99_ms=p99_ms),
        other: VariantStats(
            requests=candidate,
            errors=errors,
            error_rate=errors / candidate if candidate else 0.0,
            p99_ms=cand_p99_ms,
        ),
    }
    return Analysis(T0, variants, **fields)


def at(seconds: float) -> int:
    return T0 + int(seconds * 1000)


# -- canary ------------------------------------------------------------------------------------


def test_canary_holds_until_it_has_min_requests() -> None:
    v = decide(record("canary"), seen(candidate=99), at(60))
    assert v.action == "hold"
    assert v.reason == "step 1/3 at 5%: 99/100 candidate requests, 60/30 s"


def test_canary_holds_until_the_step_lasted_min_seconds() -> None:
    v = decide(record("canary"), seen(candidate=500), at(29.9))
    assert v.action == "hold" and "500/100 candidate requests, 30/30 s" in v.reason
    # the step's own start counts, not the rollout's
    later_step = record("canary", step=1, weight=25.0, step_started_ms=at(100))
    assert decide(later_step, seen(candidate=500), at(120)).action == "hold"
    assert decide(later_step, seen(candidate=500), at(130)).action == "advance"


def test_canary_steps_once_both_minimums_are_met() -> None:
    v = decide(record("canary"), seen(candidate=100), at(30))
    assert v.action == "advance"
    assert v.reason.startswith("step 1 at 5% passed: 100 candidate requests, error rate 0.0%")
    assert v.evidence["variants"]["candidate"]["requests"] == 100


def test_canary_last_step_promotes() -> None:
    last = record("canary", step=2, weight=100.0)
    assert decide(last, seen(candidate=100), at(30)).action == "promote"


def test_no_verdict_before_the_steps_minimums_even_on_a_few_errors() -> None:
    v = decide(record("canary"), seen(candidate=10, errors=3), at(1))
    assert v.action == "hold" and v.reason == "step 1/3 at 5%: 10/100 candidate requests, 1/30 s"
    # the same error rate once the step has its minimums is a regression
    v = decide(record("canary"), seen(candidate=100, errors=30), at(30))
    assert v.action == "rollback"
    assert v.reason == "candidate error rate 30.0% vs stable 0.0% (limit +2.0%)"


def test_a_broken_candidate_is_rolled_back_before_the_minimums() -> None:
    v = decide(record("canary"), seen(candidate=12, errors=10), at(1))
    assert v.action == "rollback" and v.reason.startswith("candidate error rate 83.3%")
    # nine failures, or ten that are not half of what it answered, wait for the minimums
    assert decide(record("canary"), seen(candidate=9, errors=9), at(1)).action == "hold"
    assert decide(record("canary"), seen(candidate=21, errors=10), at(1)).action == "hold"


def test_two_errors_are_not_yet_a_regression() -> None:
    assert decide(record("canary"), seen(candidate=100, errors=2), at(30)).action == "advance"


def test_canary_rolls_back_on_latency_only_with_enough_requests() -> None:
    def slow(requests: int, cand_p99_ms: float = 21.0) -> Analysis:  # limit: 10 x 1.5 + 5
        return seen(candidate=requests, p99_ms=10.0, cand_p99_ms=cand_p99_ms)

    few = record("canary", min_requests=10)
    assert decide(few, slow(49), at(30)).action == "advance"
    v = decide(few, slow(50), at(30))
    assert v.action == "rollback" and "p99 latency 21.0 ms vs stable 10.0 ms" in v.reason
    assert decide(few, slow(50, cand_p99_ms=20.0), at(30)).action == "advance"
    assert decide(few, slow(50), at(29)).action == "hold"  # not before the step's minimums


SHIFT = {"test": "ks", "p_value": 0.001, "effect_size": 0.9, "effect_metric": "wasserstein_std"}


def test_a_prediction_shift_is_only_a_warning_by_default() -> None:
    """A candidate is supposed to predict differently: by default the shift is reported in
    the evidence and the step passes on errors and latency (issue #15)."""
    early = decide(record("canary"), seen(candidate=40, prediction_test=SHIFT), at(20))
    assert early.action == "hold"
    v = decide(record("canary"), seen(candidate=100, prediction_test=SHIFT), at(30))
    assert v.action == "advance"
    assert v.evidence["warnings"] == [
        "candidate predictions differ from stable: ks p=0.001, wasserstein_std=0.900 "
        "(reported only: set max_prediction_shift to act on it)"
    ]


def test_a_prediction_shift_rolls_back_when_the_policy_opts_in() -> None:
    strict = {**Thresholds().model_dump(), "max_prediction_shift": 0.2}
    v = decide(
        record("canary", thresholds=strict), seen(candidate=100, prediction_test=SHIFT), at(30)
    )
    assert v.action == "rollback" and "predictions differ from stable" in v.reason
    assert "limit 0.2" in v.reason and not v.evidence["warnings"]
    small = {**SHIFT, "effect_size": 0.1}  # significant, but too small to matter
    v = decide(
        record("canary", thresholds=strict), seen(candidate=100, prediction_test=small), at(30)
    )
    assert v.action == "advance"


def test_live_quality_from_labels_rolls_back_a_worse_candidate() -> None:
    def quality(task: str, stable: dict[str, float], cand: dict[str, float]) -> Analysis:
        return seen(
            candidate=100,
            quality={"task": task, "stable": {"n": 60, **stable}, "candidate": {"n": 60, **cand}},
        )

    worse = quality("classification", {"accuracy": 0.9}, {"accuracy": 0.8})
    v = decide(record("canary"), worse, at(30))
    assert v.action == "rollback"
    assert v.reason == "candidate live accuracy 80.0% vs stable 90.0% on late labels (limit -5.0%)"
    close = quality("classification", {"accuracy": 0.9}, {"accuracy": 0.86})
    assert decide(record("canary"), close, at(30)).action == "advance"
    v = decide(record("canary"), quality("regression", {"mae": 40.0}, {"mae": 50.0}), at(30))
    assert v.action == "rollback" and "live MAE 50 vs stable 40" in v.reason
    better = quality("regression", {"mae": 40.0}, {"mae": 41.0})
    assert decide(record("canary"), better, at(30)).action == "advance"


def test_thresholds_come_from_the_policy() -> None:
    loose = {**Thresholds().model_dump(), "max_error_rate_delta": 0.5}
    errors = seen(candidate=100, errors=30)
    assert decide(record("canary"), errors, at(30)).action == "rollback"
    assert decide(record("canary", thresholds=loose), errors, at(30)).action == "advance"


# -- A/B ---------------------------------------------------------------------------------------


def outcomes(stable: list[float], candidate: list[float]) -> Analysis:
    return seen(outcomes={"stable": stable, "candidate": candidate})


def test_ab_holds_before_the_fixed_horizon() -> None:
    v = decide(record("ab"), outcomes([1.0] * 500, [1.0] * 99), at(3600))
    assert v.action == "hold"
    assert v.reason.startswith("fixed horizon: 500 stable and 99 candidate outcomes of 100")
    assert decide(record("ab"), seen(), at(0)).action == "hold"  # no outcomes at all


def test_ab_promotes_a_significantly_better_candidate() -> None:
    v = decide(record("ab"), outcomes([1.0] * 30 + [0.0] * 70, [1.0] * 70 + [0.0] * 30), at(0))
    assert v.action == "promote" and v.reason.startswith("two_proportion_z: candidate 0.7")
    assert v.evidence["ab_test"]["lift"] == pytest.approx(0.4)


def test_ab_rolls_back_without_evidence_or_when_worse() -> None:
    same = outcomes([1.0] * 50 + [0.0] * 50, [1.0] * 51 + [0.0] * 49)
    v = decide(record("ab"), same, at(0))
    assert v.action == "rollback" and "no evidence the candidate is better" in v.reason
    better = outcomes([1.0] * 30 + [0.0] * 70, [1.0] * 70 + [0.0] * 30)
    lower_wins = record("ab", higher_is_better=False)
    assert decide(lower_wins, better, at(0)).action == "rollback"


# -- shadow ------------------------------------------------------------------------------------


def test_shadow_holds_until_min_requests_with_agreement() -> None:
    v = decide(record("shadow"), seen(candidate=199, other="shadow", agreement=1.0), at(0))
    assert v.action == "hold" and v.reason == "199/200 shadowed requests"
    no_pairs = seen(candidate=500, other="shadow")
    assert decide(record("shadow"), no_pairs, at(0)).action == "hold"


def test_shadow_promotes_on_agreement_and_holds_below_it() -> None:
    v = decide(record("shadow"), seen(candidate=200, other="shadow", agreement=0.95), at(0))
    assert v.action == "promote" and "agreed on 95.0% of 200 requests" in v.reason
    v = decide(record("shadow"), seen(candidate=200, other="shadow", agreement=0.9), at(0))
    assert v.action == "hold" and "promote or roll back by hand" in v.reason


def test_shadow_rolls_back_on_its_own_errors_after_its_minimums() -> None:
    assert decide(record("shadow"), seen(candidate=20, errors=5, other="shadow"), at(0)).action == (
        "hold"
    )
    v = decide(record("shadow"), seen(candidate=200, errors=50, other="shadow"), at(0))
    assert v.action == "rollback" and v.reason.startswith("shadow error rate 25.0%")


def test_shadow_is_held_to_the_canarys_thresholds_and_minimums() -> None:
    slow = seen(candidate=200, other="shadow", agreement=1.0, p99_ms=10.0, cand_p99_ms=21.0)
    v = decide(record("shadow"), slow, at(0))
    assert v.action == "rollback" and "shadow p99 latency 21.0 ms" in v.reason
    loose = {**Thresholds().model_dump(), "max_p99_ratio": 3.0}
    assert decide(record("shadow", thresholds=loose), slow, at(0)).action == "promote"
    waits = record("shadow", thresholds=loose, min_seconds=60.0)
    v = decide(waits, slow, at(59))
    assert v.action == "hold" and v.reason == "200/200 shadowed requests, 59/60 s"
    assert decide(waits, slow, at(60)).action == "promote"


# -- blue-green --------------------------------------------------------------------------------


def test_bluegreen_switches_then_keeps_then_promotes() -> None:
    assert decide(record("bluegreen"), seen(), at(0)).action == "switch"
    switched = record("bluegreen", switched=True, switched_ms=at(10))
    v = decide(switched, seen(candidate=10), at(609))
    assert v.action == "hold" and v.reason == "599/600 s before the previous version is released"
    v = decide(switched, seen(candidate=10), at(610))
    assert v.action == "promote" and v.reason.startswith("600 s on the new version")


def test_bluegreen_rolls_back_on_a_regression_while_blue_is_kept() -> None:
    switched = record("bluegreen", switched=True, switched_ms=at(10))
    assert decide(switched, seen(candidate=10, errors=4), at(20)).action == "rollback"


def test_no_rollout_holds() -> None:
    v = decide(record("single"), seen(), at(0))
    assert (v.action, v.reason) == ("hold", "no rollout")
