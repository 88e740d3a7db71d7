"""The compose target: a laptop stack around one model version, for `docker compose up`.

    shipyard deploy render models:/churn@champion -t compose -o churn-stack
    cd churn-stack && cp .env.example .env   # then give its variables a value
    docker compose up -d && curl -s localhost:8080/health/ready

Services: PostgreSQL (metadata), Redis (rate limits, online features), the `model` one-shot
that imports the rendered version into the stack's stores (its files travel with the render
in `model/` as a bundle, `registry.bundle`: `shipyard models import /model --digest …`
checks each against its digest) and points the endpoint at it (alias `served`), `shipyard server`
(every endpoint, the API and the UI, from the project's own image), Prometheus scraping the
server's /metrics, and Grafana with Prometheus as its data source and a dashboards folder,
`monitoring/`, where `shipyard deploy render … -t monitoring -o monitoring` puts its
dashboard and alert rules. Ports are published on 127.0.0.1 only; passwords come from
`.env`, of which the render writes only an example.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

from shipyard.deploy.manifests import SHUTDOWN_MARGIN
from shipyard.deploy.manifests import dump_yaml as _yaml
from shipyard.deploy.options import IMAGE_REFERENCE
from shipyard.deploy.targets import Context, number_text
from shipyard.deploy.targets.docker import bundle_files
from shipyard.errors import InvalidArgumentError

SETTINGS: dict[str, str] = {
    "server_image": "run this image of shipyard instead of building it (e.g. "
    "ghcr.io/acme/shipyard:0.1.0)",
    "source": "the shipyard checkout whose Dockerfile builds the server image (default: "
    "$SHIPYARD_SOURCE from .env)",
    "grafana_port": "host port of Grafana (default 3000)",
    "prometheus_port": "host port of Prometheus (default 9090)",
}

POSTGRES_IMAGE = "postgres:16-alpine"
REDIS_IMAGE = "redis:7-alpine"
PROMETHEUS_IMAGE = "prom/prometheus:v2.53.2"
GRAFANA_IMAGE = "grafana/grafana:11.2.0"
_MISSING_ENV = "copy .env.example to .env and set it"
_PASSWORD = "${POSTGRES_PASSWORD:?" + _MISSING_ENV + "}"
SERVED_ALIAS = "served"  # the alias the `model` one-shot sets and the endpoint follows
_HEADER = (
    "# docker compose stack serving {uri}{named}, rendered by shipyard {version}.\n"
    "# cp .env.example .env (and set its variables), then: docker compose up -d\n"
)


def render(context: Context) -> dict[str, str | bytes]:
    """docker-compose.yaml, .env.example, prometheus.yml, Grafana's provisioning and the
    model's bundle, which the `model` one-shot imports."""
    ports = _ports(context)
    model = context.facts.model
    folder = resources.files("shipyard.deploy").joinpath("templates", "compose")
    files: dict[str, str | bytes] = {
        "docker-compose.yaml": _compose_yaml(context, ports),
        ".env.example": _env_example(context),
        "prometheus/prometheus.yml": _prometheus_yml(context),
        "grafana/provisioning/datasources/prometheus.yaml": _yaml(_DATASOURCES),
        "grafana/provisioning/dashboards/shipyard.yaml": _yaml(_DASHBOARDS),
        "README.md": folder.joinpath("README.md.in")
        .read_text("utf-8")
        .format(
            project=f"shipyard-{context.facts.app}",
            uri=model.uri,
            endpoint=context.facts.app,
            version=context.facts.shipyard_version,
            port=ports["shipyard"],
            prometheus_port=ports["prometheus"],
            grafana_port=ports["grafana"],
            rollout=_rollout_note(context),
        ),
        "monitoring/README.md": folder.joinpath("monitoring-README.md").read_text("utf-8"),
        **bundle_files(context, model),
    }
    return files


def _rollout_note(context: Context) -> str:
    """The stack serves one version: an endpoint's candidate is not imported."""
    endpoint = context.facts.endpoint
    if endpoint is None or endpoint.candidate is None:
        return ""
    return (
        f"\nEndpoint {endpoint.name} is in a {endpoint.policy} of {endpoint.candidate.uri}: "
        "the stack serves its stable\nversion; start the rollout in the stack with "
        "`shipyard deploy canary` (or ab, shadow, bluegreen).\n"
    )


def _ports(context: Context) -> dict[str, int]:
    out = {"shipyard": context.options.port}
    for key, default in (("grafana_port", 3000), ("prometheus_port", 9090)):
        text = context.options.setting(key, str(default))
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise InvalidArgumentError(f"--set {key}={text}: a port is 1 to 65535", field="set")
        out[key.removesuffix("_port")] = int(text)
    if len(set(out.values())) < len(out):
        listed = ", ".join(f"{name} {port}" for name, port in out.items())
        raise InvalidArgumentError(
            f"two services on one host port ({listed}): choose another with --port or "
            "--set grafana_port=/prometheus_port=",
            field="set",
        )
    return out


def _server_image(context: Context) -> dict[str, Any]:
    """The server's image: a given one, or the project's own built from its Dockerfile."""
    image = context.options.settings.get("server_image")
    source = context.options.settings.get("source")
    if image and source:
        raise InvalidArgumentError(
            "--set server_image and --set source exclude each other: run an image, or build "
            "one from a checkout",
            field="set",
        )
    if image:
        if not IMAGE_REFERENCE.match(image):
            raise InvalidArgumentError(
                f"--set server_image={image} is not an image reference "
                "(e.g. ghcr.io/acme/shipyard:0.1.0)",
                field="set",
            )
        return {"image": image}
    if source is not None and (not source.strip() or "\n" in source or "$" in source):
        raise InvalidArgumentError(
            "--set source= names a folder (a checkout of shipyard with its Dockerfile)",
            field="set",
        )
    context_dir = source or "${SHIPYARD_SOURCE:?" + _MISSING_ENV + "}"
    version = context.facts.shipyard_version or "latest"
    return {"image": f"shipyard:{version}", "build": {"context": context_dir}}


def _stores_env() -> dict[str, str]:
    # the password reaches libpq as PGPASSWORD: never in a URL a log line may print
    return {
        "SHIPYARD_DB_URL": "postgresql+psycopg://shipyard@postgres:5432/shipyard",
        "PGPASSWORD": _PASSWORD,
        "SHIPYARD_REDIS_URL": "redis://redis:6379/0",
    }


_HEALTHY = {"condition": "service_healthy"}
_VOLUMES = ("postgres-data", "redis-data", "shipyard-data", "prometheus-data", "grafana-data")


def _compose_yaml(context: Context, ports: dict[str, int]) -> str:
    model = context.facts.model
    services = {
        **_store_services(),
        **_shipyard_services(context, _server_image(context)),
        **_monitoring_services(ports),
    }
    doc = {
        "name": f"shipyard-{context.facts.app}",
        "services": services,
        "volumes": {name: {} for name in _VOLUMES},
    }
    named = f" ({model.name}@{model.alias})" if model.alias else ""
    header = _HEADER.format(uri=model.uri, named=named, version=context.facts.shipyard_version)
    return header + _yaml(doc)


def _store_services() -> dict[str, Any]:
    """PostgreSQL and Redis, each with a healthcheck the others wait for."""
    check = {"interval": "5s", "timeout": "3s", "retries": 20}
    return {
        "postgres": {
            "image": POSTGRES_IMAGE,
            "environment": {
                "POSTGRES_USER": "shipyard",
                "POSTGRES_DB": "shipyard",
                "POSTGRES_PASSWORD": _PASSWORD,
            },
            "volumes": ["postgres-data:/var/lib/postgresql/data"],
            "healthcheck": {
                "test": ["CMD", "pg_isready", "--username=shipyard", "--dbname=shipyard"],
                **check,
            },
            "restart": "unless-stopped",
        },
        "redis": {
            "image": REDIS_IMAGE,
            "volumes": ["redis-data:/data"],
            "healthcheck": {"test": ["CMD", "redis-cli", "ping"], **check},
            "restart": "unless-stopped",
        },
    }


def _shipyard_services(context: Context, image: dict[str, Any]) -> dict[str, Any]:
    """The `model` one-shot (`_import_script`), then `shipyard server` once it succeeded."""
    options = context.options
    port = options.port
    server_args = ["server", "--host", "0.0.0.0", "--port", str(port)]
    server_args += ["--drain", number_text(options.drain_seconds)]
    if context.facts.model.needs_trust:
        server_args.append("--trusted")
    ready = f"http://127.0.0.1:{port}/health/ready"
    return {
        "model": {
            **image,
            "entrypoint": ["sh", "-c", _import_script(context)],
            "environment": _stores_env(),
            "volumes": ["shipyard-data:/data", "./model:/model:ro"],
            "depends_on": {"postgres": _HEALTHY, "redis": _HEALTHY},
            "restart": "no",
        },
        "shipyard": {
            **image,
            "command": server_args,
            "environment": _stores_env(),
            "volumes": ["shipyard-data:/data"],
            "ports": [f"127.0.0.1:{port}:{port}"],
            "depends_on": {
                "postgres": _HEALTHY,
                "redis": _HEALTHY,
                "model": {"condition": "service_completed_successfully"},
            },
            # no curl in the image: the standard library asks the readiness route
            "healthcheck": {
                "test": [
                    "CMD",
                    "python",
                    "-c",
                    f"import urllib.request; urllib.request.urlopen('{ready}', timeout=4)",
                ],
                "interval": "10s",
                "timeout": "5s",
                "start_period": "30s",
                "retries": 3,
            },
            "stop_grace_period": f"{math.ceil(options.drain_seconds) + SHUTDOWN_MARGIN}s",
            "restart": "unless-stopped",
        },
    }


def _import_script(context: Context) -> str:
    """The `model` one-shot: import the bundle (refused unless its manifest and its ONNX
    conversion have the rendered digests), point alias `served` at it, and create the
    endpoint on it unless it follows that alias already (a rollout started in the stack
    stays). Running it again changes nothing."""
    model = context.facts.model
    endpoint = context.facts.app
    served = f"{model.name}@{SERVED_ALIAS}"
    pins = f"--digest sha256:{model.digest}"
    if model.onnx_digest:  # the manifest's digest does not cover the conversion
        pins += f" --onnx-digest sha256:{model.onnx_digest}"
    return (
        f"shipyard models import /model {pins} --alias {SERVED_ALIAS}"
        f" && shipyard deploy create {endpoint} --model {served} --replace --if-changed"
        f" --reason 'docker compose serves {model.uri}'"
    )


def _monitoring_services(ports: dict[str, int]) -> dict[str, Any]:
    """Prometheus scraping the server, Grafana reading Prometheus; both read monitoring/."""
    return {
        "prometheus": {
            "image": PROMETHEUS_IMAGE,
            "command": [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
            ],
            "volumes": [
                "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
                "./monitoring:/etc/prometheus/monitoring:ro",
                "prometheus-data:/prometheus",
            ],
            "ports": [f"127.0.0.1:{ports['prometheus']}:9090"],
            "depends_on": {"shipyard": _HEALTHY},
            "restart": "unless-stopped",
        },
        "grafana": {
            "image": GRAFANA_IMAGE,
            "environment": {
                "GF_SECURITY_ADMIN_USER": "admin",
                "GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:?" + _MISSING_ENV + "}",
                "GF_USERS_ALLOW_SIGN_UP": "false",
            },
            "volumes": [
                "./grafana/provisioning:/etc/grafana/provisioning:ro",
                "./monitoring:/etc/grafana/dashboards:ro",
                "grafana-data:/var/lib/grafana",
            ],
            "ports": [f"127.0.0.1:{ports['grafana']}:3000"],
            "depends_on": {"prometheus": {"condition": "service_started"}},
            "restart": "unless-stopped",
        },
    }


def _env_example(context: Context) -> str:
    lines = [
        "# Copy to .env (docker compose reads it) and give every variable a value: the stack",
        "# refuses to start while one is empty. Keep .env out of version control.",
        "POSTGRES_PASSWORD=",
        "GRAFANA_ADMIN_PASSWORD=",
    ]
    if "server_image" not in context.options.settings and "source" not in context.options.settings:
        lines += [
            "# a checkout of shipyard: its Dockerfile builds the server image",
            "SHIPYARD_SOURCE=../shipyard",
        ]
    return "\n".join(lines) + "\n"


def _prometheus_yml(context: Context) -> str:
    doc = {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        # the monitoring target's alert rules, once rendered into monitoring/
        # the monitoring target's rules.yml (its promtool unit tests are rules.test.yaml)
        "rule_files": ["/etc/prometheus/monitoring/*.yml"],
        "scrape_configs": [
            {
                "job_name": "shipyard",
                "metrics_path": "/metrics",
                "static_configs": [
                    {
                        "targets": [f"shipyard:{context.options.port}"],
                        "labels": {"stack": f"shipyard-{context.facts.app}"},
                    }
                ],
            }
        ],
    }
    return "# Prometheus of the compose stack: scrapes shipyard server's /metrics.\n" + _yaml(doc)


_DATASOURCES = {
    "apiVersion": 1,
    "datasources": [
        {
            "name": "Prometheus",
            "uid": "prometheus",
            "type": "prometheus",
            "access": "proxy",
            "url": "http://prometheus:9090",
            "isDefault": True,
            "editable": False,
        }
    ],
}

_DASHBOARDS = {
    "apiVersion": 1,
    "providers": [
        {
            "name": "shipyard",
            "folder": "shipyard",
            "type": "file",
            "disableDeletion": True,
            "allowUiUpdates": False,
            "updateIntervalSeconds": 30,
            "options": {"path": "/etc/grafana/dashboards"},
        }
    ],
}
