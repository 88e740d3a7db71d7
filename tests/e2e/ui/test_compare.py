"""/ui/compare in a real headless Chromium against the seeded server: diff-only shows exactly
the params that differ, 100 runs of 150 params x 300 metrics show their first rows fast with a
bounded DOM, the parallel coordinates are drawn, and a copied URL reproduces the view."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.ui.conftest import Seeded, assert_clean
from tests.e2e.ui.seed import DIFFERING

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ui")]

CELL = ".vgrid [role=gridcell]"
# when the first cell of the table enters the DOM, in ms since the navigation started
FIRST_CELL = """
window.__firstCell = null;
new MutationObserver((_, obs) => {
  if (document.querySelector(".vgrid [role=gridcell]")) {
    window.__firstCell = performance.now();
    obs.disconnect();
  }
}).observe(document, { childList: true, subtree: true });
"""
ROWS = "[...document.querySelectorAll('[data-row]')].map((e) => e.dataset.row)"
PARCOORDS = """(() => {
  const el = document.getElementById("cmp-parcoords");
  const d = el && el.data;
  return d && d.length ? { type: d[0].type, labels: d[0].dimensions.map((x) => x.label) } : null;
})()"""
CHART = """(() => {
  const el = document.getElementById("cmp-chart");
  return el && el.data ? el.data.map((t) => t.x.length) : null;
})()"""
DOM_SIZE = """(() => {
  const rows = [...document.querySelectorAll(".vgrid [role=row]")];
  const cells = rows.map((r) => r.querySelectorAll("[role=gridcell],[role=columnheader]").length);
  return { rows: rows.length, cells: Math.max(...cells) };
})()"""


def compare_url(seeded: Seeded, ids: list[str], **extra: str) -> str:
    query = "&".join([f"runs={','.join(ids)}", *(f"{k}={v}" for k, v in extra.items())])
    return f"{seeded.url}/ui/compare?{query}"


def poll(page: Any, expression: str, timeout: float = 30.0) -> Any:
    """page.wait_for_function evaluates a string with eval, which the UI's CSP forbids."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value or time.monotonic() > deadline:
            return value
        page.wait_for_timeout(100)


def diff_rows(page: Any) -> list[str]:
    page.wait_for_selector("[data-row^='params.']")
    rows: list[str] = page.evaluate(ROWS)
    return rows


def test_diff_only_shows_the_three_params_that_differ_and_the_url_reproduces_it(
    seeded: Seeded, open_page: Any, browser: Any, axe_check: Any, shot: Any
) -> None:
    page = open_page(compare_url(seeded, seeded.ids["diff"]))
    page.wait_for_selector(CELL)
    assert page.get_by_text("3 of 117 params differ").is_visible()
    assert len(diff_rows(page)) > 20  # every row (those in view: the grid is virtualised)
    page.get_by_label("diff only").check()
    rows = poll(page, f"(() => {{ const r = {ROWS}; return r.length < 20 ? r : null; }})()")
    assert [r for r in rows if r.startswith("params.")] == [
        f"params.{k}" for k in sorted(DIFFERING)
    ]
    assert [r for r in rows if r.startswith("metrics.")] == ["metrics.auc"]
    assert page.locator(".vgrid .cmp-diff").count() > 0  # differing cells stand out
    assert parse_qs(urlsplit(page.url).query)["diff"] == ["1"]

    coords = poll(page, PARCOORDS)
    assert coords == {"type": "parcoords", "labels": [*sorted(DIFFERING), "auc"]}
    assert poll(page, CHART) == [1] * 5
    # fewer axes: the choice goes into the URL too
    page.locator("#cmp-params").select_option(["depth", "seed"])
    assert poll(
        page,
        f"(() => {{ const c = {PARCOORDS}; return c && c.labels.length === 3 ? c : null; }})()",
    )
    assert parse_qs(urlsplit(page.url).query)["pc"] == ["depth,seed"]
    shot(page, "compare-diff")
    assert_clean(page)
    assert axe_check(page) == []

    # the copied URL in a fresh browser context: the same rows, the same axes
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        again = ctx.new_page()
        errors: list[str] = []
        again.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        again.goto(page.url)
        assert poll(again, f"(() => {{ const r = {ROWS}; return r.length ? r : null; }})()") == rows
        assert again.get_by_label("diff only").is_checked()
        assert poll(again, PARCOORDS) == {"type": "parcoords", "labels": ["depth", "seed", "auc"]}
        assert errors == []
    finally:
        ctx.close()


def test_a_hundred_runs_show_their_first_rows_fast_in_a_bounded_dom(
    seeded: Seeded, open_page: Any, shot: Any
) -> None:
    ids = seeded.ids["big"][:100]
    page = open_page("about:blank")
    page.add_init_script(FIRST_CELL)
    started = time.monotonic()
    page.goto(compare_url(seeded, ids, metric="m007"))
    page.wait_for_selector(CELL)
    wall = time.monotonic() - started
    first = poll(page, "window.__firstCell")
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"\ncompare 100 runs: first cell {first:.0f} ms after navigation", end=" ")
    print(f"({wall:.2f} s wall), load {load}")
    assert first < 2000

    size = page.evaluate(DOM_SIZE)
    assert size["rows"] <= 100 and size["cells"] <= 50, size
    grid = page.locator(".cmp-table .vgrid")
    grid.evaluate(
        "(el) => { el.scrollTop = el.scrollHeight / 2; el.scrollLeft = el.scrollWidth / 2; }"
    )
    page.wait_for_timeout(300)
    size = page.evaluate(DOM_SIZE)
    assert size["rows"] <= 100 and size["cells"] <= 50, size
    assert page.evaluate("document.querySelectorAll('.vgrid [role=columnheader]').length") <= 50

    coords = poll(page, PARCOORDS)
    assert coords["type"] == "parcoords"
    assert len(coords["labels"]) == 9 and coords["labels"][-1] == "m007"  # 8 params + the metric
    assert poll(page, CHART, timeout=60) == [1] * 100
    shot(page, "compare-100")
    assert_clean(page)


def test_more_than_a_hundred_runs_or_unknown_ones_get_a_clear_message(
    seeded: Seeded, open_page: Any
) -> None:
    page = open_page(compare_url(seeded, seeded.ids["big"][:101]))
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "at most 100" in alert.inner_text()
    assert page.locator(CELL).count() == 0
    assert_clean(page)

    page = open_page(compare_url(seeded, [*seeded.ids["diff"][:2], "0" * 32, "no'such"]))
    page.wait_for_selector(CELL)
    assert "2 of the runs asked for not found" in page.get_by_role("status").first.inner_text()
    assert_clean(page)

    page = open_page(compare_url(seeded, seeded.ids["diff"][:1]))
    page.get_by_text("Pick 2 to 100 runs").wait_for()
    assert_clean(page)


def test_short_run_ids_as_the_cli_prints_them(seeded: Seeded, open_page: Any) -> None:
    ids = seeded.ids["diff"][:3]
    page = open_page(compare_url(seeded, [i[:8] for i in ids]))
    page.wait_for_selector(CELL)
    headers = page.locator("[role=columnheader]").all_inner_texts()
    assert [h for h in headers if h.startswith("diff-")] == ["diff-0", "diff-1", "diff-2"]
    assert page.get_by_role("status").count() == 0 or "not found" not in " ".join(
        page.get_by_role("status").all_inner_texts()
    )
    assert_clean(page)
