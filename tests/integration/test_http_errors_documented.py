"""Error answers as documented: a 405 says which methods are allowed (`Allow`), on the hot
routes of shipyard's own protocol and through any ASGI host, and the OpenAPI document lists
the error answers every route gives, with the JSON shape they have."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer


@pytest.fixture
def app(tmp_path: Any) -> Any:
    settings = Settings(
        home=tmp_path, monitor_interval_seconds=0, rollout_interval_seconds=0, max_body_bytes=1000
    )
    return create_server_app(settings)


@pytest.fixture
def server(app: Any) -> Iterator[BackgroundServer]:
    with BackgroundServer(app) as srv:
        srv.wait_ready("/health/live")
        yield srv


WRONG_METHODS = [
    ("GET", "/endpoints/churn/predict", "POST"),  # hot routes
    ("PUT", "/v2/models/churn/infer", "POST"),
    ("DELETE", "/api/models", "GET"),  # everything else
    ("POST", "/health/live", "GET"),
    ("PATCH", "/api/endpoints/churn", "DELETE"),
]


def _check_405(r: httpx.Response, allowed: str) -> None:
    assert r.status_code == 405, r.text
    assert allowed in [m.strip() for m in r.headers["allow"].split(",")], r.headers
    assert r.json()["type"] == "HTTPError"


@pytest.mark.parametrize(("method", "path", "allowed"), WRONG_METHODS)
def test_405_says_what_is_allowed_on_shipyards_protocol(
    server: BackgroundServer, method: str, path: str, allowed: str
) -> None:
    _check_405(httpx.request(method, server.url + path), allowed)


@pytest.mark.parametrize(("method", "path", "allowed"), WRONG_METHODS)
def test_405_says_what_is_allowed_through_asgi(
    app: Any, method: str, path: str, allowed: str
) -> None:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path)

    _check_405(asyncio.run(call()), allowed)


def test_openapi_documents_the_error_answers(server: BackgroundServer) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    error = {"$ref": "#/components/schemas/Error"}
    schema = doc["components"]["schemas"]["Error"]
    operations = [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "put", "post", "delete", "patch")
    ]
    assert len(operations) > 40
    for path, method, op in operations:
        for code in ("400", "404", "405", "413", "422"):
            content = op["responses"].get(code, {}).get("content", {})
            assert content.get("application/json", {}).get("schema") == error, (path, method, code)
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # FastAPI's 422 shape
    # the answers have the documented shape
    answers = [
        httpx.get(server.url + "/api/models/nope"),  # 404
        httpx.get(server.url + "/api/runs", params={"limit": "x"}),  # 422
        httpx.post(server.url + "/endpoints/churn/feedback", content=b"x" * 2000),  # 404
        httpx.delete(server.url + "/api/models"),  # 405
    ]
    for r in answers:
        assert r.status_code in (404, 405, 413, 422), r.text
        body = r.json()
        assert set(schema["required"]) <= set(body), body
        assert all(isinstance(body[k], str) for k in ("error", "type"))


def test_feedback_is_documented_as_the_202_it_answers(tmp_path: Path) -> None:
    from shipyard.config import Settings
    from shipyard.server.app import create_server_app

    settings = Settings(home=tmp_path, db_url=f"sqlite:///{tmp_path / 'm.db'}")
    doc = create_server_app(settings).openapi()
    assert "202" in doc["paths"]["/endpoints/{name}/feedback"]["post"]["responses"]
    assert "200" not in doc["paths"]["/endpoints/{name}/feedback"]["post"]["responses"]
