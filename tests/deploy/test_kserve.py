"""The kserve target: the InferenceService against KServe's CRD, the canary's share of
traffic, the probes that keep requests from a model still loading, and the refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.kube_validate import documents, render, validate_custom

CRD = "serving.kserve.io_inferenceservices.yaml"


def _isvc(files: dict[str, str | bytes]) -> dict[str, Any]:
    assert sorted(files) == ["inferenceservice.yaml"]
    text = files["inferenceservice.yaml"]
    assert isinstance(text, str)
    (doc,) = documents(text)
    return doc


def _options(**settings: str) -> Any:
    from shipyard.deploy import RenderOptions

    return RenderOptions(settings=settings)


@pytest.mark.parametrize("mode", ["Serverless", "RawDeployment"])
def test_kserve_model_validates(stores: Any, churn: Any, tmp_path: Path, mode: str) -> None:
    files = render(
        stores, "kserve", model_uri="models:/churn@champion", options=_options(deployment_mode=mode)
    )
    isvc = _isvc(files)
    validate_custom(tmp_path, isvc, CRD)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
    predictor = isvc["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    (c,) = predictor["containers"]
    assert c["image"] == "shipyard-churn:v1" and c["args"][0] == "serve"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/models/churn/ready"
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["readinessProbe"]["httpGet"]["port"] == c["ports"][0]["containerPort"] == 8080
    if mode == "RawDeployment":
        assert predictor["terminationGracePeriodSeconds"] > 15
    else:
        assert c["ports"][0]["name"] == "http1"
    assert (
        render(
            stores,
            "kserve",
            model_uri="models:/churn@champion",
            options=_options(deployment_mode=mode),
        )
        == files
    )


def test_kserve_canary_endpoint(stores: Any, canary_endpoint: str, tmp_path: Path) -> None:
    isvc = _isvc(render(stores, "kserve", endpoint=canary_endpoint))
    validate_custom(tmp_path, isvc, CRD)
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 5  # the policy's current weight
    (c,) = predictor["containers"]
    assert c["image"] == "shipyard-churn:v2"  # the latest revision is the candidate
    assert isvc["metadata"]["annotations"]["shipyard.dev/model-uri"] == "models:/churn/2"
    newer = _isvc(
        render(
            stores,
            "kserve",
            endpoint=canary_endpoint,
            options=_options(kserve_version="v0.16.0", startup_probe="false"),
        )
    )
    assert newer["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert "startupProbe" not in newer["spec"]["predictor"]["containers"][0]
    validate_custom(tmp_path, newer, CRD)


@pytest.mark.parametrize("version", ["0.13", "0.15", "0.20"])
def test_kserve_refuses_a_raw_canary(stores: Any, canary_endpoint: str, tmp_path: Path, version):
    from shipyard.deploy import Deploy
    from shipyard.errors import InvalidArgumentError

    out = tmp_path / "out"
    options = _options(deployment_mode="RawDeployment", kserve_version=version)
    with pytest.raises(InvalidArgumentError) as err:
        rendered = Deploy(stores).render("kserve", endpoint=canary_endpoint, options=options)
        Deploy.write(rendered.files, out, what="kserve")
    assert err.value.details["field"] == "canaryTrafficPercent"
    assert "kserve#5335" in str(err.value)
    assert not out.exists()


def test_kserve_refuses_bad_settings_and_an_ab_test(stores: Any, churn: Any) -> None:
    from shipyard.deploy import Deploy
    from shipyard.errors import InvalidArgumentError
    from shipyard.rollout import Deployments

    deployments = Deployments(stores)
    deployments.create("split", "models:/churn/1")
    deployments.ab("split", "models:/churn/2")
    cases = [
        ({"endpoint": "split"}, {}, "policy"),
        ({"model_uri": "models:/churn/1"}, {"deployment_mode": "Lambda"}, "deployment_mode"),
        ({"model_uri": "models:/churn/1"}, {"kserve_version": "latest"}, "kserve_version"),
    ]
    for kwargs, settings, field in cases:
        with pytest.raises(InvalidArgumentError) as err:
            Deploy(stores).render("kserve", options=_options(**settings), **kwargs)
        assert err.value.details["field"] == field


def test_kserve_bluegreen_stages_the_candidate_at_zero(stores: Any, churn: Any, tmp_path: Path):
    from shipyard.rollout import Deployments

    deployments = Deployments(stores)
    deployments.create("bg", "models:/churn/1")
    deployments.bluegreen("bg", "models:/churn/2")
    isvc = _isvc(render(stores, "kserve", endpoint="bg"))
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0  # deployed, warm, no traffic
    assert isvc["spec"]["predictor"]["containers"][0]["image"] == "shipyard-churn:v2"
    validate_custom(tmp_path, isvc, CRD)
