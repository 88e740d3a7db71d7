"""The API's pages in a real headless Chromium (Debian's, driven by Playwright) with every
request that leaves 127.0.0.1 aborted, as on a machine without internet: Swagger UI at /docs
(reached from `/` on `shipyard serve`; `shipyard server` sends `/` to the web UI) and ReDoc
at /redoc render their operations from the server's own files, on `shipyard server` and on
`shipyard serve`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.serving.http import BackgroundServer
from tests.e2e.test_report_page import CHROMIUM_FLAGS, chromium

pytestmark = pytest.mark.e2e

LOOPBACK = "127.0.0.1"
PREDICT = "/endpoints/{name}/predict"


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    """The pages read no store: SQLite is enough."""
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture(params=["server", "serve"])
def app_url(
    request: pytest.FixtureRequest,
    settings: Settings,
    breast_cancer: Any,
    logreg: Any,
) -> Iterator[str]:
    if request.param == "server":
        from shipyard.server.app import create_server_app

        app = create_server_app(settings, refresh_seconds=0.5)
    else:
        from shipyard.serving.app import create_serving_app

        X, _ = breast_cancer
        with sy.start_run(experiment="docs") as run:
            run.log_model(logreg, name="churn", input_example=X[:5])
        sy.set_alias("churn", "champion", 1)
        app = create_serving_app(settings, "models:/churn@champion")
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        assert urlsplit(srv.url).hostname == LOOPBACK
        yield srv.url


class Browser:
    """Headless Chromium whose every request off 127.0.0.1 is aborted and written down."""

    def __init__(self, playwright: Any) -> None:
        self.browser = playwright.chromium.launch(
            executable_path=chromium(), args=CHROMIUM_FLAGS[1:]
        )
        self.outside: list[str] = []

    def open(self, url: str) -> Any:
        page = self.browser.new_page()
        page.route("**/*", self._gate)
        page.goto(url)
        return page

    def _gate(self, route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("data", "blob") or parts.hostname == LOOPBACK:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()


@pytest.fixture
def browser() -> Iterator[Browser]:
    chromium()  # skips, naming the Debian package, where there is none
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        b = Browser(playwright)
        try:
            yield b
        finally:
            b.browser.close()


def test_swagger_ui_renders_offline_from_the_home_page(app_url: str, browser: Browser) -> None:
    home = browser.open(f"{app_url}/")
    # `/` sends a browser to the web UI on `shipyard server`, to the docs on `shipyard serve`
    served_ui = urlsplit(home.url).path == "/ui/"
    assert served_ui or urlsplit(home.url).path == "/docs"
    page = browser.open(f"{app_url}/docs") if served_ui else home
    predict = page.locator(".opblock-summary-path", has_text=PREDICT)
    predict.first.wait_for(state="visible", timeout=30_000)
    assert page.locator(".opblock").count() >= 5  # every operation drawn, not only one
    predict.first.click()  # it opens, with its request body example
    page.locator(".opblock-body").first.wait_for(state="visible", timeout=10_000)
    assert browser.outside == []


def test_redoc_renders_offline(app_url: str, browser: Browser) -> None:
    page = browser.open(f"{app_url}/redoc")
    page.get_by_text(PREDICT).first.wait_for(state="attached", timeout=30_000)
    page.get_by_role("heading", name="Predict").first.wait_for(state="visible", timeout=10_000)
    assert browser.outside == []
