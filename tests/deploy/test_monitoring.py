"""Target `monitoring`: the rules pass `promtool check rules` and the `promtool test rules`
file the render writes (alerts fire on bad traffic, stay silent with no series and with flat
series); the PrometheusRule carries the same groups; renders are byte-identical; bad settings
are refused and nothing is written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.deploy import Deploy, RenderOptions
from shipyard.errors import InvalidArgumentError
from tests.deploy.conftest import tool
from tests.helpers import SHIPYARD


def _render(stores: Any, out: Path, **kw: Any) -> dict[str, str | bytes]:
    deploy = Deploy(stores)
    settings = kw.pop("settings", {})
    rendered = deploy.render("monitoring", options=RenderOptions(settings=settings), **kw)
    deploy.write(rendered.files, out, what="monitoring")
    return rendered.files


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_rules_pass_promtool_and_their_own_unit_tests(
    churn: Any, stores: Any, tmp_path: Path
) -> None:
    _render(stores, tmp_path, model_uri="models:/churn@champion")
    check = _promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 13 rules found" in check.stdout
    test = _promtool("test", "rules", "rules.test.yaml", cwd=tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr
    # the PrometheusRule holds exactly the groups promtool checked
    rule = yaml.safe_load((tmp_path / "prometheus-rule.yaml").read_text())
    plain = yaml.safe_load((tmp_path / "rules.yml").read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["namespace"] == "default"
    assert rule["spec"]["groups"] == plain["groups"]


def test_the_prometheus_rule_matches_the_crds_schema(
    churn: Any, stores: Any, tmp_path: Path
) -> None:
    """Against the PrometheusRule CRD's schema (vendored, see schemas/prometheusrule/README.md;
    read with jsonschema directly: its Go regex `(?i)` is no ECMA regex for check-jsonschema's
    metaschema check). The same check refuses a `for` Prometheus cannot parse."""
    import json

    import jsonschema

    schema_file = Path(__file__).parent / "schemas" / "prometheusrule" / "prometheusrule_v1.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    files = _render(stores, tmp_path, model_uri="models:/churn@champion")
    rule = yaml.safe_load(str(files["prometheus-rule.yaml"]))
    assert [e.message for e in validator.iter_errors(rule)] == []
    rule["spec"]["groups"][1]["rules"][0]["for"] = "5 minutes"
    assert any("5 minutes" in e.message for e in validator.iter_errors(rule))


def _mutated(tmp_path: Path, old: str, new: str) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "rules.yml"
    text = rules.read_text()
    assert old in text
    rules.write_text(text.replace(old, new, 1))
    return _promtool("test", "rules", "rules.test.yaml", cwd=tmp_path)


def test_an_absent_style_error_alert_fails_the_silence_cases(
    churn: Any, stores: Any, tmp_path: Path
) -> None:
    """The unit tests can fail: an alert that fires on a missing series (absent(), as KServe
    dashboards' histograms invite before the first request) breaks the zero-traffic case."""
    _render(stores, tmp_path, model_uri="models:/churn@champion")
    found = _mutated(
        tmp_path,
        'expr: shipyard:requests_5xx:ratio_rate5m{endpoint="churn"} > 0.05',
        'expr: absent(shipyard_requests_total{endpoint="churn",status=~"2.."}) == 1',
    )
    assert found.returncode != 0
    assert "no shipyard series at all" in found.stdout + found.stderr


def test_a_threshold_that_never_fires_fails_the_firing_case(
    churn: Any, stores: Any, tmp_path: Path
) -> None:
    _render(stores, tmp_path, model_uri="models:/churn@champion")
    found = _mutated(tmp_path, "> 0.05", "> 0.5")
    assert found.returncode != 0
    assert "answers a third of its requests with 5xx" in found.stdout + found.stderr


def test_a_canary_endpoint_alerts_on_the_candidates_errors_alone(
    canary_endpoint: str, stores: Any, tmp_path: Path
) -> None:
    files = _render(stores, tmp_path, endpoint=canary_endpoint)
    test = _promtool("test", "rules", "rules.test.yaml", cwd=tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr
    cases = yaml.safe_load(str(files["rules.test.yaml"]))["tests"]
    errors = next(c for c in cases if "5xx" in c["name"])
    fired = errors["alert_rule_test"][-1]["exp_alerts"]
    assert [a["exp_labels"]["version"] for a in fired] == ["2"]
    assert 'endpoint="churn-api"' in str(files["rules.yml"])


def test_slo_settings_reach_the_rules(churn: Any, stores: Any, tmp_path: Path) -> None:
    settings = {"latency_slo_seconds": "0.1", "latency_slo_target": "0.999"}
    files = _render(stores, tmp_path, model_uri="models:/churn/1", settings=settings)
    rules = str(files["rules.yml"])
    assert 'le="0.1"' in rules and 'le="0.25"' not in rules
    assert "> 0.0144\n" in rules  # 14.4 x (1 - 0.999)
    test = _promtool("test", "rules", "rules.test.yaml", cwd=tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr


def test_two_renders_are_byte_identical(churn: Any, stores: Any, tmp_path: Path) -> None:
    first = _render(stores, tmp_path / "a", model_uri="models:/churn@champion")
    second = _render(stores, tmp_path / "b", model_uri="models:/churn@champion")
    assert first == second
    assert sorted(first) == [
        "grafana-dashboard.json",
        "prometheus-rule.yaml",
        "rules.test.yaml",
        "rules.yml",
    ]
    again = Deploy(stores).write(first, tmp_path / "a", what="monitoring")
    assert again.changed == () and again.diff == ""


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("latency_slo_seconds", "0.3", "bucket"),
        ("latency_slo_seconds", "fast", "not a number"),
        ("latency_slo_target", "0.9", "0.95 to 0.9999"),
        ("latency_slo_target", "1", "0.95 to 0.9999"),
        ("error_ratio", "5", "above 0 and below 1"),
        ("drift_share", "nan", "not a number"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(
    churn: Any, stores: Any, key: str, value: str, says: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=says) as info:
        Deploy(stores).render(
            "monitoring",
            model_uri="models:/churn@champion",
            options=RenderOptions(settings={key: value}),
        )
    assert info.value.details["field"] == key


def test_the_cli_refuses_in_one_line_and_writes_nothing(churn: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["deploy", "render", "models:/churn@champion", "-t", "monitoring", "-o", str(out)]
    bad = subprocess.run(
        [*SHIPYARD, *args, "--set", "latency_slo_seconds=0.3"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "latency_slo_seconds" in bad.stderr
    assert not out.exists()
    unknown = subprocess.run(
        [*SHIPYARD, *args, "--set", "slo=0.99"], capture_output=True, text=True, timeout=120
    )
    assert unknown.returncode == 2 and "latency_slo_target" in unknown.stderr
    assert not out.exists()
