"""What an authenticated caller may do on the control plane, and how the audit log names it:
endpoint-limited keys and tokens, the JWT claims' types, revocation, the acting principal —
over a real HTTP server (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt

from shipyard.config import Settings
from shipyard.serving.http import BackgroundServer
from shipyard.stores import open_stores
from tests.integration import test_auth as _auth
from tests.integration.test_auth import bearer, start

model = _auth.model  # the fixtures: two endpoints, churn and other, on one model
server = _auth.server  # a server that requires credentials and takes HS256 tokens

SECRET = "s3cret-for-tests-only-0123456789abcdef"


def token(**claims: Any) -> str:
    return jwt.encode({"sub": "svc", "exp": int(time.time()) + 60, **claims}, SECRET, "HS256")


def keys(settings: Settings) -> Any:
    return open_stores(settings).metadata.keys


def audit(settings: Settings, **filters: Any) -> list[Any]:
    return open_stores(settings).metadata.audit.list(**filters)


def test_an_endpoint_limited_admin_changes_only_its_endpoint(
    settings: Settings, model: Any, server: BackgroundServer
) -> None:
    _, key = keys(settings).create("churn-ops", scopes=["admin"], endpoints=["churn"], actor="t")
    url, auth = server.url, bearer(key)
    calls: list[tuple[str, str, Any]] = [
        ("POST", "/api/endpoints", {"name": "x", "model_uri": "models:/churn/1"}),
        # replacing its own endpoint's model goes through the same route
        (
            "POST",
            "/api/endpoints",
            {"name": "churn", "model_uri": "models:/churn/1", "replace": True},
        ),
        ("DELETE", "/api/endpoints/other", None),
        ("PUT", "/api/models/churn/aliases/champion", {"version": 1}),
        ("DELETE", "/api/models/churn/aliases/champion", None),
        ("POST", "/api/deployments/other/rollback", {}),
        ("GET", "/api/endpoints/other", None),
        ("GET", "/api/monitoring/other", None),
        ("GET", "/api/runs", None),
        ("GET", "/api/audit", None),
        ("GET", "/api/models", None),
        ("DELETE", "/api/keys/0000", None),
        ("POST", "/endpoints/other/predict", {"instances": model}),
    ]
    for method, path, body in calls:
        r = httpx.request(method, f"{url}{path}", json=body, headers=auth)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["type"] == "ForbiddenError" and r.json()["endpoints"] == ["churn"]
        if path.startswith("/api/endpoints/other"):
            assert "may not use endpoint 'other'" in r.json()["error"]
        elif "other" not in path:
            assert "limited to endpoint(s) churn" in r.json()["error"]
    endpoints = open_stores(settings).metadata.endpoints
    assert {e.name for e in endpoints.list()} == {"churn", "other"}  # none created or deleted
    assert endpoints.get("churn").model_uri == "models:/churn@champion"
    listed = httpx.get(f"{url}/api/endpoints", headers=auth).json()["endpoints"]
    assert [e["name"] for e in listed] == ["churn"]
    listed = httpx.get(f"{url}/api/deployments", headers=auth).json()["deployments"]
    assert [d["endpoint"] for d in listed] == ["churn"]
    assert httpx.get(f"{url}/api/endpoints/churn", headers=auth).status_code == 200
    assert httpx.get(f"{url}/api/deployments/churn/history", headers=auth).status_code == 200
    r = httpx.post(f"{url}/endpoints/churn/predict", json={"instances": model}, headers=auth)
    assert r.status_code == 200
    r = httpx.delete(f"{url}/api/endpoints/churn", headers=auth)
    assert r.status_code == 200 and r.json()["deleted"]


def test_an_endpoint_limited_reader_reads_only_its_endpoint(
    settings: Settings, model: Any, server: BackgroundServer
) -> None:
    _, key = keys(settings).create("churn-dash", scopes=["read"], endpoints=["churn"], actor="t")
    jwt_reader = token(scope="read", endpoints=["churn"])
    url = server.url
    for credential in (key, jwt_reader):
        auth = bearer(credential)
        for path in (
            "/api/endpoints/other",
            "/api/monitoring/other",
            "/v2/models/other",
            "/api/deployments/other",
            "/api/models/churn",
            "/api/experiments",
        ):
            r = httpx.get(f"{url}{path}", headers=auth)
            assert r.status_code == 403, (path, r.text)
        assert httpx.get(f"{url}/api/endpoints/churn", headers=auth).status_code == 200
        assert httpx.get(f"{url}/api/monitoring/churn", headers=auth).status_code == 200
        listed = httpx.get(f"{url}/api/endpoints", headers=auth).json()["endpoints"]
        assert [e["name"] for e in listed] == ["churn"]
    _, unlimited = keys(settings).create("dash", scopes=["read"], actor="t")
    listed = httpx.get(f"{url}/api/endpoints", headers=bearer(unlimited)).json()["endpoints"]
    assert sorted(e["name"] for e in listed) == ["churn", "other"]


def test_jwt_claims_of_the_wrong_type_are_refused_not_guessed_at(
    model: Any, server: BackgroundServer
) -> None:
    url, body = server.url, {"instances": model}
    # a string used to be split into characters: "churn" allowed endpoints "c", "h", …
    for claims, name in (
        ({"scope": "predict", "endpoints": "churn"}, "endpoints"),
        ({"scope": "predict", "endpoints": [1]}, "endpoints"),
        ({"scope": "predict", "endpoints": {"churn": True}}, "endpoints"),
        ({"scope": 7}, "scope"),
        ({"scope": ["predict", 1]}, "scope"),
        ({"scope": {"predict": 1}}, "scope"),
        ({"scopes": "predict", "sub": "x" * 201}, "sub"),
    ):
        r = httpx.post(f"{url}/endpoints/churn/predict", json=body, headers=bearer(token(**claims)))
        assert r.status_code == 401, (claims, r.text)
        assert r.json()["claim"] == name and f"claim '{name}'" in r.json()["error"]
    ok = token(scopes=["predict"], endpoints=["churn"])
    assert (
        httpx.post(f"{url}/endpoints/churn/predict", json=body, headers=bearer(ok)).status_code
        == 200
    )
    none = token(scope="predict", endpoints=[])  # an empty list limits to no endpoint
    r = httpx.post(f"{url}/endpoints/churn/predict", json=body, headers=bearer(none))
    assert r.status_code == 403


def test_the_audit_log_names_the_caller_not_the_servers_user(
    settings: Settings, model: Any, server: BackgroundServer
) -> None:
    import shipyard as sy

    ops, ops_key = keys(settings).create("ops", scopes=["admin"], actor="t")
    bot, bot_key = keys(settings).create("bot", scopes=["admin"], actor="t")
    url = server.url
    who = {ops_key: f"key:{ops.id}/ops", bot_key: f"key:{bot.id}/bot"}

    def move(key: str) -> int:  # the reason says who should be named
        return httpx.put(
            f"{url}/api/models/churn/aliases/challenger",
            json={"version": 1, "reason": who[key]},
            headers=bearer(key),
        ).status_code

    sy.set_alias("churn", "challenger", 1)  # (two first sets of one alias race on PostgreSQL)
    with ThreadPoolExecutor(8) as pool:  # concurrent requests: each keeps its own caller
        assert set(pool.map(move, [ops_key, bot_key] * 8)) == {200}
    moves = audit(settings, subject_type="model", limit=50)
    mine = [e for e in moves if e.action == "alias.set" and (e.reason or "").startswith("key:")]
    assert len(mine) == 16 and all(e.actor == e.reason for e in mine)
    r = httpx.delete(f"{url}/api/endpoints/other", headers=bearer(token(scope="admin", sub="ci")))
    assert r.status_code == 200
    r = httpx.delete(f"{url}/api/keys/{bot.id}", headers=bearer(ops_key))
    assert r.status_code == 200
    events = audit(settings, limit=2)
    assert [(e.action, e.actor) for e in events] == [
        ("key.revoke", f"key:{ops.id}/ops"),
        ("endpoint.delete", "jwt:ci"),
    ]
    sy.set_alias("churn", "challenger", 1, reason="from python")  # Python: the configured user
    assert audit(settings, limit=1)[0].actor == "tester"


def test_a_key_revoked_through_the_api_is_refused_at_once(settings: Settings, model: Any) -> None:
    srv = start(settings, auth_cache_seconds=300.0)  # a cache that would outlive the test
    try:
        record, key = keys(settings).create("bot", scopes=["predict"], actor="t")
        _, admin = keys(settings).create("ops", scopes=["admin"], actor="t")
        other, other_key = keys(settings).create("bot2", scopes=["predict"], actor="t")
        url, body = srv.url, {"instances": model}

        def predict(key: str) -> int:
            return httpx.post(
                f"{url}/endpoints/churn/predict", json=body, headers=bearer(key)
            ).status_code

        assert predict(key) == predict(other_key) == 200  # both now cached as valid
        r = httpx.delete(
            f"{url}/api/keys/{record.id}", params={"reason": "leaked"}, headers=bearer(admin)
        )
        assert r.status_code == 200 and r.json() == {"id": record.id, "revoked": True}
        assert predict(key) == 401
        assert predict(other_key) == 200
        keys(settings).revoke(other.id, actor="t")  # Python in the same process: at once too
        assert predict(other_key) == 401
        assert httpx.delete(f"{url}/api/keys/nope", headers=bearer(admin)).status_code == 404
    finally:
        srv.stop()


def test_revoking_a_key_needs_the_admin_scope(
    settings: Settings, model: Any, server: BackgroundServer
) -> None:
    victim, _ = keys(settings).create("victim", scopes=["read"], actor="t")
    _, reader = keys(settings).create("r", scopes=["read"], actor="t")
    r = httpx.delete(f"{server.url}/api/keys/{victim.id}", headers=bearer(reader))
    assert r.status_code == 403 and r.json()["scope"] == "admin"
    assert not keys(settings).get(victim.id).revoked


def test_an_endpoint_limited_admin_cannot_move_a_shared_alias_through_a_rollout(
    settings: Settings, model: Any, server: BackgroundServer, breast_cancer: Any, logreg: Any
) -> None:
    """churn and other both follow churn@champion: promoting a rollout on churn would move
    the alias under other too, so a key limited to churn may roll out but not promote, nor
    start a rollout the controller would promote."""
    import shipyard as sy

    X, _ = breast_cancer
    with sy.start_run(experiment="authz") as run:
        run.log_model(logreg, name="churn", input_example=X[:5], onnx=False)
    _, key = keys(settings).create("churn-ops", scopes=["admin"], endpoints=["churn"], actor="t")
    url, auth = server.url, bearer(key)
    auto = httpx.post(
        f"{url}/api/deployments/churn/canary", json={"model": "churn/2", "auto": True}, headers=auth
    )
    assert auto.status_code == 403 and "follows churn@champion" in auto.json()["error"]
    started = httpx.post(
        f"{url}/api/deployments/churn/canary", json={"model": "churn/2"}, headers=auth
    )
    assert started.status_code == 200, started.text
    for action in ("promote", "step"):
        r = httpx.post(f"{url}/api/deployments/churn/{action}", json={}, headers=auth)
        assert r.status_code == 403, (action, r.text)
    assert open_stores(settings).metadata.models.resolve_alias("churn", "champion") == 1
    assert httpx.post(f"{url}/api/deployments/churn/rollback", json={}, headers=auth).is_success
    # pinned to a version, the endpoint is its own: the same key promotes there
    endpoints = open_stores(settings).metadata.endpoints
    endpoints.create("pinned", "models:/churn/1", actor="t")
    _, pin_key = keys(settings).create("pin-ops", scopes=["admin"], endpoints=["pinned"], actor="t")
    r = httpx.post(
        f"{url}/api/deployments/pinned/canary",
        json={"model": "churn/2"},
        headers=bearer(pin_key),
    )
    assert r.status_code == 200, r.text
    r = httpx.post(f"{url}/api/deployments/pinned/promote", json={}, headers=bearer(pin_key))
    assert r.status_code == 200, r.text
    assert endpoints.get("pinned").model_uri == "models:/churn/2"
    assert open_stores(settings).metadata.models.resolve_alias("churn", "champion") == 1
