"""A RUNNING run's page follows it: new metric points reach its chart and latest values
without a reload, and the page shows FINISHED once the run ends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import shipyard as sy
from shipyard.config import Settings
from tests.e2e.ui.conftest import assert_clean

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ui")]


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    from shipyard.server.app import create_server_app
    from shipyard.serving.http import BackgroundServer

    with BackgroundServer(create_server_app(settings, refresh_seconds=5)) as srv:
        srv.wait_ready("/health/live")
        yield srv.url


def test_a_running_run_is_followed_live(server: str, open_page: Any) -> None:
    run = sy.start_run(experiment="live", name="training")
    try:
        run.log_metric("loss", 1.0, step=0)
        run.flush()
        page = open_page(f"{server}/ui/runs/{run.id}?metric=loss")
        caption = page.locator("figure[data-metric=loss] figcaption")
        caption.filter(has_text="1 of 1 points").wait_for()
        for step in (1, 2):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.flush()
        caption.filter(has_text="3 of 3 points").wait_for(timeout=15_000)
        latest = page.locator(".run-kv tr[data-key=loss] td.num")
        assert latest.inner_text() == "0.33333"
    finally:
        run.end()
    page.locator("h1 .pill", has_text="FINISHED").wait_for(timeout=15_000)
    assert_clean(page)
