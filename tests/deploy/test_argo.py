"""The argo target: the Rollout and AnalysisTemplates against Argo's CRDs, the Services with
kubernetes-validate, steps that mirror the canary policy, and analyses that call no traffic
inconclusive: the queries run in promtool on synthetic series, the conditions are evaluated
on what the queries returned."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import tool
from tests.deploy.kube_validate import documents, render, validate_core, validate_custom


def _docs(files: dict[str, str | bytes], name: str) -> list[dict[str, Any]]:
    text = files[name]
    assert isinstance(text, str)
    return documents(text)


def _templates(files: dict[str, str | bytes]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _docs(files, "analysistemplates.yaml")}


@pytest.mark.parametrize("subject", ["model", "endpoint"])
def test_argo_validates(stores: Any, churn: Any, canary_endpoint: str, tmp_path: Path, subject):
    kwargs = (
        {"model_uri": "models:/churn@champion"}
        if subject == "model"
        else {"endpoint": canary_endpoint}
    )
    files = render(stores, "argo", **kwargs)
    assert sorted(files) == [
        "analysistemplates.yaml",
        "hpa.yaml",
        "pdb.yaml",
        "podmonitor.yaml",
        "rollout.yaml",
        "services.yaml",
    ]
    validate_core(
        tmp_path, "".join(str(files[n]) for n in ("services.yaml", "hpa.yaml", "pdb.yaml"))
    )
    (monitor,) = _docs(files, "podmonitor.yaml")
    validate_custom(tmp_path, monitor, "monitoring.coreos.com_podmonitors.yaml")
    (hpa,) = _docs(files, "hpa.yaml")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Rollout"
    (rollout,) = _docs(files, "rollout.yaml")
    validate_custom(tmp_path, rollout, "argoproj.io_rollouts.yaml")
    for template in _docs(files, "analysistemplates.yaml"):
        validate_custom(tmp_path, template, "argoproj.io_analysistemplates.yaml")
    assert render(stores, "argo", **kwargs) == files
    assert not any("&id" in str(text) for text in files.values())  # no YAML anchors


def test_argo_steps_mirror_the_canary_policy(stores: Any, canary_endpoint: str) -> None:
    files = render(stores, "argo", endpoint=canary_endpoint)
    (rollout,) = _docs(files, "rollout.yaml")
    canary = rollout["spec"]["strategy"]["canary"]
    weights = [s["setWeight"] for s in canary["steps"] if "setWeight" in s]
    assert weights == [5, 25, 50, 100]
    kinds = [next(iter(s)) for s in canary["steps"]]
    assert kinds == ["setWeight", "analysis"] * 4
    names = {t["templateName"] for t in canary["steps"][1]["analysis"]["templates"]}
    assert names == set(_templates(files))
    args = {a["name"]: a["value"] for a in canary["steps"][1]["analysis"]["args"]}
    assert args == {"endpoint": "churn-api", "canary-version": "2"}
    (c,) = rollout["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "shipyard-churn:v2"  # the template is the candidate
    assert (canary["stableService"], canary["canaryService"]) == ("churn-api", "churn-api-canary")
    for template in _templates(files).values():
        (metric,) = template["spec"]["metrics"]
        assert metric["initialDelay"] == "30s"  # the policy's min_seconds
        assert ">= 100)" in metric["provider"]["prometheus"]["query"]  # its min_requests
    error_rate = _templates(files)["churn-api-error-rate"]["spec"]["metrics"][0]
    assert error_rate["successCondition"].endswith("result[0] <= 0.02")  # max_error_rate_delta


def test_argo_refusals_write_nothing(stores: Any, churn: Any, tmp_path: Path) -> None:
    from shipyard.deploy import Deploy, RenderOptions
    from shipyard.errors import InvalidArgumentError
    from shipyard.rollout import Deployments

    deployments = Deployments(stores)
    deployments.create("fine", "models:/churn/1")
    deployments.canary("fine", "models:/churn/2", steps=[2.5, 50, 100])
    deployments.create("split", "models:/churn/1")
    deployments.ab("split", "models:/churn/2")
    out = tmp_path / "out"
    cases = [
        ({"endpoint": "fine"}, {}, "steps", "2.5"),
        ({"endpoint": "split"}, {}, "policy", "A/B"),
        ({"model_uri": "models:/churn/1"}, {"steps": "5,50"}, "steps", "ending at 100"),
        ({"model_uri": "models:/churn/1"}, {"steps": "10,50.5,100"}, "steps", "50.5"),
        ({"endpoint": "fine"}, {"steps": "10,100"}, "steps", "canary policy"),
    ]
    for kwargs, settings, field, words in cases:
        with pytest.raises(InvalidArgumentError) as err:
            rendered = Deploy(stores).render(
                "argo", options=RenderOptions(settings=settings), **kwargs
            )
            Deploy.write(rendered.files, out, what="argo")
        assert err.value.details["field"] == field, kwargs
        assert words in str(err.value), str(err.value)
    assert not out.exists()


def test_argo_model_uri_renders_the_default_canary(stores: Any, churn: Any) -> None:
    from shipyard.deploy import RenderOptions

    files = render(stores, "argo", model_uri="models:/churn@champion")
    (rollout,) = _docs(files, "rollout.yaml")
    weights = [s["setWeight"] for s in rollout["spec"]["strategy"]["canary"]["steps"][::2]]
    assert weights == [5, 25, 50, 100]
    options = RenderOptions(settings={"steps": "10,100"})
    files = render(stores, "argo", model_uri="models:/churn/1", options=options)
    (rollout,) = _docs(files, "rollout.yaml")
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert [s.get("setWeight") for s in steps] == [10, None, 100, None]


# --- no traffic is inconclusive: the queries in promtool, then the conditions ---------------


def _holds(condition: str, result: list[float]) -> bool:
    """An Argo (expr) condition of the form the templates use, evaluated in Python."""
    assert re.fullmatch(r"[\w\s\[\]().!&<>=-]+", condition), condition
    python = condition.replace("&&", " and ").replace("!isNaN(", " not isnan(")
    value = eval(python, {"__builtins__": {}}, {"len": len, "isnan": math.isnan, "result": result})
    return bool(value)


def _phase(metric: dict[str, Any], result: list[float]) -> str:
    success = _holds(metric["successCondition"], result)
    failure = _holds(metric["failureCondition"], result)
    assert not (success and failure)
    return "Successful" if success else "Failed" if failure else "Inconclusive"


def test_argo_conditions_never_fail_without_a_measurement(stores: Any, canary_endpoint: str):
    for template in _templates(render(stores, "argo", endpoint=canary_endpoint)).values():
        (metric,) = template["spec"]["metrics"]
        assert _phase(metric, []) == "Inconclusive"
        assert _phase(metric, [math.nan]) == "Inconclusive"
        assert _phase(metric, [0.0]) == "Successful"
        assert _phase(metric, [0.5]) == "Failed"
        # Inconclusive once the success streak can no longer be reached; never Failed
        assert metric["failureLimit"] == 0
        assert metric["inconclusiveLimit"] == metric["count"] - metric["consecutiveSuccessLimit"]


# requests/s over the series' 15s steps: "0+150x40" is 10 per second for 10 minutes
def _series(version: str, ok: str, errors: str | None, fast: str, slow: str) -> list[Any]:
    """Requests (200 and, if given, 5xx) and latency buckets (<=10ms, <=100ms) of a version."""
    labels = f'endpoint="churn-api",version="{version}"'
    series = [(f'shipyard_requests_total{{{labels},status="200"}}', ok)]
    if errors is not None:
        series.append((f'shipyard_requests_total{{{labels},status="503"}}', errors))
    bucket = f'shipyard_request_latency_seconds_bucket{{{labels},le="%s"}}'
    return [*series, (bucket % "0.01", fast), (bucket % "0.1", slow), (bucket % "+Inf", slow)]


_STABLE = _series("1", "0+150x40", "0+1x40", "0+150x40", "0+151x40")
_IDLE, _FEW, _BUSY = "0+0x40", "0+0x39 50", "0+150x40"
SCENARIOS = {
    # name: (canary series, expected phase of error-rate, of latency)
    "no canary series": ([], "Inconclusive", "Inconclusive"),
    "no requests": (_series("2", _IDLE, None, _IDLE, _IDLE), "Inconclusive", "Inconclusive"),
    "too few requests": (_series("2", _FEW, None, _FEW, _FEW), "Inconclusive", "Inconclusive"),
    "healthy": (_series("2", _BUSY, None, _BUSY, _BUSY), "Successful", "Successful"),
    "errors": (_series("2", "0+135x40", "0+15x40", _BUSY, _BUSY), "Failed", "Successful"),
    "slow": (_series("2", _BUSY, None, "0+15x40", _BUSY), "Successful", "Failed"),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_argo_queries_in_promtool(stores: Any, canary_endpoint: str, tmp_path: Path, scenario: str):
    promtool = tool("promtool")
    canary, *expected = SCENARIOS[scenario]
    templates = _templates(render(stores, "argo", endpoint=canary_endpoint))
    metrics = [templates[f"churn-api-{n}"]["spec"]["metrics"][0] for n in ("error-rate", "latency")]
    for metric, phase in zip(metrics, expected, strict=True):
        query = metric["provider"]["prometheus"]["query"]
        query = query.replace("{{args.endpoint}}", "churn-api").replace(
            "{{args.canary-version}}", "2"
        )
        result = _evaluate(promtool, tmp_path, query, _STABLE + canary)
        assert _phase(metric, result) == phase, (scenario, metric["name"], result)


def _evaluate(
    promtool: str, tmp_path: Path, query: str, series: list[tuple[str, str]]
) -> list[float]:
    """The query's result at minute 10, found by asking promtool to compare it with candidates:
    an empty vector, else the one value promtool reports it got."""
    test = {
        "tests": [
            {
                "interval": "15s",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [{"expr": query, "eval_time": "10m", "exp_samples": []}],
            }
        ]
    }
    path = tmp_path / "query_test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    run = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    if run.returncode == 0:
        return []
    got = re.search(r"got:\s*\[?\{?\}?\s*([-+0-9.eEInfNa]+)", run.stdout + run.stderr)
    assert got, run.stdout + run.stderr
    return [float(got.group(1))]


def test_argo_bluegreen_is_one_step_analysed_for_its_keep(stores: Any, churn: Any) -> None:
    from shipyard.rollout import Deployments

    deployments = Deployments(stores)
    deployments.create("bg", "models:/churn/1")
    deployments.bluegreen("bg", "models:/churn/2", keep_seconds=120)
    files = render(stores, "argo", endpoint="bg")
    (rollout,) = _docs(files, "rollout.yaml")
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert [next(iter(s)) for s in steps] == ["setWeight", "analysis"]
    assert steps[0]["setWeight"] == 100
    for template in _templates(files).values():
        assert template["spec"]["metrics"][0]["initialDelay"] == "120s"
