"""Keyset pages of runs, the column summary and groups, on SQLite and PostgreSQL: walking the
pages of any order gives every run once, in the order one big search gives; a run logged
between two pages neither repeats nor hides one; a token from another order, or forged, is a
400 naming page_token; the summary says which params vary."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError
from shipyard.stores import open_stores
from shipyard.tracking import RunQueries

ORDERS: list[list[str] | None] = [
    None,
    ["metrics.auc DESC"],
    ["metrics.auc"],
    ["params.lr", "metrics.auc DESC"],
    ["name"],
    ["tags.team DESC", "params.k"],
]


@pytest.fixture
def logged(settings: Settings) -> list[str]:
    ids = []
    for i in range(23):
        with sy.start_run(experiment="pages", name=f"r{i % 5}") as run:
            run.log_params({"lr": i % 3, "const": "x", "k": i})
            if i % 4:  # some runs lack the metric: NULLs sort last either way
                run.log_metrics({"auc": round((i * 7) % 10 / 10, 1)})  # many ties
            if i % 2:
                run.set_tags({"team": "a" if i % 3 else "b"})
            ids.append(run.id)
    return ids


def _walk(runs: RunQueries, order: list[str] | None, limit: int) -> list[str]:
    seen: list[str] = []
    token = None
    while True:
        page, token = runs.page(experiments="pages", order_by=order, limit=limit, page_token=token)
        assert len(page) <= limit
        seen += [r.id for r in page]
        if token is None:
            return seen


@pytest.mark.parametrize("order", ORDERS)
def test_pages_walk_every_run_once_in_order(
    settings: Settings, logged: list[str], order: list[str] | None
) -> None:
    runs = RunQueries(open_stores(settings))
    whole = [r.id for r in runs.search(experiments="pages", order_by=order, limit=1000)]
    assert sorted(whole) == sorted(logged)
    for limit in (1, 4, 23, 50):
        assert _walk(runs, order, limit) == whole


def test_a_run_logged_between_pages_repeats_none(settings: Settings, logged: list[str]) -> None:
    runs = RunQueries(open_stores(settings))
    first, token = runs.page(experiments="pages", limit=10)
    with sy.start_run(experiment="pages") as run:  # newest: sorts before the first page
        run.log_params({"lr": 0})
    rest: list[Any] = []
    while token:
        page, token = runs.page(experiments="pages", limit=10, page_token=token)
        rest += page
    ids = [r.id for r in first + rest]
    assert len(ids) == len(set(ids)) == len(logged)


def test_bad_tokens_name_the_field(settings: Settings, logged: list[str]) -> None:
    runs = RunQueries(open_stores(settings))
    _, token = runs.page(experiments="pages", order_by=["metrics.auc DESC"], limit=3)
    assert token is not None
    forged = base64.urlsafe_b64encode(orjson.dumps({"o": [], "a": [{"x": 1}, 2]})).decode()
    for bad, order in (
        (token, ["metrics.auc"]),  # another order
        ("not-a-token", None),
        (forged, None),
        ("A" * 30_000, None),
    ):
        with pytest.raises(InvalidArgumentError) as err:
            runs.page(experiments="pages", order_by=order, page_token=bad)
        assert err.value.details.get("field") == "page_token"


def test_columns_say_what_varies(settings: Settings, logged: list[str]) -> None:
    runs = RunQueries(open_stores(settings))
    summary = runs.columns(experiments="pages")
    assert summary["runs"] == 23
    params = {p["key"]: p for p in summary["params"]}
    assert params["const"]["varies"] is False and params["const"]["distinct"] == 1
    assert params["lr"]["varies"] is True and params["lr"]["distinct"] == 3
    (auc,) = summary["metrics"]
    assert auc["runs"] == 17 and auc["varies"] is True  # missing on 6 runs
    narrowed = runs.columns("params.lr = '1'", experiments="pages")
    assert narrowed["runs"] == 8
    assert {p["key"]: p["distinct"] for p in narrowed["params"]}["lr"] == 1


def test_groups_over_http(settings: Settings, logged: list[str]) -> None:
    from shipyard.server.app import create_server_app
    from shipyard.serving.http import BackgroundServer

    with BackgroundServer(create_server_app(settings, refresh_seconds=5)) as srv:
        srv.wait_ready("/health/live")
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            got = client.get(
                "/api/runs/groups",
                params={"by": "params.lr", "metric": "metrics.auc", "experiment": "pages"},
            )
            assert got.status_code == 200, got.text
            groups = {g["value"]: g for g in got.json()["groups"]}
            assert sum(g["runs"] for g in groups.values()) == 23
            assert set(groups) == {"0", "1", "2"}
            assert all(0 <= g["min"] <= g["mean"] <= g["max"] <= 1 for g in groups.values())
            for params, field in (
                ({"by": "metrics.auc"}, "by"),
                ({"by": "params.lr", "metric": "params.k"}, "metric"),
            ):
                bad = client.get("/api/runs/groups", params=params)
                assert bad.status_code == 400 and bad.json()["field"] == field, bad.text
            page = client.get("/api/runs", params={"experiment": "pages", "limit": 5}).json()
            nxt = client.get(
                "/api/runs",
                params={"experiment": "pages", "limit": 5, "page_token": page["next_page_token"]},
            ).json()
            assert {r["id"] for r in page["runs"]}.isdisjoint(r["id"] for r in nxt["runs"])
            bad = client.get("/api/runs", params={"page_token": "%%%"})
            assert bad.status_code == 400 and bad.json()["field"] == "page_token"
            who = client.get("/api/whoami").json()
            assert who["name"] == "anonymous" and who["auth_required"] is False


def test_keys_narrow_what_a_page_carries(settings: Settings, logged: list[str]) -> None:
    runs = RunQueries(open_stores(settings))
    capped, _ = runs.page(experiments="pages", limit=50, max_keys=1)
    assert {tuple(r.params) for r in capped} == {("const",)}  # the first by name
    assert all(len(r.metrics) <= 1 and len(r.tags) <= 1 for r in capped)
    named, _ = runs.page(experiments="pages", limit=50, keys=["params.k", "metrics.auc"])
    assert all(set(r.params) == {"k"} for r in named)
    assert sum(1 for r in named if "auc" in r.metrics) == 17
    assert sum(1 for r in named if r.tags) == 11  # a kind not named is returned whole
    with pytest.raises(InvalidArgumentError) as err:
        runs.page(experiments="pages", keys=["status"])
    assert err.value.details.get("field") == "keys"


def test_metric_values_come_back_exactly(settings: Settings) -> None:
    values = {"a": 0.30000000000000004, "b": 1 / 3, "c": 1e-300, "d": -2.5e17}
    with sy.start_run(experiment="exact") as run:
        run.log_metrics(values)
        run.log_metrics({"n": float("nan")})
    (found,), _ = RunQueries(open_stores(settings)).page(experiments="exact")
    assert {k: v for k, v in found.metrics.items() if k != "n"} == values
    assert found.metrics["n"] != found.metrics["n"]  # NaN
    assert RunQueries(open_stores(settings)).get(run.id).metrics["b"] == 1 / 3


def test_odd_arguments_are_4xx_naming_the_field(settings: Settings, logged: list[str]) -> None:
    from shipyard.server.app import create_server_app
    from shipyard.serving.http import BackgroundServer

    run_id = logged[0]
    forged = base64.urlsafe_b64encode(
        orjson.dumps({"o": [["metrics", "auc", True]], "a": [True, True, True]})
    ).decode()
    asks = [
        (f"/api/runs/{run_id}/metrics/auc", {"min_step": "99999999999999999999"}, "min_step"),
        (f"/api/runs/{run_id}/metrics/auc", {"max_step": str(2**63)}, "max_step"),
        ("/api/runs", {"order_by": "metrics.auc DESC", "page_token": forged}, "page_token"),
        ("/api/runs", {"keys": [f"params.p{i}" for i in range(1001)]}, "keys"),
        ("/api/runs", {"keys": "params.a DESC"}, "keys"),
    ]
    with BackgroundServer(create_server_app(settings, refresh_seconds=5)) as srv:
        srv.wait_ready("/health/live")
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            many = client.get("/api/runs", params={"keys": [f"params.p{i}" for i in range(30)]})
            assert many.status_code == 200  # more keys than an order_by takes
            for path, params, field in asks:
                got = client.get(path, params=params)
                assert got.status_code in (400, 422), (path, params, got.text)
                assert field in got.text, (path, params, got.text)
