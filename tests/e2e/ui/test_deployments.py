"""The deployments and monitoring pages in a real Chromium, against a server of their own
(auth required) serving a canary of two real scikit-learn models that took real predictions
and labels over HTTP: the live traffic by version, the split, Promote with an admin key and
disabled for a read-only one, drift rows with a reference/current overlay, live accuracy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.monitoring.alerts import AlertRules
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from shipyard.stores import open_stores
from tests.e2e.ui.conftest import assert_clean
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ui")]


@pytest.fixture
def db_url(tmp_path: Path) -> str:  # one database is enough for the browser
    return f"sqlite:///{tmp_path / 'meta.db'}"


@dataclass
class Live:
    url: str
    keys: dict[str, str]
    X: Any
    y: Any

    def headers(self, who: str = "admin") -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    def predict(self, rows: Any) -> dict[str, Any]:
        body = {"instances": rows.to_dict(orient="records")}
        r = httpx.post(f"{self.url}/endpoints/churn/predict", json=body, headers=self.headers())
        r.raise_for_status()
        answer: dict[str, Any] = r.json()
        return answer


@pytest.fixture
def live(settings: Settings, breast_cancer: Any, logreg: Any, forest: Any) -> Iterator[Live]:
    """Endpoint churn (following churn@champion = v1, the logistic regression) in a manual
    canary at 50 % of v2 (a random forest), 40 requests of 5 rows answered, with drift in
    one feature and labels sent back for half of them."""
    X, y = breast_cancer
    for model in (logreg, forest):
        with sy.start_run(experiment="ui-deploy") as run:
            run.log_dataset(X, name="train")
            run.log_model(model, name="churn", input_example=X[:5])
    sy.set_alias("churn", "champion", 1, reason="first")
    stores = open_stores(settings)
    keys = stores.metadata.keys
    tokens = {
        "admin": keys.create("ops", scopes=["admin"], actor="t")[1],
        "read": keys.create("viewer", scopes=["read"], actor="t")[1],
    }
    fast = settings.model_copy(
        update={
            "auth_required": True,
            "auth_cache_seconds": 0,
            "predlog_flush_seconds": 0.1,
            "monitor_interval_seconds": 0.0,
            "rollout_interval_seconds": 0.5,
        }
    )
    with BackgroundServer(create_server_app(fast, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        env = Live(srv.url, tokens, X, y)
        _start_canary(env)
        AlertRules(settings, stores).add("churn", "drift", when="drift_share > 0.01")
        _traffic(env)
        yield env


def _start_canary(env: Live) -> None:
    api, h = f"{env.url}/api", env.headers()
    body = {"name": "churn", "model_uri": "models:/churn@champion"}
    httpx.post(f"{api}/endpoints", json=body, headers=h).raise_for_status()
    wait_for(lambda: _answers(env))
    canary = {"model": "churn/2", "steps": [50, 100], "reason": "try the forest"}
    httpx.post(f"{api}/deployments/churn/canary", json=canary, headers=h).raise_for_status()
    wait_for(lambda: any(env.predict(env.X.iloc[:1])["model_version"] == 2 for _ in range(10)))


def _answers(env: Live) -> bool:
    body = {"instances": env.X.iloc[:1].to_dict(orient="records")}
    r = httpx.post(f"{env.url}/endpoints/churn/predict", json=body, headers=env.headers())
    return r.status_code == 200


def _traffic(env: Live) -> None:
    shifted = env.X.sample(200, replace=True, random_state=0).reset_index(drop=True)
    shifted["mean radius"] = shifted["mean radius"] * 1.3  # drift in one feature
    labels = env.y.sample(200, replace=True, random_state=0).reset_index(drop=True)
    for start in range(0, 200, 5):
        answer = env.predict(shifted.iloc[start : start + 5])
        if start % 10 == 0:
            feedback = {
                "request_id": answer["request_id"],
                "labels": labels.iloc[start : start + 5].tolist(),
            }
            r = httpx.post(
                f"{env.url}/endpoints/churn/feedback", json=feedback, headers=env.headers()
            )
            assert r.status_code == 202, r.text
    time.sleep(0.5)  # the prediction and label logs flush every 0.1 s


def signed_in(open_page: Callable[..., Any], env: Live, who: str, path: str) -> Any:
    """A page whose tab holds `who`'s key (as the sign-in form keeps it) before any script
    of the UI runs: no request goes out without it."""
    page = open_page(f"{env.url}/ui/assets/app.css")
    page.evaluate("t => sessionStorage.setItem('shipyard.token', t)", env.keys[who])
    page.goto(f"{env.url}{path}")
    return page


def _number(text: str) -> float:
    try:
        return float(text.strip() or "nan")
    except ValueError:
        return float("nan")


def test_the_deployments_list_shows_each_endpoint_with_its_policy_and_split(
    live: Live, open_page: Callable[..., Any], axe_check: Any, shot: Any
) -> None:
    page = signed_in(open_page, live, "read", "/ui/deployments")
    row = page.locator('#deployments tr[data-endpoint="churn"]')
    row.wait_for()
    text = row.inner_text()
    assert "models:/churn@champion" in text and "canary" in text
    assert "stable v1 50 %" in text and "candidate v2 50 %" in text
    assert "manual" in text
    shot(page, "deployments")
    assert axe_check(page) == []
    assert_clean(page)


def test_the_deployment_page_shows_live_traffic_by_version_and_promotes_with_an_admin_key(
    live: Live, open_page: Callable[..., Any], axe_check: Any, shot: Any
) -> None:
    stop = threading.Event()

    def keep_sending() -> None:  # live traffic while the page is open: a rate to show
        while not stop.is_set():
            live.predict(live.X.iloc[:3])
            time.sleep(0.05)

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        page = signed_in(open_page, live, "admin", "/ui/deployments/churn")
        for version in ("1", "2"):
            cell = page.locator(f'#live tr[data-version="{version}"] td.requests')
            cell.wait_for()
            assert _number(cell.inner_text()) > 0
        page.wait_for_function(
            "() => [...document.querySelectorAll('#live td.rate')]"
            ".some(td => parseFloat(td.textContent) > 0)",
            timeout=15_000,
        )
    finally:
        stop.set()
        sender.join()
    split = page.locator("#split").inner_text()
    assert "stable v1 50 %" in split and "candidate v2 50 %" in split
    assert page.locator("#policy-kind").inner_text() == "canary"
    page.locator("#would-decide").wait_for()
    assert page.locator("#history tr[data-action='rollout.canary']").count() == 1
    shot(page, "deployment")
    assert axe_check(page) == []
    page.click("#step")  # a manual canary's next step: all traffic to v2
    page.fill("#reason", "looks fine at half")
    page.click("#reason-ok")
    page.locator("#action-status", has_text="Advanced churn").wait_for()
    page.locator("#split", has_text="candidate v2 100 %").wait_for()
    promote = page.locator("#promote")
    assert promote.is_enabled()
    promote.click()
    page.fill("#reason", "the forest holds up")
    page.click("#reason-ok")
    page.locator("#action-status", has_text="Promoted churn").wait_for()
    page.locator("#history tr[data-action='rollout.promote']").wait_for()
    assert page.locator("#policy-kind").inner_text() == "single"
    assert promote.is_disabled()
    status = httpx.get(f"{live.url}/api/deployments/churn", headers=live.headers()).json()
    assert status["policy"] == "single"
    assert status["config"]["last_rollout"]["outcome"] == "promoted"
    events = httpx.get(f"{live.url}/api/deployments/churn/history", headers=live.headers()).json()[
        "events"
    ]
    promoted = next(e for e in events if e["action"] == "rollout.promote")
    assert promoted["reason"] == "the forest holds up" and promoted["actor"].endswith("/ops")
    _stops_polling_when_left(page)
    assert_clean(page)


def _stops_polling_when_left(page: Any) -> None:
    """Leaving the page (a link, no reload) ends its refreshes."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/stats" in r.url else None)
    page.click("header nav a[data-section='deployments']")
    page.locator("#deployments").wait_for()
    time.sleep(4)  # more than one refresh interval
    assert asked == []


def test_promote_and_rollback_are_disabled_for_a_read_only_key(
    live: Live, open_page: Callable[..., Any], axe_check: Any
) -> None:
    page = signed_in(open_page, live, "read", "/ui/deployments/churn")
    page.locator('#live tr[data-version="2"]').wait_for()
    for button in ("#promote", "#step", "#rollback"):
        assert page.locator(button).is_disabled()
    why = page.locator("#actions-why").inner_text()
    assert "admin scope" in why and "viewer" in why
    assert page.locator("#promote").get_attribute("aria-describedby") == "actions-why"
    assert axe_check(page) == []
    assert_clean(page)


def test_the_monitoring_pages_show_drift_with_an_overlay_and_live_accuracy(
    live: Live, open_page: Callable[..., Any], axe_check: Any, shot: Any
) -> None:
    page = signed_in(open_page, live, "read", "/ui/monitoring")
    page.locator('#monitoring tr[data-endpoint="churn"]').wait_for()
    shot(page, "monitoring")
    assert axe_check(page) == []
    assert_clean(page)
    page.click('#monitoring tr[data-endpoint="churn"] a')
    page.locator("#drift tbody tr").first.wait_for(timeout=30_000)
    assert page.locator("#drift tbody tr").count() == 30
    drifted = page.locator('#drift tr[data-column="mean radius"]').inner_text()
    assert "yes" in drifted and "ks" in drifted.lower()
    chart = page.locator("#overlay")
    chart.locator("g.trace.bars").nth(1).wait_for()
    assert chart.get_attribute("data-column") == "mean radius"  # the most drifted first
    assert page.locator('#quality tr[data-column="mean radius"] td.bad').count() >= 1
    page.locator("#accuracy-chart g.trace.scatter").first.wait_for()
    shot(page, "monitor")
    page.click('#drift tr[data-column="worst area"] button')
    page.wait_for_function("() => location.search.includes('col=worst+area')")
    assert chart.get_attribute("data-column") == "worst area"
    page.select_option("#window", "15m")
    page.wait_for_function("() => location.search.includes('window=15m')")
    page.locator("#summary", has_text="15 m").wait_for()
    assert axe_check(page) == []
    # looking fired nothing; the monitor's own pass (the server's loop, here asked for by an
    # admin) fires the drift rule, and the pages show it
    fired = httpx.post(f"{live.url}/api/monitoring/churn/evaluate", headers=live.headers("admin"))
    assert fired.status_code == 200, fired.text
    page.click("header nav a[data-section='monitoring']")
    row = page.locator('#monitoring tr[data-endpoint="churn"]')
    row.locator("text=mean radius").wait_for()
    assert "firing" in row.inner_text() and "drift_share > 0.01" in row.inner_text()
    page.goto(f"{live.url}/ui/monitoring/churn")
    page.locator("#alert-rules .state-firing").wait_for()
    assert "fired" in page.locator("#alert-events").inner_text()
    shot(page, "monitor-full")
    assert_clean(page)
