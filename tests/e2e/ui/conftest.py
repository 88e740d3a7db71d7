"""Fixtures for the web UI's tests in a real headless Chromium (Debian's, driven by
Playwright; every request off 127.0.0.1 is aborted and written down).

    seeded      a `shipyard server` (control plane + UI) on a loopback port over a store seeded
                once per session by `seed.seed()`: 1,500 runs x 150 params x 300 metrics, 3 runs
                of 10,000 steps, 5 runs with 3 of 117 params differing. `.url`, `.ids`,
                `.settings`
    browser     a Chromium browser for the session
    open_page   open_page(url) → a Playwright page whose console errors, page errors and
                off-loopback requests are collected (`assert_clean(page)` checks them)
    axe_check   axe_check(page) → the serious/critical axe-core violations (a list; [] = pass)
    shot        shot(page, "runs") saves a screenshot to $SHIPYARD_TEST_UI_SHOTS when it is set

Tests that share `seeded` run on one xdist worker (group "ui") so the store is seeded once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from shipyard.config import Settings, reset_settings
from tests.e2e.test_report_page import CHROMIUM_FLAGS, chromium

LOOPBACK = "127.0.0.1"


@dataclass
class Seeded:
    url: str
    ids: dict[str, list[str]]
    settings: Settings


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    from shipyard.server.app import create_server_app
    from shipyard.serving.http import BackgroundServer
    from tests.e2e.ui.seed import seed

    home = tmp_path_factory.mktemp("ui-home")
    db_url = f"sqlite:///{home / 'meta.db'}"
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("SHIPYARD_") and not key.startswith("SHIPYARD_TEST_"):
                mp.delenv(key)
        mp.setenv("SHIPYARD_HOME", str(home))
        mp.setenv("SHIPYARD_DB_URL", db_url)
        mp.setenv("SHIPYARD_USER", "tester")
        reset_settings()
        ids = seed()
        settings = Settings(home=home, db_url=db_url, user="tester")
        reset_settings()
    app = create_server_app(settings, refresh_seconds=1.0)
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        assert urlsplit(srv.url).hostname == LOOPBACK
        yield Seeded(srv.url, ids, settings)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium()  # skips with the reason when Chromium is not installed
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS[1:])
        yield b
        b.close()


class PageLog:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.outside: list[str] = []


def _gate(log: PageLog) -> Callable[[Any], None]:
    def gate(route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("data", "blob") or parts.hostname == LOOPBACK:
            route.continue_()
        else:
            log.outside.append(route.request.url)
            route.abort()

    return gate


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []

    def open_(url: str, *, viewport: tuple[int, int] = (1400, 900), **context: Any) -> Any:
        ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, **context)
        contexts.append(ctx)
        page = ctx.new_page()
        log = PageLog()
        page.shipyard_log = log
        page.on("console", lambda m: log.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: log.errors.append(f"uncaught: {e}"))
        page.route("**/*", _gate(log))
        page.goto(url)
        return page

    yield open_
    for ctx in contexts:
        ctx.close()


def assert_clean(page: Any) -> None:
    """No console error, no uncaught exception, no request off the loopback address."""
    log: PageLog = page.shipyard_log
    assert log.errors == [], log.errors
    assert log.outside == [], log.outside


@pytest.fixture
def axe_check() -> Callable[[Any], list[dict[str, Any]]]:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()

    def check(page: Any) -> list[dict[str, Any]]:
        found = axe.run(page).response["violations"]
        return [
            {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": len(v["nodes"])}
            for v in found
            if v.get("impact") in ("serious", "critical")
        ]

    return check


@pytest.fixture
def shot() -> Callable[[Any, str], None]:
    folder = os.environ.get("SHIPYARD_TEST_UI_SHOTS")

    def take(page: Any, name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=False)

    return take
