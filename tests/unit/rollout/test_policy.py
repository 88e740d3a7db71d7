"""An endpoint's policy is validated by kind; bad input names the field."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.errors import InvalidArgumentError, StoreError
from shipyard.policy import (
    AbPolicy,
    BlueGreenPolicy,
    CanaryPolicy,
    ShadowPolicy,
    SinglePolicy,
    Traffic,
    parse_policy,
    policy_of,
)
from shipyard.stores.records import EndpointRecord

ROLLOUT = {
    "candidate_uri": "models:/churn/2",
    "candidate_version": 2,
    "stable_version": 1,
    "started_ms": 1,
}
CANARY = {**ROLLOUT, "steps": [5, 25, 100], "weight": 5, "step_started_ms": 1}


def invalid(kind: str, config: dict[str, Any]) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as info:
        parse_policy(kind, config)
    return info.value


def test_each_kind_parses_to_its_model() -> None:
    assert isinstance(parse_policy("single", {}), SinglePolicy)
    canary = parse_policy("canary", CANARY)
    assert isinstance(canary, CanaryPolicy)
    assert (canary.weight, canary.steps, canary.step, canary.min_requests) == (
        5.0,
        [5.0, 25.0, 100.0],
        0,
        100,
    )
    assert canary.thresholds.max_p99_ratio == 1.5 and canary.auto is False
    assert isinstance(parse_policy("ab", ROLLOUT), AbPolicy)
    assert isinstance(parse_policy("shadow", ROLLOUT), ShadowPolicy)
    assert isinstance(parse_policy("bluegreen", ROLLOUT), BlueGreenPolicy)


def test_the_stored_shape_round_trips() -> None:
    canary = parse_policy("canary", {**CANARY, "require_approval": True})
    config = canary.to_config()
    assert "kind" not in config and config["require_approval"] is True
    assert "gate_override" not in config and "verdict" not in config  # unset: not stored
    assert parse_policy("canary", config) == canary
    assert parse_policy("single", {}).to_config() == {}  # require_approval only when set


@pytest.mark.parametrize(
    ("kind", "config", "field", "words"),
    [
        ("canary", {**CANARY, "steps": [5, 50]}, "steps", "must increase and end at 100"),
        ("canary", {**CANARY, "steps": []}, "steps", "weights in (0, 100]"),
        ("canary", {**CANARY, "steps": [0, 100]}, "steps", "weights in (0, 100]"),
        ("canary", {**CANARY, "min_requests": 0}, "min_requests", "greater than or equal to 1"),
        ("canary", {**CANARY, "weight": "lots"}, "weight", "valid number"),
        ("canary", {**ROLLOUT, "weight": 5, "step_started_ms": 1}, "steps", "is required"),
        ("ab", {**ROLLOUT, "split": 100}, "split", "less than 100"),
        ("ab", {**ROLLOUT, "alpha": 0}, "alpha", "greater than 0"),
        ("shadow", {**ROLLOUT, "sample": 1.5}, "sample", "less than or equal to 1"),
        ("bluegreen", {**ROLLOUT, "keep_seconds": -1}, "keep_seconds", "greater than or equal"),
        ("ab", {**ROLLOUT, "candidate_version": 0}, "candidate_version", "greater than"),
        ("ab", {**ROLLOUT, "weight": 5}, "weight", "not a setting of this policy"),
        ("single", {"require_approval": "maybe"}, "require_approval", "valid boolean"),
        ("canary", {**CANARY, "thresholds": {"max_p99": 2}}, "thresholds.max_p99", "not a"),
    ],
)
def test_bad_input_names_the_field(
    kind: str, config: dict[str, Any], field: str, words: str
) -> None:
    error = invalid(kind, config)
    assert error.details["field"] == field and words in error.message, error.message
    assert error.http_status == 400


def test_an_unknown_kind_names_the_policy_field() -> None:
    error = invalid("blue-green", ROLLOUT)
    assert error.details["field"] == "policy" and "single, canary, ab" in error.message


def test_a_bad_stored_row_is_a_store_error_naming_endpoint_and_field() -> None:
    row = EndpointRecord("churn", "models:/churn/1", "canary", {**CANARY, "step": -1}, 1, 0, 0)
    with pytest.raises(StoreError) as info:
        policy_of(row)
    assert "endpoint 'churn'" in info.value.message and info.value.details["field"] == "step"


def test_traffic_reads_only_what_routing_needs() -> None:
    traffic = Traffic.of({"policy": "canary", "weight": 10, "max_batch_size": 64})
    assert (traffic.kind, traffic.weight, traffic.split, traffic.switched) == (
        "canary",
        10.0,
        50.0,
        False,
    )
    assert Traffic.of({}).kind == "single"
    with pytest.raises(InvalidArgumentError) as info:
        Traffic.of({"policy": "canary", "weight": "ten"})
    assert info.value.details["field"] == "weight"


@pytest.mark.parametrize("config", [[1, 2], "str", 3])
def test_a_stored_config_that_is_not_an_object_is_left_for_the_reader_to_flag(config: Any) -> None:
    """Migration 0009 met such rows in old databases: it stopped with an AttributeError and
    every command failed until the row was removed by hand."""
    from shipyard.policy import upgrade_stored

    assert upgrade_stored("canary", config) is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weight": float("nan")}, "weight"),
        ({"min_seconds": float("inf")}, "min_seconds"),
        ({"min_requests": 2**63}, "min_requests"),
        ({"thresholds": {"max_error_rate_delta": -0.1}}, "thresholds.max_error_rate_delta"),
    ],
)
def test_numbers_are_finite_and_in_range(change: dict[str, Any], field: str) -> None:
    assert invalid("canary", {**CANARY, **change}).details["field"] == field


def test_policies_stored_before_issue_15_load_with_their_meaning_kept() -> None:
    """Rows written before the quality threshold, the shadow's tolerance and min_seconds and
    the A/B outcome source existed still load: an A/B test reads its outcomes from labels as
    it did, a shadow starts at once, and a canary keeps the shift limit it was started with."""
    old_thresholds = {
        "max_error_rate_delta": 0.02,
        "max_p99_ratio": 1.5,
        "p99_slack_ms": 5.0,
        "max_prediction_shift": 0.2,
        "prediction_alpha": 0.01,
    }
    ab = parse_policy("ab", {**ROLLOUT, "split": 50, "thresholds": old_thresholds})
    assert isinstance(ab, AbPolicy) and ab.outcome_source == "label"
    shadow = parse_policy("shadow", {**ROLLOUT, "min_requests": 200, "min_agreement": 0.95})
    assert isinstance(shadow, ShadowPolicy)
    assert (shadow.min_seconds, shadow.agreement_rtol) == (0.0, 0.05)
    canary = parse_policy("canary", {**CANARY, "thresholds": old_thresholds})
    assert canary.thresholds.max_prediction_shift == 0.2  # type: ignore[union-attr]
    assert canary.thresholds.max_quality_drop == 0.05  # type: ignore[union-attr]
    fresh = parse_policy("canary", CANARY)
    assert fresh.thresholds.max_prediction_shift is None  # type: ignore[union-attr]
    assert parse_policy("canary", fresh.to_config()) == fresh  # a stored null reads back
