"""The compose target: a docker-compose.yaml the Compose Specification's schema accepts, a
prometheus.yml promtool accepts, no secret in any file, the same bytes twice, and a `model`
one-shot that really puts the rendered version into a fresh store and points the endpoint
at it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.deploy import Deploy, RenderOptions
from shipyard.errors import InvalidArgumentError
from tests.deploy.conftest import tool

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"


def render(stores: Any, **options: Any) -> dict[str, str | bytes]:
    return (
        Deploy(stores)
        .render("compose", model_uri="models:/churn@champion", options=RenderOptions(**options))
        .files
    )


@pytest.fixture
def stack(churn: Any, stores: Any, tmp_path: Path) -> Path:
    out = tmp_path / "stack"
    Deploy(stores).write(render(stores), out, what="compose test")
    return out


def compose(stack: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((stack / "docker-compose.yaml").read_text())
    return doc


def check_jsonschema(schema: Path, *instances: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("check-jsonschema"), "--schemafile", str(schema), *map(str, instances)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_compose_file_meets_the_compose_specification(stack: Path, tmp_path: Path) -> None:
    result = check_jsonschema(SCHEMA, stack / "docker-compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    # the schema can fail: a misspelt key of a service is refused
    bad = compose(stack)
    bad["services"]["shipyard"]["depends-on"] = bad["services"]["shipyard"].pop("depends_on")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    refused = check_jsonschema(SCHEMA, tmp_path / "bad.yaml")
    assert refused.returncode != 0 and "depends-on" in refused.stdout + refused.stderr


def test_prometheus_yml_passes_promtool_and_scrapes_the_server(stack: Path) -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "config", str(stack / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((stack / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["shipyard:8080"]


def test_the_server_waits_for_healthy_stores_and_the_model_import(stack: Path) -> None:
    services = compose(stack)["services"]
    assert sorted(services) == ["grafana", "model", "postgres", "prometheus", "redis", "shipyard"]
    server = services["shipyard"]
    assert server["command"][:5] == ["server", "--host", "0.0.0.0", "--port", "8080"]
    assert server["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "model": {"condition": "service_completed_successfully"},
    }
    assert "/health/ready" in " ".join(server["healthcheck"]["test"])
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert server["environment"]["SHIPYARD_DB_URL"].startswith("postgresql+psycopg://shipyard@")
    assert server["environment"]["SHIPYARD_REDIS_URL"] == "redis://redis:6379/0"
    assert services["model"]["environment"] == server["environment"]
    assert server["build"] == {
        "context": "${SHIPYARD_SOURCE:?copy .env.example to .env and set it}"
    }
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    for service in services.values():  # nothing open beyond the laptop
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", []))


def test_grafana_gets_prometheus_and_the_monitoring_folder(stack: Path) -> None:
    grafana = compose(stack)["services"]["grafana"]
    sources = yaml.safe_load(
        (stack / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    assert sources["datasources"][0]["isDefault"] is True
    providers = yaml.safe_load(
        (stack / "grafana/provisioning/dashboards/shipyard.yaml").read_text()
    )
    path = providers["providers"][0]["options"]["path"]
    assert f"./monitoring:{path}:ro" in grafana["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert (stack / "monitoring" / "README.md").exists()


def test_no_secret_is_written(stack: Path) -> None:
    env = (stack / ".env.example").read_text()
    assert "POSTGRES_PASSWORD=\n" in env and "GRAFANA_ADMIN_PASSWORD=\n" in env
    assert not (stack / ".env").exists()
    text = (stack / "docker-compose.yaml").read_text()
    for service in compose(stack)["services"].values():
        for key, value in service.get("environment", {}).items():
            if "PASSWORD" in key:
                assert value.startswith("${") and value.endswith("}"), (key, value)
    assert "@postgres" in text and ":${POSTGRES_PASSWORD" not in text  # not in the URL


def test_two_renders_are_byte_identical(churn: Any, stores: Any) -> None:
    one, two = render(stores), render(stores)
    assert one == two
    assert {"model/bundle.json", "model/manifest.json", "model/model.onnx"} <= set(one)
    assert not {"import-model.py", "model-version.json"} & set(one)
    other = render(stores, port=9000)
    changed = sorted(name for name in one if one[name] != other[name])
    assert changed == ["README.md", "docker-compose.yaml", "prometheus/prometheus.yml"]


def test_an_image_instead_of_a_build(churn: Any, stores: Any) -> None:
    files = render(stores, settings={"server_image": "ghcr.io/acme/shipyard:0.1.0"})
    services = yaml.safe_load(str(files["docker-compose.yaml"]))["services"]
    assert services["shipyard"]["image"] == "ghcr.io/acme/shipyard:0.1.0"
    assert "build" not in services["shipyard"] and "build" not in services["model"]
    assert "SHIPYARD_SOURCE" not in str(files[".env.example"])
    built = render(stores, settings={"source": "../shipyard"})
    services = yaml.safe_load(str(built["docker-compose.yaml"]))["services"]
    assert services["model"]["build"] == {"context": "../shipyard"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"server_image": "Not An Image"}, "is not an image reference"),
        ({"server_image": "a:1", "source": "."}, "exclude each other"),
        ({"source": ""}, "names a folder"),
        ({"grafana_port": "70000"}, "a port is 1 to 65535"),
        ({"prometheus_port": "8080"}, "two services on one host port"),
    ],
)
def test_a_bad_setting_is_refused(
    churn: Any, stores: Any, given: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as info:
        render(stores, settings=given)
    assert info.value.details["field"] == "set"


def test_a_refused_render_writes_nothing(
    churn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.cli.main import main

    out = tmp_path / "stack"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "deploy",
                "render",
                "models:/churn@champion",
                "-t",
                "compose",
                "-o",
                str(out),
                "--set",
                "grafana_port=8080",
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "two services on one host port" in err[0]
    assert not out.exists()


def run_import(stack: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """The `model` service's command (`shipyard models import …` then `shipyard deploy
    create …`), the real CLI in a shell, on a fresh store of its own; /model is the render's
    model/ folder."""
    entrypoint = compose(stack)["services"]["model"]["entrypoint"]
    assert entrypoint[:2] == ["sh", "-c"] and " /model " in entrypoint[2]
    script = entrypoint[2].replace(" /model ", f" {stack / 'model'} ")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, env=env, timeout=180
    )


def fresh_stores(home: Path) -> Any:
    from shipyard.config import Settings
    from shipyard.stores import open_stores

    return open_stores(Settings(home=home, db_url=None, artifacts=None))


def test_the_model_service_imports_the_version_and_points_the_endpoint_at_it(
    stack: Path, stores: Any, tmp_path: Path
) -> None:
    from shipyard.registry import Registry
    from shipyard.rollout import Deployments

    bundle = json.loads((stack / "model" / "bundle.json").read_text())
    rendered = Registry(stores).resolve("models:/churn@champion")
    assert bundle["digest"] == rendered.artifact_digest
    assert (
        f"--digest sha256:{bundle['digest']}"
        in compose(stack)["services"]["model"]["entrypoint"][2]
    )
    home = tmp_path / "stack-home"
    first = run_import(stack, home)
    assert first.returncode == 0, first.stderr
    assert "churn: registered as version 1 (churn@served)" in first.stdout
    assert "endpoint churn -> models:/churn@served (now version 1)" in first.stdout
    fresh = fresh_stores(home)
    endpoint = Deployments(fresh).get("churn")
    served = Registry(fresh).resolve(endpoint.model_uri)
    assert served.artifact_digest == rendered.artifact_digest
    assert (served.flavor, served.signature) == (rendered.flavor, rendered.signature)
    assert served.onnx_status == "ok" and served.onnx_digest == rendered.onnx_digest
    audit = [e.action for e in Registry(fresh).audit("churn")]
    assert "version.import" in audit
    model = Registry(fresh).load(endpoint.model_uri)
    assert model.backend == "onnxruntime"  # the conversion travelled with the bundle
    again = run_import(stack, home)  # a second `docker compose up` changes nothing
    assert again.returncode == 0, again.stderr
    assert "churn: already registered as version 1" in again.stdout
    assert len(Registry(fresh).list_versions("churn")) == 1
    after = Deployments(fresh).get("churn")
    assert (after.model_uri, after.generation) == (endpoint.model_uri, endpoint.generation)
    assert [e.action for e in Registry(fresh).audit("churn")] == audit


def test_a_model_file_changed_after_the_render_is_refused(stack: Path, tmp_path: Path) -> None:
    from shipyard.registry import Registry

    manifest = json.loads((stack / "model" / "manifest.json").read_text())
    name = sorted(manifest["files"])[0]
    path = stack / "model" / name
    path.write_bytes(path.read_bytes() + b"tampered")
    home = tmp_path / "stack-home"
    result = run_import(stack, home)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{name} does not match its digest" in result.stderr
    assert "endpoint" not in result.stdout  # the endpoint is not created either
    assert Registry(fresh_stores(home)).list_models() == []


@pytest.mark.slow
def test_the_server_of_the_stack_serves_the_imported_version(
    stack: Path, tmp_path: Path, breast_cancer: Any
) -> None:
    """The server's command from docker-compose.yaml (on a loopback port instead of
    0.0.0.0:8080, no drain on exit) answers predictions on the endpoint the `model` service
    created, from the imported version."""
    import httpx

    from tests.helpers import SHIPYARD, free_port, wait_ready

    home = tmp_path / "stack-home"
    assert run_import(stack, home).returncode == 0
    command = compose(stack)["services"]["shipyard"]["command"]
    port = free_port()
    args = [*command]
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    args[args.index("--drain") + 1] = "0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(home)
    proc = subprocess.Popen(
        [*SHIPYARD, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        X, _ = breast_cancer
        rows = json.loads(X[:3].to_json(orient="records"))
        answer = httpx.post(f"{url}/endpoints/churn/predict", json={"instances": rows}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["predictions"]) == 3 and str(body["model_version"]) == "1"
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def test_an_endpoint_in_a_canary_serves_its_stable_version(
    canary_endpoint: str, stores: Any
) -> None:
    files = Deploy(stores).render("compose", endpoint=canary_endpoint).files
    bundle = json.loads(str(files["model/bundle.json"]))
    assert bundle["uri"] == "models:/churn/1"
    script = yaml.safe_load(str(files["docker-compose.yaml"]))["services"]["model"]["entrypoint"]
    assert "shipyard deploy create churn-api --model churn@served" in script[2]
    assert "in a canary of models:/churn/2: the stack serves its stable" in str(files["README.md"])


def test_rendering_again_over_the_stack_shows_no_change(
    churn: Any, stores: Any, stack: Path
) -> None:
    written = Deploy(stores).write(render(stores), stack, what="compose test")
    assert written.changed == () and written.diff == ""  # the model's bytes read back as text
