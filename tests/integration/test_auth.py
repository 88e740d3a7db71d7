"""API keys, JWTs and rate limits over real HTTP (keys on SQLite and PostgreSQL; shared
limits through the real Redis)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from tests.helpers import redis_url


@pytest.fixture
def model(settings: Settings, breast_cancer, logreg) -> Any:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    with sy.start_run(experiment="auth") as run:
        mv = run.log_model(logreg, name="churn", input_example=X[:5])
    sy.set_alias("churn", "champion", mv.version)
    from shipyard.stores import open_stores

    stores = open_stores(settings)
    for name in ("churn", "other"):
        stores.metadata.endpoints.create(name, "models:/churn@champion", actor="t")
    return X.iloc[:2].to_dict(orient="records")


def start(settings: Settings, **update: Any) -> BackgroundServer:
    app = create_server_app(
        settings.model_copy(update={"auth_required": True, "auth_cache_seconds": 0.0, **update}),
        refresh_seconds=0.2,
    )
    srv = BackgroundServer(app).start()
    srv.wait_ready()
    return srv


@pytest.fixture
def server(settings: Settings, model: Any) -> Iterator[BackgroundServer]:
    srv = start(settings, jwt_secret=SecretStr("s3cret-for-tests-only-0123456789abcdef"))
    yield srv
    srv.stop()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_keys_are_stored_hashed_and_scoped(
    settings: Settings, model: Any, server: BackgroundServer
) -> None:
    from shipyard.stores import open_stores

    keys = open_stores(settings).metadata.keys
    record, key = keys.create("bot", scopes=["predict"], endpoints=["churn"], actor="t")
    assert keys.verify(key) == record
    assert keys.verify(key + "x") is None
    raw = open_stores(settings).metadata.db
    with raw.read() as conn:
        import sqlalchemy as sa

        stored = conn.execute(sa.text("SELECT hash FROM api_keys")).scalar()
    assert key not in str(stored) and len(stored) == 64
    body = {"instances": model}
    url = server.url
    assert httpx.post(f"{url}/endpoints/churn/predict", json=body).status_code == 401
    r = httpx.post(f"{url}/endpoints/churn/predict", json=body, headers=bearer("sy_nope_nope"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert (
        httpx.post(f"{url}/endpoints/churn/predict", json=body, headers=bearer(key)).status_code
        == 200
    )
    assert (
        httpx.post(
            f"{url}/endpoints/churn/predict", json=body, headers={"x-api-key": key}
        ).status_code
        == 200
    )
    r = httpx.post(f"{url}/endpoints/other/predict", json=body, headers=bearer(key))
    assert r.status_code == 403 and "endpoint 'other'" in r.json()["error"]
    r = httpx.get(f"{url}/api/models", headers=bearer(key))
    assert r.status_code == 403 and r.json()["scope"] == "read"
    assert httpx.get(f"{url}/health/ready").status_code == 200  # probes need no key
    assert httpx.get(f"{url}/metrics").status_code == 200
    _, admin = keys.create("ops", scopes=["admin"], actor="t")
    assert httpx.get(f"{url}/api/models", headers=bearer(admin)).status_code == 200
    keys.revoke(record.id, actor="t", reason="test")
    assert (
        httpx.post(f"{url}/endpoints/churn/predict", json=body, headers=bearer(key)).status_code
        == 401
    )
    actions = [e.action for e in open_stores(settings).metadata.audit.list(subject_type="api_key")]
    assert actions == ["key.revoke", "key.create", "key.create"]


def test_bad_key_requests_change_nothing(settings: Settings) -> None:
    from shipyard.stores import open_stores

    keys = open_stores(settings).metadata.keys
    for kwargs in (
        {"scopes": []},
        {"scopes": ["root"]},
        {"scopes": ["read"], "rate_per_second": 0},
    ):
        with pytest.raises(InvalidArgumentError):
            keys.create("x", actor="t", **kwargs)  # type: ignore[arg-type]
    assert keys.list() == []


def test_jwt_hs256(server: BackgroundServer, model: Any) -> None:
    secret = "s3cret-for-tests-only-0123456789abcdef"
    now = int(time.time())
    good = jwt.encode({"sub": "svc", "scope": "predict read", "exp": now + 60}, secret, "HS256")
    body = {"instances": model}
    assert (
        httpx.post(
            f"{server.url}/endpoints/churn/predict", json=body, headers=bearer(good)
        ).status_code
        == 200
    )
    expired = jwt.encode({"sub": "svc", "scope": "predict", "exp": now - 60}, secret, "HS256")
    r = httpx.post(f"{server.url}/endpoints/churn/predict", json=body, headers=bearer(expired))
    assert r.status_code == 401 and "expired" in r.json()["error"]
    forged = jwt.encode({"sub": "svc", "scope": "admin", "exp": now + 60}, "wrong" * 8, "HS256")
    assert httpx.get(f"{server.url}/api/models", headers=bearer(forged)).status_code == 401
    narrow = jwt.encode(
        {"sub": "svc", "scope": "predict", "endpoints": ["other"], "exp": now + 60}, secret, "HS256"
    )
    assert (
        httpx.post(
            f"{server.url}/endpoints/churn/predict", json=body, headers=bearer(narrow)
        ).status_code
        == 403
    )


def test_jwt_rs256(settings: Settings, model: Any, tmp_path: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    srv = start(settings, jwt_public_key=str(tmp_path / "pub.pem"), jwt_audience="shipyard")
    try:
        claims = {"sub": "svc", "scope": "read", "aud": "shipyard", "exp": int(time.time()) + 60}
        token = jwt.encode(claims, private, "RS256")
        assert httpx.get(f"{srv.url}/api/models", headers=bearer(token)).status_code == 200
        wrong_aud = jwt.encode({**claims, "aud": "elsewhere"}, private, "RS256")
        assert httpx.get(f"{srv.url}/api/models", headers=bearer(wrong_aud)).status_code == 401
        hs = jwt.encode(
            {"sub": "x", "scope": "read", "exp": int(time.time()) + 60}, "k" * 40, "HS256"
        )
        r = httpx.get(f"{srv.url}/api/models", headers=bearer(hs))
        assert r.status_code == 401 and "SHIPYARD_JWT_SECRET" in r.json()["error"]
    finally:
        srv.stop()


def test_rate_limit_in_process(settings: Settings, model: Any, server: BackgroundServer) -> None:
    from shipyard.stores import open_stores

    # a token every 4 s: five requests on a loaded machine still come well within one refill
    _, key = open_stores(settings).metadata.keys.create(
        "slow", scopes=["predict"], rate_per_second=0.25, burst=3, actor="t"
    )
    codes = [
        httpx.post(
            f"{server.url}/endpoints/churn/predict", json={"instances": model}, headers=bearer(key)
        )
        for _ in range(5)
    ]
    assert [c.status_code for c in codes] == [200, 200, 200, 429, 429]
    assert 1 <= int(codes[3].headers["retry-after"]) <= 4
    assert "rate limit of 0.25/s" in codes[3].json()["error"]
    time.sleep(int(codes[4].headers["retry-after"]) + 0.1)
    assert (
        httpx.post(
            f"{server.url}/endpoints/churn/predict", json={"instances": model}, headers=bearer(key)
        ).status_code
        == 200
    )


@pytest.mark.redis
def test_rate_limit_is_shared_through_redis(settings: Settings, model: Any) -> None:
    from shipyard.serving.ratelimit import RateLimiter
    from shipyard.stores import open_stores

    url = redis_url()
    _, key = open_stores(settings).metadata.keys.create(
        f"shared-{uuid.uuid4().hex[:6]}",
        scopes=["predict"],
        rate_per_second=0.5,
        burst=4,
        actor="t",
    )
    a = start(settings, redis_url=url)
    b = start(settings, redis_url=url)
    try:
        codes = [
            httpx.post(
                f"{srv.url}/endpoints/churn/predict", json={"instances": model}, headers=bearer(key)
            ).status_code
            for srv in (a, b, a, b, a, b)
        ]
    finally:
        a.stop()
        b.stop()
    # 4 tokens shared by two replicas: a per-replica limit would have let all 6 through
    assert codes == [200, 200, 200, 200, 429, 429]
    # and with Redis gone, limiting continues in-process instead of failing requests
    import asyncio

    down = RateLimiter("redis://127.0.0.1:1/0", timeout=0.05)

    async def burst() -> list[bool]:
        out = [(await down.take("k", 1.0, 2))[0] for _ in range(3)]
        await down.close()
        return out

    assert asyncio.run(burst()) == [True, True, False]
    assert down.redis_errors == 1  # then left alone for retry_seconds: no timeout per request


def test_auth_is_off_on_loopback_by_default_and_required_elsewhere() -> None:
    from shipyard.cli.serve import secure_settings

    base = Settings()
    assert not secure_settings(base, "127.0.0.1", False).auth_required
    assert not secure_settings(base, "::1", False).auth_required
    assert secure_settings(base, "0.0.0.0", False).auth_required
    assert not secure_settings(base, "0.0.0.0", True).auth_required


def test_the_servers_fast_path_for_predictions_is_guarded_by_the_same_auth(
    settings: Settings, model: Any
) -> None:
    from shipyard.serving.asgi import asgi_entry
    from shipyard.serving.auth import AuthMiddleware

    app = create_server_app(settings.model_copy(update={"auth_required": True}))
    entry = asgi_entry(app)  # what the HTTP server runs (the tests above go through it)
    assert entry is app.fast_path and isinstance(entry.guarded, AuthMiddleware)
    entry.guarded = entry.answer  # an auth middleware whose check the fast path lacks:
    assert asgi_entry(app) is app  # the server then runs the app itself, never around auth
