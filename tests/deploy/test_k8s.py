"""The k8s target: real validators (kubernetes-validate --strict, the ServiceMonitor against
the prometheus-operator CRD), determinism, and what the manifests promise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kube_validate import documents, render, validate_core, validate_custom

CORE = ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "networkpolicy.yaml")


def _text(files: dict[str, str | bytes], name: str) -> str:
    text = files[name]
    assert isinstance(text, str)
    return text


def _one(files: dict[str, str | bytes], name: str) -> dict[str, Any]:
    (doc,) = documents(_text(files, name))
    return doc


@pytest.mark.parametrize("subject", ["model", "endpoint"])
def test_k8s_validates(stores: Any, churn: Any, canary_endpoint: str, tmp_path: Path, subject: str):
    kwargs = (
        {"model_uri": "models:/churn@champion"}
        if subject == "model"
        else {"endpoint": canary_endpoint}
    )
    files = render(stores, "k8s", **kwargs)
    assert sorted(files) == sorted([*CORE, "servicemonitor.yaml"])
    validate_core(tmp_path, "".join(_text(files, n) for n in CORE))
    validate_custom(
        tmp_path, _one(files, "servicemonitor.yaml"), "monitoring.coreos.com_servicemonitors.yaml"
    )
    again = render(stores, "k8s", **kwargs)
    assert again == files  # byte-identical


def test_k8s_deployment_promises(stores: Any, churn: Any, tmp_path: Path) -> None:
    from shipyard.deploy import RenderOptions

    options = RenderOptions(drain_seconds=42.5, cpu="250m", memory="2Gi", port=9000)
    files = render(stores, "k8s", model_uri="models:/churn@champion", options=options)
    deployment = _one(files, "deployment.yaml")
    assert "models:/churn/1 (alias champion, pinned)" in _text(files, "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/models/churn/ready"
    assert pod["terminationGracePeriodSeconds"] > 42.5
    assert c["args"][c["args"].index("--drain") + 1] == "42.5"
    assert c["args"][:2] == ["serve", "/opt/model"]
    assert c["resources"] == {
        "requests": {"cpu": "250m", "memory": "2Gi"},
        "limits": {"memory": "2Gi"},
    }
    assert c["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    home = next(e["value"] for e in c["env"] if e["name"] == "SHIPYARD_HOME")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert {v["name"]: v for v in pod["volumes"]}[mounts[home]]["emptyDir"] == {}
    assert "SHIPYARD_DB_URL" not in str(c["env"])  # a baked model needs no stores

    hpa = _one(files, "hpa.yaml")["spec"]
    kinds = {m["type"]: m for m in hpa["metrics"]}
    assert kinds["Resource"]["resource"]["name"] == "cpu"
    assert kinds["Pods"]["pods"]["metric"]["name"] == "shipyard_requests_in_flight"
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    monitor = _one(files, "servicemonitor.yaml")["spec"]["endpoints"][0]
    service = _one(files, "service.yaml")["spec"]["ports"][0]
    assert monitor["port"] == service["targetPort"] == "http" and monitor["path"] == "/metrics"
    validate_core(tmp_path, _text(files, "deployment.yaml"))


def test_k8s_pull_reads_the_stores_from_a_secret(stores: Any, churn: Any, tmp_path: Path):
    from shipyard.deploy import RenderOptions

    options = RenderOptions(model_source="pull", settings={"stores_secret": "churn-db"})
    files = render(stores, "k8s", model_uri="models:/churn/2", options=options)
    (c,) = _one(files, "deployment.yaml")["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert refs == {
        "SHIPYARD_DB_URL": {"name": "churn-db", "key": "db_url"},
        "SHIPYARD_ARTIFACTS": {"name": "churn-db", "key": "artifacts"},
        # callers' tokens: a replica's own API keys live in its emptyDir
        "SHIPYARD_JWT_SECRET": {"name": "churn-auth", "key": "jwt_secret", "optional": True},
    }
    assert c["args"][1] == "models:/churn/2" and "--digest" in c["args"]
    validate_core(tmp_path, _text(files, "deployment.yaml"))


def test_k8s_bad_setting_writes_nothing(stores: Any, churn: Any, tmp_path: Path) -> None:
    from shipyard.deploy import Deploy, RenderOptions
    from shipyard.errors import InvalidArgumentError

    out = tmp_path / "out"
    options = RenderOptions(settings={"cpu_utilization": "250"})
    with pytest.raises(InvalidArgumentError) as err:
        files = Deploy(stores).render("k8s", model_uri="models:/churn/1", options=options).files
        Deploy.write(files, out, what="k8s")
    assert err.value.details["field"] == "cpu_utilization"
    assert not out.exists()


def test_the_validators_refuse_what_kubernetes_would(stores: Any, churn: Any, tmp_path: Path):
    """The checks above can fail: an unknown field fails both validators."""
    files = render(stores, "k8s", model_uri="models:/churn/1")
    deployment = _one(files, "deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["startupProb"] = {}
    with pytest.raises(AssertionError, match="startupProb"):
        validate_core(tmp_path, yaml.safe_dump(deployment))
    monitor = _one(files, "servicemonitor.yaml")
    monitor["spec"]["endpoints"][0]["scrapeEvery"] = "15s"
    with pytest.raises(AssertionError, match="scrapeEvery"):
        validate_custom(tmp_path, monitor, "monitoring.coreos.com_servicemonitors.yaml")
