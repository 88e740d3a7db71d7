"""The run page in a real headless Chromium: a 10,000-step loss drawn from at most ~500 points
with its one-step spike, zoom asking the server again (from the URL and from the chart), and
artifacts previewed without anything in them running: a `<script>` and an `onerror` in an
HTML artifact stay dead in the page and in its sandboxed iframe, a YAML `!!js/function` is
text, a climbing artifact path is a 400. No console error, no serious axe violation."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import shipyard as sy
from shipyard.config import Settings, reset_settings
from tests.e2e.ui.conftest import assert_clean
from tests.e2e.ui.seed import SPIKE_STEP, SPIKE_VALUE
from tests.integration.test_run_detail_api import (
    HOSTILE_HTML,
    HOSTILE_YAML,
    PNG,
    register_version,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ui")]

PLOT = ".js-plotly-plot"
IMAGE = "document.querySelector('.artifact-preview img')"
MARKUP = '<a href="https://evil.example/">EVIL</a><b>bold</b>'
HOSTILE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4" onload="top.__pwned=8">'
    "<script>top.__pwned=9</script><rect width='4' height='4'/></svg>"
)
DRAWN = f"() => {{ const el = document.querySelector('{PLOT}'); return el && el.data; }}"
# what Chromium itself says when the sandbox stops an artifact's script: the proof, not a fault
BLOCKED = "because the document's frame is sandboxed and the 'allow-scripts' permission is not set"


def drawn(page: Any) -> list[tuple[list[int], list[float]]]:
    return [
        (t["x"], t["y"])
        for t in page.evaluate(
            f"[...document.querySelector('{PLOT}').data].map(t => ({{x: [...t.x], y: [...t.y]}}))"
        )
    ]


def test_a_long_loss_draws_at_most_500_points_and_keeps_its_spike(
    seeded: Any, open_page: Any, axe_check: Any, shot: Any
) -> None:
    run_id = seeded.ids["long"][0]
    page = open_page(f"{seeded.url}/ui/runs/{run_id}?metric=loss")
    page.wait_for_function(DRAWN)
    [(steps, values)] = drawn(page)
    assert len(steps) <= 500
    assert (SPIKE_STEP, SPIKE_VALUE) in zip(steps, values, strict=True)
    assert page.get_by_text("500 of 10000 points").is_visible()
    shot(page, "run")
    assert_clean(page)
    assert axe_check(page) == []


def test_zoom_asks_the_server_again_from_the_url_and_from_the_chart(
    seeded: Any, open_page: Any
) -> None:
    run_id = seeded.ids["long"][0]
    page = open_page(f"{seeded.url}/ui/runs/{run_id}?metric=loss&min_step=7000&max_step=9000")
    page.wait_for_function(DRAWN)
    [(steps, values)] = drawn(page)
    assert len(steps) <= 500 and all(7000 <= s <= 9000 for s in steps)
    assert (SPIKE_STEP, SPIKE_VALUE) in zip(steps, values, strict=True)
    # a drag-zoom on the chart: the URL takes the range and the server answers every point
    page.evaluate(
        f"Plotly.relayout(document.querySelector('{PLOT}'), "
        "{'xaxis.range[0]': 7700.2, 'xaxis.range[1]': 7799.6})"
    )
    page.wait_for_function("location.search.includes('min_step=7700')")
    page.wait_for_function(f"() => document.querySelector('{PLOT}').data[0].x.length === 101")
    [(steps, _)] = drawn(page)
    assert steps == list(range(7700, 7801))
    assert "max_step=7800" in page.evaluate("location.search")
    page.reload()  # the copied URL shows the same zoom
    page.wait_for_function(DRAWN)
    assert drawn(page)[0][0] == list(range(7700, 7801))
    assert_clean(page)


def test_a_run_of_150_params_and_300_metrics_filters_its_keys_from_the_url(
    seeded: Any, open_page: Any, axe_check: Any
) -> None:
    run_id = seeded.ids["big"][0]
    page = open_page(f"{seeded.url}/ui/runs/{run_id}?keys=p00")
    page.wait_for_selector(".run-kv tr[data-key='m299']", state="attached")
    shown = page.evaluate(
        "[...document.querySelectorAll('.run-kv tr[data-key]')].filter(r => !r.hidden)"
        ".map(r => r.dataset.key)"
    )
    assert shown == [f"p{j:03d}" for j in range(10)]
    assert page.locator(".run-kv tr[data-key]").count() == 450
    page.get_by_label("Filter params and metrics").fill("m29")
    page.wait_for_function("location.search.includes('keys=m29')")
    assert page.locator(".run-kv tr[data-key]:not([hidden])").count() == 10
    assert page.get_by_text("Tick a metric to chart its history.").is_visible()
    assert_clean(page)
    assert axe_check(page) == []


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Settings]]:
    """A server over a store holding one run with hostile and harmless artifacts, a dataset
    and a registered model: (server url, run id, its settings)."""
    from shipyard.server.app import create_server_app
    from shipyard.serving.http import BackgroundServer

    home = tmp_path_factory.mktemp("run-page")
    db_url = f"sqlite:///{home / 'meta.db'}"
    files = {
        "report.html": HOSTILE_HTML.encode(),
        "conf/params.yaml": HOSTILE_YAML.encode(),
        "data.csv": b'a,b\n1,"x, y"\n2,<b>z</b>\n',
        "plots/loss.png": PNG,
        "plots/evil.svg": HOSTILE_SVG.encode(),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("SHIPYARD_") and not key.startswith("SHIPYARD_TEST_"):
                mp.delenv(key)
        mp.setenv("SHIPYARD_HOME", str(home))
        mp.setenv("SHIPYARD_DB_URL", db_url)
        reset_settings()
        with sy.start_run(experiment="arts", name="with-artifacts", params={"C": 1}) as run:
            run.log_metrics({"auc": 0.9})
            for step in range(3):
                run.log_metric(MARKUP, step / 10, step=step)
            run.log_dataset([[1.0, 2.0], [3.0, 4.0]], name="train")
            for name, data in files.items():
                src = home / name.replace("/", "_")
                src.write_bytes(data)
                run.log_artifact(src, name=name)
            register_version(run, "churn")
        settings = Settings(home=home, db_url=db_url, user="tester")
        reset_settings()
    with BackgroundServer(create_server_app(settings, refresh_seconds=5.0)) as srv:
        srv.wait_ready()
        yield srv.url, run.id, settings


def test_an_html_artifact_runs_no_script_in_the_page_nor_its_iframe(
    arts: tuple[str, str, Settings], open_page: Any, axe_check: Any, shot: Any
) -> None:
    url, run_id, _ = arts
    page = open_page(f"{url}/ui/runs/{run_id}?artifact=report.html")
    frame_el = page.wait_for_selector("iframe.preview")
    assert frame_el.get_attribute("sandbox") == ""
    assert frame_el.get_attribute("src").startswith("blob:")
    frame = frame_el.content_frame()
    frame.wait_for_selector("h1")
    page.wait_for_timeout(300)  # give an onerror handler its chance
    assert page.evaluate("window.__pwned") is None
    assert frame.evaluate("window.__pwned") is None
    shot(page, "run-artifact-html")
    log = page.shipyard_log
    assert all(BLOCKED in e for e in log.errors), log.errors
    assert log.outside == []
    page.get_by_role("link", name="churn v1").wait_for()
    assert page.get_by_role("link", name="churn v1").get_attribute("href") == (
        "/ui/models/churn/versions/1"
    )
    assert axe_check(page) == []


def test_an_svg_preview_cannot_run_its_script_with_the_ui_origin(
    arts: tuple[str, str, Settings], open_page: Any, browser: Any
) -> None:
    url, run_id, _ = arts
    page = open_page(f"{url}/ui/runs/{run_id}?artifact=plots/evil.svg")
    img = page.wait_for_selector(".artifact-preview img")
    src = img.get_attribute("src")
    assert src.startswith("data:image/svg+xml;base64,")  # not a blob: of the UI's origin
    page.wait_for_function(f"{IMAGE}.naturalWidth > 0")
    assert page.evaluate("window.__pwned") is None
    # opened as a page ("open image in new tab"), it is a document of no origin at all
    other = browser.new_context()
    try:
        tab = other.new_page()
        tab.goto(src)
        tab.wait_for_timeout(300)
        assert tab.evaluate("window.origin") == "null"
    finally:
        other.close()


def test_chart_text_is_drawn_as_text(arts: tuple[str, str, Settings], open_page: Any) -> None:
    from urllib.parse import quote

    url, run_id, _ = arts
    page = open_page(f"{url}/ui/runs/{run_id}?metric={quote(MARKUP)}")
    page.wait_for_selector(f"{PLOT} .main-svg")
    page.wait_for_timeout(300)
    plot = page.locator(PLOT).first
    assert plot.locator("a").count() == 0 and plot.locator("b").count() == 0
    assert "EVIL</a>" in plot.inner_text() or "EVIL</a>" in plot.text_content()
    assert plot.locator(".modebar-btn[data-title*='Share'], a.modebar-btn").count() == 0


def test_yaml_csv_and_images_are_shown_as_data(
    arts: tuple[str, str, Settings], open_page: Any
) -> None:
    url, run_id, _ = arts
    page = open_page(f"{url}/ui/runs/{run_id}?artifact=conf/params.yaml")
    pre = page.wait_for_selector(".artifact-preview pre")
    assert pre.text_content() == HOSTILE_YAML
    page.get_by_role("button", name="Preview data.csv").click()
    cell = page.wait_for_selector(
        ".artifact-preview table.csv tbody tr:nth-child(2) td:nth-child(2)"
    )
    assert cell.text_content() == "<b>z</b>"  # markup in a cell is text
    assert "artifact=data.csv" in page.evaluate("location.search")
    page.get_by_role("button", name="Preview plots/loss.png").click()
    img = page.wait_for_selector(".artifact-preview img")
    assert img.get_attribute("src").startswith("blob:")
    page.wait_for_function(f"{IMAGE}.naturalWidth === 1")
    assert page.evaluate("window.__pwned") is None
    with page.expect_download() as got:
        page.get_by_role("button", name="Download conf/params.yaml").click()
    download = got.value
    assert download.suggested_filename == "params.yaml"
    assert Path(download.path()).read_text() == HOSTILE_YAML
    assert_clean(page)


def test_climbing_artifact_paths_are_400s(arts: tuple[str, str, Settings]) -> None:
    url, run_id, _ = arts
    parts = urlsplit(url)
    for bad in ("../x", "%2e%2e/x", "%2e%2e%2fx", "conf/../../x"):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("GET", f"/api/runs/{run_id}/artifacts/{bad}")  # sent as written
        answer = conn.getresponse()
        body = json.loads(answer.read())
        conn.close()
        assert (answer.status, body["field"]) == (400, "path"), bad


def test_on_a_server_that_requires_a_key_previews_and_charts_send_it(
    arts: tuple[str, str, Settings], open_page: Any
) -> None:
    from shipyard.server.app import create_server_app
    from shipyard.serving.http import BackgroundServer
    from shipyard.stores import open_stores

    _, run_id, settings = arts
    _, token = open_stores(settings).metadata.keys.create("viewer", scopes=["read"], actor="t")
    secure = settings.model_copy(update={"auth_required": True})
    with BackgroundServer(create_server_app(secure, refresh_seconds=5.0)) as srv:
        srv.wait_ready("/health/live")
        page = open_page(f"{srv.url}/ui/runs/{run_id}?metric=auc&artifact=plots/loss.png")
        page.wait_for_selector("#token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_function(DRAWN)
        page.wait_for_function(f"{IMAGE}?.naturalWidth === 1")
        page.get_by_role("button", name="Preview conf/params.yaml").click()
        pre = page.wait_for_selector(".artifact-preview pre")
        assert pre.text_content() == HOSTILE_YAML
        assert_clean(page)


def test_the_environment_the_run_recorded(
    arts: tuple[str, str, Settings], open_page: Any, axe_check: Any
) -> None:
    import platform

    import httpx

    url, run_id, _ = arts
    env = httpx.get(f"{url}/api/runs/{run_id}/environment").json()
    assert env["python"] == platform.python_version() and "numpy" in env["packages"]
    assert httpx.get(f"{url}/api/runs/nope/environment").status_code == 404
    page = open_page(f"{url}/ui/runs/{run_id}")
    summary = page.locator("section[aria-labelledby=run-environment] p").first
    summary.filter(has_text=f"Python {platform.python_version()}").wait_for()
    assert f"{len(env['packages'])} packages" in summary.inner_text()
    page.get_by_text("Packages", exact=True).click()
    row = page.locator("section[aria-labelledby=run-environment] tr", has_text="numpy")
    assert env["packages"]["numpy"] in row.inner_text()
    assert axe_check(page) == []
    assert_clean(page)
