"""The registry's pages in a real headless Chromium, on a server that requires credentials and
holds a real scikit-learn model logged by a run: the models page lists it; a version's page
shows its lineage (dataset → run → version → endpoint) and the version it was optimized from;
a read-only key sees the review disabled (and the page sends no write), an admin key
approves and moves an alias, and the audit log names that key. No console error, no serious
accessibility violation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import shipyard as sy
from shipyard.access import ApiKeys
from shipyard.config import Settings
from shipyard.registry import Registry
from shipyard.rollout import Deployments
from shipyard.serving.http import BackgroundServer
from shipyard.stores import open_stores
from tests.e2e.ui.conftest import assert_clean

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ui")]

TIMEOUT = 20_000
# a description is text: shown as written, never run
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>'


@dataclass
class Served:
    url: str
    run_id: str
    keys: dict[str, str]  # role → secret


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A browser test of pages, not of the database: SQLite is enough."""
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture
def registry(settings: Settings, breast_cancer: Any, logreg: Any) -> Iterator[Served]:
    """churn v1 from a run (with its training set), v2 tagged as optimized from v1 (the way
    `models optimize` tags it), an endpoint serving v1; keys `reader` (read) and `root`
    (admin); a server that refuses calls without credentials."""
    from shipyard.server.app import create_server_app

    X, _ = breast_cancer
    with sy.start_run(experiment="churn") as run:
        run.log_dataset(X, name="train")
        run.log_model(logreg, name="churn", input_example=X[:5], onnx=False)
        run.log_model(logreg, name="churn", input_example=X[:5], onnx=False)
    stores = open_stores(settings)
    edits = stores.metadata.models
    for key, value in (("optimize_parent", "1"), ("optimize_technique", "prune")):
        edits.set_version_tag("churn", 2, key, value, actor="tester")
    Deployments(stores).create("churn-live", "models:/churn/1")
    Registry(stores).set_description("churn", HOSTILE)
    keys = {
        role: ApiKeys(stores).create(name, scopes=[role])[1]
        for role, name in (("read", "reader"), ("admin", "root"))
    }
    strict = settings.model_copy(
        update={"auth_required": True, "monitor_interval_seconds": 0, "rollout_interval_seconds": 0}
    )
    with BackgroundServer(create_server_app(strict, refresh_seconds=0.5)) as srv:
        srv.wait_ready("/health/live")
        yield Served(srv.url, run.id, keys)


def signed_in(open_page: Callable[..., Any], reg: Served, role: str, path: str) -> Any:
    """A tab signed in with a key, kept in the tab's sessionStorage as the sign-in form keeps
    it (put there before the page's scripts run, so no call goes out unsigned), on `path`."""
    page = open_page("about:blank")
    token = json.dumps(reg.keys[role])
    page.context.add_init_script(
        f"try {{ sessionStorage.setItem('shipyard.token', {token}); }} catch (e) {{}}"
    )
    page.goto(f"{reg.url}{path}")
    return page


def test_the_models_page_lists_the_model_and_a_version_shows_its_lineage(
    open_page: Callable[..., Any],
    axe_check: Callable[[Any], list[Any]],
    shot: Any,
    registry: Served,
) -> None:
    page = signed_in(open_page, registry, "read", "/ui/models")
    row = page.locator("main table tbody tr", has_text="churn")
    row.wait_for(timeout=TIMEOUT)
    assert row.locator("a", has_text="v2").count() == 1
    assert "1 pending" not in row.inner_text()  # both versions: 2 pending
    assert "2 pending" in row.inner_text()
    assert axe_check(page) == []
    shot(page, "registry-models")
    row.locator("a", has_text="churn").click()
    versions = page.locator("#versions tbody tr")
    versions.first.wait_for(timeout=TIMEOUT)
    assert versions.count() == 2
    assert page.locator(f'#versions a[href="/ui/runs/{registry.run_id}"]').count() == 2
    assert page.locator("p.description").inner_text() == HOSTILE
    assert page.evaluate("window.pwned") is None
    assert axe_check(page) == []
    shot(page, "registry-model")
    page.locator("#versions a", has_text="v1").click()
    lineage = page.locator("#lineage")
    lineage.wait_for(timeout=TIMEOUT)
    assert lineage.locator(f'a[href="/ui/runs/{registry.run_id}"]').count() == 1
    assert "train (train) · 569 rows" in lineage.inner_text()
    assert lineage.locator('a[href="/ui/deployments/churn-live"]').count() == 1
    assert "v2 (prune)" in lineage.inner_text()  # optimized into
    assert axe_check(page) == []
    shot(page, "registry-version")
    page.locator("#lineage a", has_text="v2").click()
    parent = page.locator("#optimized-from")
    parent.wait_for(timeout=TIMEOUT)
    assert parent.locator('a[href="/ui/models/churn/versions/1"]').count() == 1
    assert "No endpoint serves it." in page.locator("#lineage").inner_text()
    assert_clean(page)


def test_a_reader_cannot_review_and_an_admin_approves_audited_under_the_key_name(
    open_page: Callable[..., Any],
    axe_check: Callable[[Any], list[Any]],
    shot: Any,
    registry: Served,
) -> None:
    path = "/ui/models/churn/versions/1"
    reader = signed_in(open_page, registry, "read", path)
    approve = reader.get_by_role("button", name="Approve")
    approve.wait_for(timeout=TIMEOUT)
    assert approve.is_disabled()
    assert reader.get_by_role("button", name="Reject").is_disabled()
    assert reader.get_by_role("button", name="Point alias here").is_disabled()
    assert 'lacks the "admin" scope' in reader.locator("#review-why").inner_text()
    assert axe_check(reader) == []
    shot(reader, "registry-version-read-only")
    assert_clean(reader)  # no write was tried (a refused one would log a console error)

    admin = signed_in(open_page, registry, "admin", path)
    admin.locator("#review-comment").fill("AUC holds on the held-out set")
    admin.get_by_role("button", name="Approve").click()
    admin.locator("#review .pill.state-approved").wait_for(timeout=TIMEOUT)
    assert "approved" in admin.locator("h1").inner_text()
    assert "AUC holds on the held-out set" in admin.locator("#review").inner_text()
    admin.locator("#alias-name").fill("champion")
    admin.locator("#alias-reason").fill("first approved version")
    admin.get_by_role("button", name="Point alias here").click()
    admin.locator("#aliases", has_text="Points here: @champion").wait_for(timeout=TIMEOUT)
    admin.locator("#audit td", has_text="version.approve").wait_for(timeout=TIMEOUT)
    assert axe_check(admin) == []
    shot(admin, "registry-version-approved")
    assert_clean(admin)

    answer = httpx.get(
        f"{registry.url}/api/models/churn/audit",
        headers={"authorization": f"Bearer {registry.keys['read']}"},
    )
    events = {e["action"]: e for e in answer.json()["events"]}
    approved = events["version.approve"]
    assert approved["subject"] == "churn/1"
    assert approved["actor"].startswith("key:") and approved["actor"].endswith("/root")
    assert approved["reason"] == "AUC holds on the held-out set"
    alias = next(e for a, e in events.items() if a.startswith("alias."))
    assert alias["actor"] == approved["actor"]


def test_moving_a_live_alias_asks_why_and_says_what_switches(
    open_page: Callable[..., Any], registry: Served
) -> None:
    headers = {"authorization": f"Bearer {registry.keys['admin']}"}
    moved = httpx.put(
        f"{registry.url}/api/models/churn/aliases/champion",
        json={"version": 1, "reason": "first"},
        headers=headers,
    )
    assert moved.status_code == 200, moved.text
    admin = signed_in(open_page, registry, "admin", "/ui/models/churn/versions/2")
    admin.locator("#alias-name").fill("champion")
    admin.get_by_role("button", name="Point alias here").click()
    admin.locator("#alias-status [role=alert]", has_text="needs a reason").wait_for(timeout=TIMEOUT)
    admin.locator("#alias-reason").fill("v2 wins the A/B test")
    admin.get_by_role("button", name="Point alias here").click()
    warning = admin.locator("#alias-status [role=alert]", has_text="will serve v2 instead of v1")
    warning.wait_for(timeout=TIMEOUT)
    champion = httpx.get(f"{registry.url}/api/models/churn", headers=headers).json()
    assert champion["aliases"]["champion"] == 1  # nothing moved yet
    admin.get_by_role("button", name="Move @champion from v1 to v2").click()
    admin.locator("#aliases", has_text="Points here: @champion").wait_for(timeout=TIMEOUT)
    champion = httpx.get(f"{registry.url}/api/models/churn", headers=headers).json()
    assert champion["aliases"]["champion"] == 2
    assert_clean(admin)
