"""Auth decisions without a server: the scope a route needs, what a principal may do, and JWT
claims, on real tokens signed with PyJWT (HS256 and RS256)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from shipyard.config import Settings
from shipyard.errors import UnauthorizedError
from shipyard.serving.auth import Authenticator, Principal, required_scope

SECRET = "s" * 40


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/v2/health/live", None),
        ("GET", "/health/ready", None),
        ("GET", "/metrics", None),
        ("GET", "/docs", None),
        ("GET", "/openapi.json", None),
        ("POST", "/endpoints/churn/predict", "predict"),
        ("POST", "/endpoints/churn/feedback", "feedback"),
        ("POST", "/v2/models/churn/infer", "predict"),
        ("POST", "/v2/models/churn/versions/3/infer", "predict"),
        ("GET", "/v2/models/churn", "read"),
        ("HEAD", "/api/runs", "read"),
        ("GET", "/endpoints/churn/predict", "read"),
        ("POST", "/endpoints/churn/predict/more", "admin"),
        ("POST", "/api/models", "admin"),
        ("DELETE", "/api/endpoints/churn", "admin"),
        ("GET", "/metrics/extra", "read"),
    ],
)
def test_required_scope(method: str, path: str, scope: str | None) -> None:
    assert required_scope(method, path) == scope


def test_admin_allows_every_scope_and_others_only_their_own() -> None:
    admin = Principal("key:1", "ops", frozenset({"admin"}))
    reader = Principal("key:2", "dash", frozenset({"read"}))
    assert [admin.allows(s) for s in ("read", "predict", "admin")] == [True, True, True]
    assert [reader.allows(s) for s in ("read", "predict", "admin")] == [True, False, False]
    assert admin.actor == "key:1/ops"
    assert Principal("jwt:alice", "alice", frozenset()).actor == "jwt:alice"


@pytest.mark.parametrize(
    ("method", "path", "refused"),
    [
        ("POST", "/endpoints/churn/predict", None),
        ("POST", "/v2/models/churn/infer", None),
        ("GET", "/api/endpoints/churn", None),
        ("GET", "/api/deployments/churn/history", None),
        ("GET", "/api/monitoring/churn", None),
        ("GET", "/api/endpoints", None),  # the listing, filtered by its handler
        ("POST", "/endpoints/fraud/predict", "may not use endpoint 'fraud'"),
        ("GET", "/v2/models/fraud", "may not use endpoint 'fraud'"),
        ("POST", "/api/endpoints", "is not about one endpoint"),
        ("GET", "/api/models/churn", "is not about one endpoint"),
        ("GET", "/api/runs", "is not about one endpoint"),
    ],
)
def test_an_endpoint_limited_principal(method: str, path: str, refused: str | None) -> None:
    principal = Principal("key:1", "app", frozenset({"admin"}), frozenset({"churn"}))
    reason = principal.endpoint_refusal(method, path)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_an_unlimited_principal_is_refused_nothing() -> None:
    principal = Principal("key:1", "app", frozenset({"read"}))
    assert principal.endpoint_refusal("GET", "/api/runs") is None


def _auth(**settings: Any) -> Authenticator:
    return Authenticator(Settings(jwt_secret=SECRET, **settings), keys=None)


def _token(key: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    body = {"sub": "alice", "exp": int(time.time()) + 60, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


def _principal(token: str, auth: Authenticator | None = None) -> Principal:
    return asyncio.run((auth or _auth()).authenticate(token))


@pytest.mark.parametrize(
    ("claims", "scopes", "endpoints"),
    [
        ({"scope": "read predict"}, {"read", "predict"}, None),
        ({"scopes": ["admin"]}, {"admin"}, None),
        ({}, set(), None),
        ({"scope": "predict", "endpoints": ["churn", "fraud"]}, {"predict"}, {"churn", "fraud"}),
        ({"endpoints": []}, set(), set()),
    ],
)
def test_jwt_claims_become_the_principal(
    claims: dict[str, Any], scopes: set[str], endpoints: set[str] | None
) -> None:
    principal = _principal(_token(**claims))
    assert (principal.id, principal.name) == ("jwt:alice", "alice")
    assert principal.scopes == scopes
    assert principal.endpoints == (None if endpoints is None else frozenset(endpoints))


def test_jwt_principals_take_the_servers_rate() -> None:
    principal = _principal(_token(), _auth(rate_per_second=3.0, rate_burst=6))
    assert (principal.rate_per_second, principal.burst) == (3.0, 6)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"scope": 5}, "claim 'scope' must be"),
        ({"scopes": ["read", 1]}, "claim 'scopes' must be"),
        ({"endpoints": "churn"}, "claim 'endpoints' must be a list"),
        ({"endpoints": ["churn", ""]}, "claim 'endpoints' must be a list"),
        ({"sub": "x" * 201}, "claim 'sub' must be"),
        ({"sub": None}, 'missing the "sub" claim'),
        ({"exp": None}, 'missing the "exp" claim'),
        ({"exp": int(time.time()) - 120}, "expired"),
    ],
)
def test_bad_claims_are_401_naming_the_claim(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(UnauthorizedError, match=message) as info:
        _principal(_token(**claims))
    assert info.value.http_status == 401


def test_a_token_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(UnauthorizedError, match="invalid token: Signature"):
        _principal(_token(key="o" * 40))


def test_an_algorithm_not_listed_is_refused() -> None:
    with pytest.raises(UnauthorizedError, match="'HS512' is not accepted"):
        _principal(_token(algorithm="HS512"))


def test_hs_tokens_need_a_secret() -> None:
    auth = Authenticator(Settings(), keys=None)
    with pytest.raises(UnauthorizedError, match="no SHIPYARD_JWT_SECRET"):
        asyncio.run(auth.authenticate(_token()))


def test_audience_and_issuer_are_checked_when_set() -> None:
    auth = _auth(jwt_audience="shipyard", jwt_issuer="https://idp")
    assert _principal(_token(aud="shipyard", iss="https://idp"), auth).name == "alice"
    with pytest.raises(UnauthorizedError, match=r"(?i)audience"):
        _principal(_token(aud="other", iss="https://idp"), auth)
    with pytest.raises(UnauthorizedError, match=r"(?i)issuer"):
        _principal(_token(aud="shipyard", iss="https://evil"), auth)


def test_rs256_with_a_public_key_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "key.pem").write_bytes(pem)
    auth = Authenticator(Settings(jwt_public_key=str(tmp_path / "key.pem")), keys=None)
    token = _token(key=private, algorithm="RS256", scope="read")  # type: ignore[arg-type]
    assert _principal(token, auth).scopes == {"read"}
    with pytest.raises(UnauthorizedError, match="RS\\* tokens are not accepted"):
        _principal(token, _auth())


def test_a_token_that_is_no_jwt_is_401_without_a_key_store() -> None:
    with pytest.raises(UnauthorizedError, match="invalid or revoked API key"):
        _principal("sy_abc_def")
