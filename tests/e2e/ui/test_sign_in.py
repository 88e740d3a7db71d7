"""Signing in to the UI on a server that requires credentials: the page asks for a key
without making a refused request, takes an API key or a JWT, shows who is signed in with
which scopes, and a wrong key is refused with the server's reason."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.stores import open_stores
from tests.e2e.ui.conftest import assert_clean

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ui")]
SECRET = "s" * 32


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture
def secured(settings: Settings) -> Iterator[tuple[str, dict[str, str]]]:
    from pydantic import SecretStr

    from shipyard.server.app import create_server_app
    from shipyard.serving.http import BackgroundServer

    with sy.start_run(experiment="private", name="secret-run") as run:
        run.log_metrics({"auc": 0.9})
    keys = open_stores(settings).metadata.keys
    tokens = {
        "reader": keys.create("reader", scopes=["read"], actor="t")[1],
        "limited": keys.create("ops", scopes=["admin"], endpoints=["churn"], actor="t")[1],
        "jwt": jwt.encode(
            {"sub": "alice", "scope": "read", "exp": int(time.time()) + 600}, SECRET, "HS256"
        ),
    }
    secure = settings.model_copy(update={"auth_required": True, "jwt_secret": SecretStr(SECRET)})
    with BackgroundServer(create_server_app(secure, refresh_seconds=5)) as srv:
        srv.wait_ready("/health/live")
        yield srv.url, tokens


def _sign_in(page: Any, token: str) -> None:
    page.wait_for_selector("#token")
    page.fill("#token", token)
    page.get_by_role("button", name="Sign in").click()


@pytest.mark.parametrize("who", ["reader", "jwt"])
def test_sign_in_with_a_key_or_a_jwt(secured: Any, open_page: Any, who: str) -> None:
    url, tokens = secured
    page = open_page(f"{url}/ui/runs?experiment=private")
    page.wait_for_selector("#token")
    assert page.locator("[role=grid]").count() == 0  # nothing shown before signing in
    assert_clean(page)  # and no refused request on the way
    _sign_in(page, tokens[who])
    page.wait_for_selector("[role=gridcell] a >> text=secret-run")
    name = "reader" if who == "reader" else "jwt:alice"
    assert name.split(":")[-1] in page.locator("#who").inner_text()
    assert "read" in page.locator("#who").inner_text()
    assert_clean(page)


def test_a_wrong_key_is_refused_with_the_reason(secured: Any, open_page: Any) -> None:
    url, _ = secured
    page = open_page(f"{url}/ui/runs")
    _sign_in(page, "sy_not-a-key")
    page.wait_for_selector("form [role=alert]")
    assert page.locator("[role=grid]").count() == 0
    assert page.locator("#token").count() == 1


def test_an_endpoint_limited_key_is_told_what_it_may_see(secured: Any, open_page: Any) -> None:
    url, tokens = secured
    page = open_page(f"{url}/ui/runs")
    _sign_in(page, tokens["limited"])
    page.get_by_role("heading", name="Limited to its endpoints").wait_for()
    assert "ops" in page.locator("#who").inner_text()  # named, not "anonymous"
    assert page.get_by_role("link", name="churn").get_attribute("href") == "/ui/deployments/churn"
    assert_clean(page)
