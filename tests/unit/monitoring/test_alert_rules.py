"""AlertRules: the edges' door to alert rules (add sealed, list, remove, events)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config import get_settings
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.monitoring.alerts import AlertRules
from shipyard.stores import open_stores
from shipyard.stores.secrets import signing_key, verify


def test_a_rule_is_added_sealed_listed_and_removed(tmp_home: Path) -> None:
    settings = get_settings()
    stores = open_stores(settings)
    stores.metadata.endpoints.create("churn", "models:/churn@champion", actor="tester")
    rules = AlertRules(settings, stores)
    rule = rules.add("churn", "drift", when="drift_share > 0.3", for_windows=2, command="true")
    assert (rule.condition, rule.for_windows, rule.state) == ("drift_share > 0.3", 2, "ok")
    assert rule.command_mac is not None
    assert verify(signing_key(settings), b"churn\0drift\0true", rule.command_mac)
    assert [r.name for r in rules.rules("churn")] == ["drift"]
    assert rules.rules("other") == []
    assert rules.events("churn") == []
    rules.remove("churn", "drift")
    assert rules.rules() == []


def test_a_bad_rule_or_an_unknown_endpoint_is_refused(tmp_home: Path) -> None:
    rules = AlertRules(get_settings(), open_stores())
    with pytest.raises(NotFoundError):
        rules.add("nowhere", "drift", when="drift_share > 0.3")
    with pytest.raises(InvalidArgumentError):
        rules.add("nowhere", "drift", when="drift_share >> 0.3")
