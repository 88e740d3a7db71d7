"""What a running server does when a service it depends on goes away and comes back, with the
real service behind a TCP proxy that the test cuts: PostgreSQL (loaded models keep serving,
the control plane answers 503 and recovers by itself) and Redis (rate limiting fails over as
configured and says so on /metrics)."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from tests.faults.proxy import TcpProxy
from tests.helpers import redis_url, wait_for


@pytest.fixture
def rows(settings: Settings, breast_cancer: Any, logreg: Any) -> list[dict[str, Any]]:
    X, _ = breast_cancer
    with sy.start_run(experiment="faults") as run:
        mv = run.log_model(logreg, name="churn", input_example=X[:5], onnx=False)
    from shipyard.stores import open_stores

    open_stores(settings).metadata.endpoints.create(
        "churn", f"models:/churn/{mv.version}", actor="t"
    )
    return X.iloc[:2].to_dict(orient="records")  # type: ignore[no-any-return]


def _proxy_for(url: str) -> TcpProxy:
    parsed = urlparse(url.replace("postgresql+psycopg", "postgresql"))
    return TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 5432)


def _metric(srv: BackgroundServer, name: str) -> float:
    for line in httpx.get(f"{srv.url}/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not on /metrics")


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_database_outage_keeps_models_serving_and_the_api_recovers(
    settings: Settings, rows: list[dict[str, Any]]
) -> None:
    with _proxy_for(settings.resolved_db_url) as proxy:
        proxied = settings.model_copy(update={"db_url": proxy.url_for(settings.resolved_db_url)})
        with BackgroundServer(create_server_app(proxied, refresh_seconds=0.2)) as srv:
            srv.wait_ready()
            predict = f"{srv.url}/endpoints/churn/predict"
            assert httpx.post(predict, json={"instances": rows}).status_code == 200
            proxy.cut()
            deadline = time.monotonic() + 3  # across several refreshes of the endpoint table
            while time.monotonic() < deadline:
                r = httpx.post(predict, json={"instances": rows}, timeout=10)
                assert r.status_code == 200, r.text
                time.sleep(0.1)
            down = httpx.get(f"{srv.url}/api/models", timeout=30)
            assert down.status_code == 503, down.text
            assert "database" in down.json()["error"]
            assert str(proxy.port) not in down.text  # no address of the database leaks
            proxy.restore()
            wait_for(lambda: httpx.get(f"{srv.url}/api/models", timeout=30).status_code == 200, 30)
            assert httpx.post(predict, json={"instances": rows}).status_code == 200


@pytest.mark.redis
@pytest.mark.parametrize(
    ("mode", "during"),
    [("local", [200, 200, 429]), ("open", [200, 200, 200]), ("closed", [503, 503, 503])],
)
def test_redis_outage_rate_limits_as_configured(
    settings: Settings, rows: list[dict[str, Any]], mode: str, during: list[int]
) -> None:
    url = redis_url()
    from shipyard.stores import open_stores

    _, key = open_stores(settings).metadata.keys.create(
        f"rl-{uuid.uuid4().hex[:6]}", scopes=["predict"], rate_per_second=0.5, burst=2, actor="t"
    )
    headers = {"authorization": f"Bearer {key}"}
    parsed = urlparse(url)
    with TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 6379) as proxy:
        app = create_server_app(
            settings.model_copy(
                update={
                    "auth_required": True,
                    "auth_cache_seconds": 0.0,
                    "redis_url": proxy.url_for(url),
                    "rate_limit_on_redis_error": mode,
                    "rate_limit_redis_retry_seconds": 0.5,
                }
            ),
            refresh_seconds=0.2,
        )
        with BackgroundServer(app) as srv:
            srv.wait_ready()
            predict = f"{srv.url}/endpoints/churn/predict"

            def codes(n: int) -> list[int]:
                return [
                    httpx.post(predict, json={"instances": rows}, headers=headers).status_code
                    for _ in range(n)
                ]

            assert codes(1) == [200]  # through Redis: one of its two tokens
            assert _metric(srv, "shipyard_rate_limit_degraded") == 0
            proxy.cut()
            assert codes(3) == during
            assert _metric(srv, "shipyard_rate_limit_degraded") == 1
            assert _metric(srv, "shipyard_rate_limit_redis_errors_total") >= 1
            proxy.restore()
            time.sleep(0.6)
            assert codes(1) == [200]  # Redis again: its bucket kept the second token
            assert _metric(srv, "shipyard_rate_limit_degraded") == 0
