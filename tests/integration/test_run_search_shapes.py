"""The run search compiles its SQL once per shape and binds the values (stores/run_statements.py),
on SQLite and PostgreSQL: the same shape asked again with other values, keys or experiments
returns the rows of those values, never the rows of the statement compiled first; shapes that
differ only in an operator, a column or the length of an IN list are not confused; metric
values of every kind (inf, NaN, 17 digits) come back exactly."""

from __future__ import annotations

import math

import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.stores import open_stores
from shipyard.stores.records import MetricPoint, RunRecord
from shipyard.tracking import RunQueries


@pytest.fixture
def runs(settings: Settings) -> RunQueries:
    for exp in ("a", "b"):
        for i in range(12):
            with sy.start_run(experiment=exp, name=f"{exp}{i}") as run:
                run.log_params({"i": i, "mod": i % 3, f"only_{exp}": "y"})
                run.log_metrics({"x": i / 10, "y": (11 - i) / 10})
                if i % 2:
                    run.set_tags({"odd": "yes"})
    return RunQueries(open_stores(settings))


def _names(found: list[RunRecord]) -> list[str]:
    return [r.name for r in found]


def test_the_same_shape_with_other_values_finds_their_runs(runs: RunQueries) -> None:
    for _ in range(2):  # the second round runs every statement from the cache
        for exp in ("a", "b", "a"):
            for bound in (0.25, 0.85, 0.05):
                got = runs.search(f"metrics.x > {bound}", experiments=exp, order_by="metrics.x")
                want = [f"{exp}{i}" for i in range(12) if i / 10 > bound]
                assert _names(got) == want
            for mod in ("0", "2"):
                got = runs.search(f"params.mod = '{mod}'", experiments=exp, order_by="name")
                assert _names(got) == sorted(f"{exp}{i}" for i in range(12) if i % 3 == int(mod))
        # the same shape, another key: params.only_a vs params.only_b
        assert len(runs.search("params.only_a = 'y'")) == 12
        assert {r.experiment for r in runs.search("params.only_b = 'y'")} == {"b"}
        # ordered by another metric of the same shape
        by_y = runs.search(experiments="a", order_by="metrics.y DESC")
        assert _names(by_y) == [f"a{i}" for i in range(12)]
        by_x = runs.search(experiments="a", order_by="metrics.x DESC")
        assert _names(by_x) == [f"a{i}" for i in reversed(range(12))]


def test_shapes_that_differ_a_little_are_not_confused(runs: RunQueries) -> None:
    asks = {
        "metrics.x > 0.5": 6,
        "metrics.x >= 0.5": 7,
        "metrics.x < 0.5": 5,
        "metrics.x != 0.5": 11,
        "params.mod IN ('1')": 4,
        "params.mod IN ('1', '2')": 8,
        "params.mod NOT IN ('1', '2')": 4,
        "tags.odd = 'yes'": 6,
        "name LIKE 'a1%'": 3,
        "name ILIKE 'A1%'": 3,
        "status = 'FINISHED' and metrics.y > 0.5": 6,
        "metrics.y > 0.5 and status = 'FINISHED'": 6,
    }
    for _ in range(2):
        for text, count in asks.items():
            assert len(runs.search(text, experiments="a")) == count, text


def test_pages_of_one_shape_with_other_tokens(runs: RunQueries) -> None:
    seen = []
    token = None
    while True:
        page, token = runs.page(
            experiments=["a", "b"], order_by="metrics.x DESC", limit=5, page_token=token
        )
        seen += _names(page)
        if token is None:
            break
    whole = runs.search(experiments=["a", "b"], order_by="metrics.x DESC")
    assert seen == _names(whole) and len(seen) == 24
    narrow, _ = runs.page(experiments="b", limit=3, keys=["params.i"])
    assert all(set(r.params) == {"i"} for r in narrow)
    other, _ = runs.page(experiments="b", limit=3, keys=["params.mod"])
    assert all(set(r.params) == {"mod"} for r in other)


def test_every_kind_of_metric_value_comes_back(settings: Settings) -> None:
    values = {"p": math.inf, "m": -math.inf, "e": 0.30000000000000004, "z": -0.0, "w": 3.0}
    stores = open_stores(settings)
    with sy.start_run(experiment="odd") as run:
        run.log_metrics({"n": math.nan})
    # the Python API refuses infinities; the MLflow REST API's log-batch stores what it gets
    stores.metadata.runs.log_batch(run.id, [MetricPoint(k, v, 0, 1) for k, v in values.items()])
    (found,) = RunQueries(stores).search(experiments="odd")
    got = dict(found.metrics)
    assert math.isnan(got.pop("n"))
    assert got == values
    assert all(type(v) is float for v in got.values())
    one = dict(RunQueries(stores).get(run.id).metrics)
    assert math.isnan(one.pop("n")) and one == values


@pytest.mark.parametrize("order", ["metrics.s DESC", "metrics.s", "params.p DESC", "tags.t"])
def test_pages_much_smaller_than_the_runs_walk_like_one_search(
    settings: Settings, order: str
) -> None:
    # pages of 3 over 40 runs: each page first asks for the runs where the key is set, then
    # (past them) for all; NaN, missing keys and ties all sort as one big search sorts them
    for i in range(40):
        with sy.start_run(experiment="many") as run:
            if i % 3:
                run.log_metrics({"s": math.nan if i % 7 == 0 else float(i % 5)})
                run.log_params({"p": i % 4})
            if i % 2:
                run.set_tags({"t": str(i % 6)})
    runs = RunQueries(open_stores(settings))
    whole = _names(runs.search(experiments="many", order_by=order))
    seen: list[str] = []
    token = None
    while True:
        page, token = runs.page(experiments="many", order_by=order, limit=3, page_token=token)
        seen += _names(page)
        if token is None:
            break
    assert seen == whole and len(set(seen)) == 40
