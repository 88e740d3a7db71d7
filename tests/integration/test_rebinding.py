"""DNS rebinding: a web page whose domain an attacker re-points at 127.0.0.1 reaches a loopback
server under that domain's name. Anonymous requests from this machine must name the server by
IP address or localhost; credentials, or a name in SHIPYARD_ALLOWED_HOSTS, let others through.
Open routes (health, the UI's shell) stay open."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from shipyard.stores import open_stores


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


def _ask(url: str, host: str, path: str = "/api/models", **headers: str) -> httpx.Response:
    return httpx.get(url + path, headers={"host": host, **headers}, timeout=10)


def test_anonymous_requests_by_a_foreign_name_are_refused(settings: Settings) -> None:
    key = open_stores(settings).metadata.keys.create("ci", scopes=["read"], actor="t")[1]
    with BackgroundServer(create_server_app(settings, refresh_seconds=5)) as srv:
        srv.wait_ready("/health/live")
        port = srv.url.rsplit(":", 1)[1]
        refused = _ask(srv.url, f"attacker.example:{port}")
        assert refused.status_code == 403 and refused.json()["field"] == "host"
        assert "SHIPYARD_ALLOWED_HOSTS" in refused.json()["error"]
        put = httpx.put(
            f"{srv.url}/api/models/m/tags/x",
            json={"value": "y"},
            headers={"host": "attacker.example"},
        )
        assert put.status_code == 403
        for host in (
            f"127.0.0.1:{port}",
            "localhost",
            f"LOCALHOST:{port}",
            "[::1]",
            "app.localhost",
        ):
            assert _ask(srv.url, host).status_code == 200, host
        assert _ask(srv.url, "attacker.example", authorization=f"Bearer {key}").status_code == 200
        assert _ask(srv.url, "attacker.example", "/health/live").status_code == 200
        assert _ask(srv.url, "attacker.example", "/ui/").status_code == 200


def test_allowed_hosts_name_more(settings: Settings) -> None:
    named = settings.model_copy(update={"allowed_hosts": "shipyard.internal, Other.Example"})
    with BackgroundServer(create_server_app(named, refresh_seconds=5)) as srv:
        srv.wait_ready("/health/live")
        assert _ask(srv.url, "shipyard.internal").status_code == 200
        assert _ask(srv.url, "other.example:8080").status_code == 200
        assert _ask(srv.url, "attacker.example").status_code == 403
