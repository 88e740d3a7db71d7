from __future__ import annotations

import pytest

from shipyard.errors import FilterSyntaxError
from shipyard.stores.records import Clause, OrderKey
from shipyard.tracking.search import parse_filter, parse_order_by


def test_the_issue_example_parses() -> None:
    assert parse_filter('metrics.auc > 0.9 and params.model = "rf"') == [
        Clause("metrics", "auc", ">", 0.9),
        Clause("params", "model", "=", "rf"),
    ]


@pytest.mark.parametrize(
    ("text", "clause"),
    [
        ("status = 'FINISHED'", Clause("attributes", "status", "=", "FINISHED")),
        ("attributes.name LIKE 'rf-%'", Clause("attributes", "name", "LIKE", "rf-%")),
        ("tags.team IN ('a', 'b')", Clause("tags", "team", "IN", ("a", "b"))),
        ("tags.team NOT IN ('a')", Clause("tags", "team", "NOT IN", ("a",))),
        ("metric.loss <= -1.5e-3", Clause("metrics", "loss", "<=", -0.0015)),
        ("params.C == 1.0", Clause("params", "C", "=", "1.0")),
        ("metrics.`val/auc` != 2", Clause("metrics", "val/auc", "!=", 2.0)),
        ("params.name ILIKE '%Forest%'", Clause("params", "name", "ILIKE", "%Forest%")),
        ("start_time > 100", Clause("attributes", "start_time", ">", 100.0)),
        ("params.p = 'it\\'s'", Clause("params", "p", "=", "it's")),
    ],
)
def test_clauses(text: str, clause: Clause) -> None:
    assert parse_filter(text) == [clause]


def test_empty_filter_is_no_filter() -> None:
    assert parse_filter(None) == []
    assert parse_filter("   ") == []


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("metrics.auc >> 0.9", 13, "expected a number"),
        ("metrics.auc > 0.9 and", 21, "ends too early"),
        ("metrics.auc > 0.9 or params.a = 'b'", 18, "OR is not supported"),
        ("metrics.auc LIKE 'x'", 12, "does not apply to numbers"),
        ("metrics.auc > 'high'", 14, "expected a number"),
        ("params.model > 'rf'", 13, "does not apply to params"),
        ("bogus.x = 1", 0, "unknown prefix 'bogus'"),
        ("colour = 'red'", 0, "unknown run attribute 'colour'"),
        ("metrics.auc > 0.9 params.a = 'b'", 18, "expected AND"),
        ("params.a = 'b' ; drop table runs", 15, "unexpected character ';'"),
        ("params.a IN 'b'", 12, "expected '('"),
    ],
)
def test_bad_filters_point_at_the_offending_token(text: str, position: int, words: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert info.value.details["position"] == position
    assert words in str(info.value)
    assert str(info.value).splitlines()[-1].index("^") == position + 2


def test_order_by() -> None:
    assert parse_order_by(["metrics.auc DESC", "start_time", "params.C asc"]) == [
        OrderKey("metrics", "auc", True),
        OrderKey("attributes", "start_time", False),
        OrderKey("params", "C", False),
    ]
    assert parse_order_by("metrics.auc") == [OrderKey("metrics", "auc", False)]


def test_bad_order_by() -> None:
    with pytest.raises(FilterSyntaxError, match="expected ASC or DESC"):
        parse_order_by(["metrics.auc DOWN"])


def test_a_filter_over_the_size_limits_is_refused_naming_the_limit() -> None:
    from shipyard.errors import InvalidArgumentError
    from shipyard.tracking.search import MAX_FILTER_CHARS, MAX_FILTER_CLAUSES

    most = " and ".join(f"metrics.m{i} > 0" for i in range(MAX_FILTER_CLAUSES))
    assert len(parse_filter(most)) == MAX_FILTER_CLAUSES
    with pytest.raises(InvalidArgumentError, match=f"the limit is {MAX_FILTER_CLAUSES}") as info:
        parse_filter(most + " and metrics.x > 1")
    assert info.value.details == {"field": "filter", "limit": MAX_FILTER_CLAUSES}
    long = "params.p = '" + "x" * MAX_FILTER_CHARS + "'"
    with pytest.raises(InvalidArgumentError, match=f"the limit is {MAX_FILTER_CHARS}") as info:
        parse_filter(long)
    assert info.value.details["field"] == "filter"
    with pytest.raises(InvalidArgumentError) as info:
        parse_order_by([f"metrics.m{i}" for i in range(1000)])
    assert info.value.details["field"] == "order_by"
