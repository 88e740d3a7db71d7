"""Alert rules: pending → firing after N windows, actions (webhook, command) run once and are
recorded with their outcome, resolution, audit; on SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request

from shipyard.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from shipyard.monitoring.alerts import AlertEvaluator, add_alert_rule, parse_condition
from shipyard.monitoring.live import Evaluation
from shipyard.serving.http import BackgroundServer

KEY = b"k" * 32  # the installation's signing key (stores.secrets) in these tests


def evaluation(share: float, accuracy: float | None = None) -> Evaluation:
    return Evaluation(
        "churn",
        0,
        3600.0,
        model_version=3,
        rows=500,
        drift={
            "share_drifted": share,
            "drifted_columns": ["age"] if share else [],
            "columns": {"age": {"effect_size": share}},
        },
        quality={"violations": 0, "columns": {}},
        accuracy=None if accuracy is None else {"overall": {"n": 50, "accuracy": accuracy}},
        traffic={"error_rate": 0.0, "p99_latency_ms": 3.0},
    )


@pytest.fixture
def hook() -> Any:
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/hook")
    async def receive(request: Request) -> dict[str, bool]:
        received.append(await request.json())
        return {"ok": True}

    with BackgroundServer(app) as srv:
        yield srv, received


def test_a_rule_fires_after_its_windows_acts_once_and_resolves(
    stores: Any, hook: Any, tmp_path: Path
) -> None:
    srv, received = hook
    stores.metadata.endpoints.create("churn", "models:/churn@champion", actor="t")
    marker = tmp_path / "retrained.txt"
    command = (
        f"{sys.executable} -c \"import os; open(r'{marker}', 'a').write("
        f"os.environ['SHIPYARD_ALERT'] + ' ' + os.environ['SHIPYARD_ALERT_VALUE'] + '\\\\n')\""
    )
    rule = add_alert_rule(
        stores,
        KEY,
        "churn",
        "drift",
        when="drift_share > 0.3",
        for_windows=2,
        webhook=f"{srv.url}/hook",
        command=command,
    )
    evaluator = AlertEvaluator(stores, KEY)
    assert evaluator.evaluate(evaluation(0.5)) == []
    assert stores.metadata.alerts.get(rule.id).state == "pending"
    changes = evaluator.evaluate(evaluation(0.5))
    assert [(r.name, c) for r, c in changes] == [("drift", "fired")]
    assert evaluator.evaluate(evaluation(0.6)) == []  # still firing: no second action
    assert marker.read_text() == "drift 0.5\n"
    assert len(received) == 1 and received[0]["alert"] == "drift"
    assert received[0]["cause"]["drifted_columns"] == ["age"]
    assert [(r.name, c) for r, c in evaluator.evaluate(evaluation(0.0))] == [("drift", "resolved")]
    assert stores.metadata.alerts.get(rule.id).state == "ok"
    events = stores.metadata.alerts.events("churn")
    assert [e.kind for e in events] == ["resolved", "fired"]
    fired = events[1]
    assert fired.value == 0.5 and fired.action["webhook"] == {"status": 200}
    assert fired.action["command"]["exit_code"] == 0
    audit = [e.action for e in stores.metadata.audit.list(subject_type="endpoint")]
    assert audit[:2] == ["alert.resolved", "alert.fired"]


def test_accuracy_rule_and_broken_actions_are_recorded_not_raised(stores: Any) -> None:
    stores.metadata.endpoints.create("churn", "models:/churn@champion", actor="t")
    add_alert_rule(
        stores,
        KEY,
        "churn",
        "acc",
        when="accuracy < 0.85",
        webhook="http://127.0.0.1:1/none",
        command=f"{sys.executable} -c 'raise SystemExit(3)'",
    )
    evaluator = AlertEvaluator(stores, KEY, webhook_timeout=1.0)
    assert evaluator.evaluate(evaluation(0.0)) == []  # no labels yet: no verdict on accuracy
    changes = evaluator.evaluate(evaluation(0.0, accuracy=0.8))
    assert [c for _, c in changes] == ["fired"]
    action = stores.metadata.alerts.events("churn")[0].action
    assert "error" in action["webhook"] and action["command"]["exit_code"] == 3


def test_bad_rules() -> None:
    for text, words in [
        ("drift_share >> 0.3", "is not like"),
        ("speed > 1", "unknown metric"),
        ("accuracy < high", "is not like"),
    ]:
        with pytest.raises(InvalidArgumentError, match=words):
            parse_condition(text)
    assert parse_condition("drift:age >= 0.2") == ("drift:age", ">=", 0.2)


def test_rule_names_are_unique_per_endpoint(stores: Any) -> None:
    alerts = stores.metadata.alerts
    alerts.add_rule(
        "churn",
        "drift",
        metric="rows",
        op="<",
        threshold=1,
        for_windows=1,
        webhook=None,
        command=None,
        actor="t",
    )
    with pytest.raises(AlreadyExistsError):
        alerts.add_rule(
            "churn",
            "drift",
            metric="rows",
            op="<",
            threshold=1,
            for_windows=1,
            webhook=None,
            command=None,
            actor="t",
        )
    with pytest.raises(NotFoundError, match="did you mean 'drift'"):
        alerts.remove_rule("churn", "drfit", actor="t")
    alerts.remove_rule("churn", "drift", actor="t")
    assert alerts.rules() == []


@pytest.mark.parametrize("forged", ["unsigned", "other key", "copied from another rule"])
def test_a_command_not_added_by_this_installation_never_runs(
    stores: Any, tmp_path: Path, forged: str
) -> None:
    """Someone who can write the shared metadata database adds a rule with a command: the
    server refuses to run it and records why."""
    from shipyard.monitoring.alerts import _command_mac

    stores.metadata.endpoints.create("churn", "models:/churn@champion", actor="t")
    marker = tmp_path / "pwned"
    command = f"touch {marker}"
    honest = add_alert_rule(stores, KEY, "churn", "honest", when="drift_share > 0.9")
    mac = {
        "unsigned": None,
        "other key": _command_mac(b"x" * 32, "churn", "evil", command),
        "copied from another rule": honest.command_mac,
    }[forged]
    metric, op, threshold = parse_condition("drift_share > 0.3")
    stores.metadata.alerts.add_rule(
        "churn",
        "evil",
        metric=metric,
        op=op,
        threshold=threshold,
        for_windows=1,
        webhook=None,
        command=command,
        command_mac=mac,
        actor="mallory",
    )
    changes = AlertEvaluator(stores, KEY).evaluate(evaluation(0.5))
    assert [(r.name, c) for r, c in changes] == [("evil", "fired")]
    assert not marker.exists()
    assert (
        "not added by this installation"
        in stores.metadata.alerts.events("churn")[0].action["command"]["refused"]
    )


def test_a_command_runs_without_a_shell(stores: Any, tmp_path: Path) -> None:
    stores.metadata.endpoints.create("churn", "models:/churn@champion", actor="t")
    marker = tmp_path / "pwned"
    add_alert_rule(
        stores,
        KEY,
        "churn",
        "drift",
        when="drift_share > 0.3",
        command=f"{sys.executable} -c 'import sys; print(sys.argv[1:])' ; touch {marker}",
    )
    AlertEvaluator(stores, KEY).evaluate(evaluation(0.5))
    output = stores.metadata.alerts.events("churn")[0].action["command"]["output"]
    assert f"[';', 'touch', '{marker}']" in output and not marker.exists()


def test_a_rule_on_a_metric_that_cannot_be_computed_is_unknown_not_ok(stores: Any) -> None:
    """Before: `mae > 50` on NaN MAE compared false and stayed "ok" for ever."""
    stores.metadata.endpoints.create("churn", "models:/churn@champion", actor="t")
    rule = add_alert_rule(stores, KEY, "churn", "mae", when="mae > 50")
    evaluator = AlertEvaluator(stores, KEY)
    uncomputable = evaluation(0.0)
    uncomputable.accuracy = {
        "overall": {"n": 21, "mae": None, "rmse": None, "unscored": 21, "reason": "…"}
    }
    assert evaluator.evaluate(uncomputable) == []
    assert stores.metadata.alerts.get(rule.id).state == "unknown"
    nan = evaluation(0.0)
    nan.accuracy = {"overall": {"n": 21, "mae": float("nan"), "rmse": float("nan")}}
    evaluator.evaluate(nan)
    assert stores.metadata.alerts.get(rule.id).state == "unknown"
    evaluator.evaluate(evaluation(0.0))  # no labels at all in the window: still not known
    assert stores.metadata.alerts.get(rule.id).state == "unknown"
    known = evaluation(0.0)
    known.accuracy = {"overall": {"n": 40, "mae": 70.0, "rmse": 80.0}}
    assert [c for _, c in evaluator.evaluate(known)] == ["fired"]


def test_a_firing_rule_whose_evaluation_fails_is_unknown_not_still_firing(stores: Any) -> None:
    """New user: an endpoint whose log could not be read kept `mae > 30` "firing" for ever."""
    stores.metadata.endpoints.create("churn", "models:/churn@champion", actor="t")
    rule = add_alert_rule(stores, KEY, "churn", "mae", when="mae > 30")
    evaluator = AlertEvaluator(stores, KEY)
    high = evaluation(0.0)
    high.accuracy = {"overall": {"n": 40, "mae": 70.0, "rmse": 80.0}}
    assert [c for _, c in evaluator.evaluate(high)] == ["fired"]
    failed = Evaluation("churn", 0, 3600.0, error="ArrowTypeError: Unable to merge")
    assert evaluator.evaluate(failed) == []
    assert stores.metadata.alerts.get(rule.id).state == "unknown"
