"""The helm target: a chart `helm lint --strict` passes, whose `helm template` output
kubernetes-validate accepts (--strict), whose values.schema.json refuses bad values, and whose
container runs exactly `Context.serve_args()`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.deploy import Deploy, RenderOptions
from shipyard.deploy.targets import Context
from tests.deploy.conftest import tool

TOOLS = (Path(__file__).parent / "tools" / "bin",)


def helm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("helm", where=TOOLS), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"HELM_CACHE_HOME": "/tmp/shipyard-helm-cache", "HOME": "/tmp", "PATH": "/usr/bin"},
    )


def rendered_chart(stores: Any, out: Path, **options: Any) -> Path:
    deploy = Deploy(stores)
    rendered = deploy.render(
        "helm", model_uri="models:/churn@champion", options=RenderOptions(**options)
    )
    deploy.write(rendered.files, out, what="helm test")
    return out


def objects(manifest: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


@pytest.fixture
def chart(churn: Any, stores: Any, tmp_path: Path) -> Path:
    return rendered_chart(stores, tmp_path / "chart")


def test_the_chart_passes_helm_lint_strict(chart: Path) -> None:
    result = helm("lint", "--strict", str(chart))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_helm_template_gives_valid_kubernetes_objects(chart: Path, tmp_path: Path) -> None:
    result = helm("template", "churn", str(chart), "--namespace", "models")
    assert result.returncode == 0, result.stderr
    docs = objects(result.stdout)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
    ]
    out = tmp_path / "manifest.yaml"
    out.write_text(result.stdout)
    check = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def template(chart: Path, *args: str) -> list[dict[str, Any]]:
    result = helm("template", "churn", str(chart), *args)
    assert result.returncode == 0, result.stderr
    return objects(result.stdout)


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = (doc for doc in docs if doc["kind"] == "Deployment")
    return found


@pytest.mark.parametrize(
    "options",
    [
        {},
        {
            "model_source": "pull",
            "drain_seconds": 2.5,
            "port": 9000,
            "settings": {"stores_secret": "shipyard-stores"},
        },
    ],
)
def test_the_container_runs_what_serve_args_gives(
    churn: Any, stores: Any, tmp_path: Path, options: dict[str, Any]
) -> None:
    chart = rendered_chart(stores, tmp_path / "chart", **options)
    pod = deployment(template(chart))["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    facts = Deploy(stores).facts(model_uri="models:/churn@champion")
    context = Context(facts, RenderOptions(**options), lambda v, o: {})
    assert container["args"] == context.serve_args()
    assert container["startupProbe"]["httpGet"]["path"] == context.live_path
    assert container["livenessProbe"]["httpGet"]["path"] == context.live_path
    assert container["readinessProbe"]["httpGet"]["path"] == context.ready_path
    assert container["ports"][0]["containerPort"] == context.options.port
    assert pod["terminationGracePeriodSeconds"] > context.options.drain_seconds
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["SHIPYARD_HOME"] == "/var/lib/shipyard"
    if context.options.model_source == "pull":
        assert env["SHIPYARD_DB_URL"] == {
            "secretKeyRef": {"name": "shipyard-stores", "key": "db_url"}
        }
        assert env["SHIPYARD_ARTIFACTS"]["secretKeyRef"]["key"] == "artifacts"
    else:
        assert "SHIPYARD_DB_URL" not in env


def test_values_override_the_render_and_the_autoscaler_owns_the_replicas(chart: Path) -> None:
    image = "ghcr.io/acme/churn@sha256:" + "a" * 64
    docs = template(chart, "--set", f"image={image}", "--set", "replicas=3")
    pod = deployment(docs)
    assert "replicas" not in pod["spec"]  # the HPA scales it
    assert pod["spec"]["template"]["spec"]["containers"][0]["image"] == image
    (hpa,) = (doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Pods"]["pods"]["metric"]["name"] == "shipyard_requests_in_flight"
    fixed = deployment(template(chart, "--set", "autoscaling.enabled=false"))
    assert fixed["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("replicas=-1", "replicas: Must be greater than or equal to 1"),
        ("replicas=two", "replicas: Invalid type. Expected: integer, given: string"),
        ("replica=3", "Additional property replica is not allowed"),
        ("autoscaling.minReplicas=1", "Additional property minReplicas is not allowed"),
        ("image=Not An Image", "image: Does not match pattern"),
        ("image=ghcr.io/acme/churn@sha256:abc", "image: Does not match pattern"),
        ("resources.cpu=lots", "resources.cpu: Does not match pattern"),
        ("resources.memory=1 GB", "resources.memory: Does not match pattern"),
        ("serviceMonitor.enabled=yes", "Expected: boolean, given: string"),
        ("server.drainSeconds=-3", "server.drainSeconds: Must be greater than or equal to 0"),
        ("service.type=Ingress", "service.type must be one of the following"),
        (
            "model.source=pull,storesSecret=",
            "storesSecret: String length must be greater than or equal to 1",
        ),
    ],
)
def test_the_schema_refuses_a_bad_value_given_with_set(
    chart: Path, value: str, message: str
) -> None:
    result = helm("template", "churn", str(chart), "--set", value)
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr
    lint = helm("lint", "--strict", str(chart), "--set", value)
    assert lint.returncode != 0 and message in lint.stdout + lint.stderr


def test_the_schema_refuses_bad_values_from_a_file(chart: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("replicas: 0\nimage: UPPER:case\nresources: {cpu: 1, memory: 1Gi}\n")
    result = helm("template", "churn", str(chart), "--values", str(bad))
    assert result.returncode != 0
    for message in (
        "replicas: Must be greater than or equal to 1",
        "image: Does not match pattern",
        "resources.cpu: Invalid type. Expected: string, given: integer",
    ):
        assert message in result.stderr, result.stderr


def test_the_autoscaler_may_not_stop_below_the_replicas(chart: Path) -> None:
    result = helm("template", "churn", str(chart), "--set", "autoscaling.maxReplicas=1")
    assert result.returncode != 0
    assert "autoscaling.maxReplicas (1) must be at least replicas (2)" in result.stderr


def test_the_service_monitor_is_behind_its_switch(churn: Any, stores: Any, tmp_path: Path) -> None:
    chart = rendered_chart(stores, tmp_path / "chart", settings={"service_monitor": "true"})
    assert "  enabled: true\n  interval: 15s" in (chart / "values.yaml").read_text()
    docs = template(chart)
    (monitor,) = (doc for doc in docs if doc["kind"] == "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    (service,) = (doc for doc in docs if doc["kind"] == "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    assert "ServiceMonitor" not in {
        d["kind"] for d in template(chart, "--set", "serviceMonitor.enabled=false")
    }


def test_the_service_monitor_matches_the_vendored_crd(
    churn: Any, stores: Any, tmp_path: Path
) -> None:
    crd_file = Path(__file__).parent / "schemas" / "monitoring.coreos.com_servicemonitors.yaml"
    if not crd_file.exists():
        pytest.skip("the ServiceMonitor CRD is vendored with the k8s target's tests")
    crd = yaml.safe_load(crd_file.read_text())
    (v1,) = (v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = tmp_path / "servicemonitor.json"
    schema.write_text(json.dumps(v1["schema"]["openAPIV3Schema"]))
    chart = rendered_chart(stores, tmp_path / "chart", settings={"service_monitor": "true"})
    (monitor,) = (doc for doc in template(chart) if doc["kind"] == "ServiceMonitor")
    instance = tmp_path / "monitor.json"
    instance.write_text(json.dumps(monitor))
    check = subprocess.run(
        [tool("check-jsonschema"), "--schemafile", str(schema), str(instance)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_two_renders_are_byte_identical_and_an_option_changes_only_values(
    churn: Any, stores: Any
) -> None:
    deploy = Deploy(stores)
    one = deploy.render("helm", model_uri="models:/churn@champion").files
    two = deploy.render("helm", model_uri="models:/churn@champion").files
    assert one == two
    more = deploy.render(
        "helm", model_uri="models:/churn@champion", options=RenderOptions(replicas=4)
    ).files
    assert [name for name in one if one[name] != more[name]] == ["values.yaml"]
    assert "replicas: 4\n" in str(more["values.yaml"])
    challenger = deploy.render("helm", model_uri="models:/churn@challenger").files
    assert "uri: models:/churn/2\n" in str(challenger["values.yaml"])
    assert "appVersion: '2'\n" in str(challenger["Chart.yaml"])


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"service_monitor": "maybe"}, "service_monitor=maybe: give true or false"),
        ({"chart_version": "1.0"}, "chart_version=1.0 is not a SemVer version"),
        ({"stores_secret": "Not_A_Secret"}, "stores_secret=Not_A_Secret is not a Secret's name"),
        ({"scrape_interval": "soon"}, "scrape_interval=soon is not a duration"),
        ({"cpu_utilization": "150"}, "cpu_utilization=150 is not a whole number from 1 to 100"),
        ({"in_flight_target": "-1"}, "in_flight_target=-1 is not a whole number"),
    ],
)
def test_a_bad_setting_is_refused(
    churn: Any, stores: Any, given: dict[str, str], message: str
) -> None:
    from shipyard.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=message) as info:
        Deploy(stores).render(
            "helm", model_uri="models:/churn@champion", options=RenderOptions(settings=given)
        )
    assert info.value.details["field"] == "set"


def test_a_refused_setting_writes_nothing(
    churn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.cli.main import main

    out = tmp_path / "chart"
    args = ["deploy", "render", "models:/churn@champion", "-t", "helm", "-o", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--set", "in_flight_target=0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in_flight_target=0 is not a whole number" in err[0]
    assert not out.exists()


def test_settings_reach_the_values(churn: Any, stores: Any, tmp_path: Path) -> None:
    given = {"cpu_utilization": "55", "in_flight_target": "12", "scrape_interval": "30s"}
    chart = rendered_chart(
        stores,
        tmp_path / "chart",
        model_source="pull",
        settings={**given, "service_monitor": "true"},
    )
    docs = template(chart)
    (hpa,) = (doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler")
    targets = [m.get("resource", m.get("pods"))["target"] for m in hpa["spec"]["metrics"]]
    assert targets == [
        {"type": "Utilization", "averageUtilization": 55},
        {"type": "AverageValue", "averageValue": "12"},
    ]
    (monitor,) = (doc for doc in docs if doc["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"
    env = deployment(docs)["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e}
    assert refs["SHIPYARD_DB_URL"] == "churn-stores"  # <app>-stores
    assert refs["SHIPYARD_JWT_SECRET"] == "churn-auth"  # <app>-auth


def test_an_endpoint_renders_a_chart_named_after_it(
    canary_endpoint: str, stores: Any, tmp_path: Path
) -> None:
    deploy = Deploy(stores)
    rendered = deploy.render("helm", endpoint=canary_endpoint)
    deploy.write(rendered.files, tmp_path / "chart", what="helm test")
    assert helm("lint", "--strict", str(tmp_path / "chart")).returncode == 0
    values = (tmp_path / "chart" / "values.yaml").read_text()
    assert "in a canary of models:/churn/2: this chart serves its stable" in values
    (container,) = deployment(template(tmp_path / "chart"))["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["args"][2:4] == ["--name", "churn-api"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/models/churn-api/ready"


@pytest.mark.slow
def test_the_charts_command_serves_and_answers_its_probes(
    churn: Any, stores: Any, tmp_path: Path
) -> None:
    """The container's arguments from `helm template` (pull mode: the test's stores stand in
    for the Secret's), run on a loopback port: the startup/liveness and readiness paths the
    chart probes answer 200."""
    import os

    import httpx

    from tests.helpers import SHIPYARD, free_port, wait_ready

    chart = rendered_chart(stores, tmp_path / "chart", model_source="pull", drain_seconds=0)
    (container,) = deployment(template(chart))["spec"]["template"]["spec"]["containers"]
    args = list(container["args"])
    port = free_port()
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    proc = subprocess.Popen(
        [*SHIPYARD, *args], env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = container[probe]["httpGet"]["path"]
            assert httpx.get(url + path, timeout=10).status_code == 200, (probe, path)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
