"""Search statements compile once per shape (stores/run_statements.py): for every kind of clause,
order and page, on SQLite's and PostgreSQL's dialects, the compiled statement binds exactly the
values `SearchRequest.values` names (so its text can be reused with other values), and two
requests share a shape only when they differ in values alone."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from shipyard.stores.records import Clause, OrderKey
from shipyard.stores.run_statements import SearchRequest, search_statement

CLAUSES = [
    Clause("metrics", "auc", ">", 0.5),
    Clause("params", "lr", "=", "0.1"),
    Clause("tags", "team", "IN", ("a", "b")),
    Clause("params", "model", "NOT IN", ("rf",)),
    Clause("params", "name", "LIKE", "rf-%"),
    Clause("tags", "who", "ILIKE", "ANN%"),
    Clause("attributes", "start_time", ">=", 1.0),
    Clause("attributes", "experiment", "IN", ("e",)),
    Clause("attributes", "status", "!=", "FAILED"),
]
ORDERS = [
    (),
    (OrderKey("metrics", "auc", True),),
    (OrderKey("params", "lr"), OrderKey("attributes", "name", True)),
]
REQUESTS = [
    SearchRequest(),
    SearchRequest(["a", "b"], CLAUSES, ORDERS[1], 10),
    SearchRequest(None, CLAUSES[:3], ORDERS[2], 5, after=[None, "x", 3, "id"]),
    SearchRequest(None, CLAUSES * 2, ORDERS[2], 5, after=["0.1", None, 3, "id"]),
    SearchRequest(["a"], (), ORDERS[1], None, offset=20, keys={"params": ["a", "b"]}),
    SearchRequest(None, (), (), 50, keys={"metrics": ["m"], "tags": []}, max_keys=3),
    SearchRequest(None, CLAUSES[:1], (), 50, lifecycle=None),
]


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.psycopg.dialect()])
@pytest.mark.parametrize("request_", REQUESTS)
def test_every_value_is_a_named_parameter(dialect: Any, request_: SearchRequest) -> None:
    compiled = search_statement(request_, dialect.name).compile(dialect=dialect)
    assert compiled.params == request_.values()
    assert not compiled.post_compile_params and not compiled.literal_execute_params


def _values_changed(request: SearchRequest) -> SearchRequest:
    def other(value: Any) -> Any:
        if isinstance(value, tuple):
            return tuple(f"{v}!" for v in value)
        return value * 2 if isinstance(value, float) else f"{value}!"

    return SearchRequest(
        [f"{e}!" for e in request.experiments or ()] or None,
        [
            Clause(c.kind, c.key if c.kind == "attributes" else c.key + "!", c.op, other(c.value))
            for c in request.clauses
        ],
        [
            OrderKey(k.kind, k.key if k.kind == "attributes" else k.key + "!", k.descending)
            for k in request.order_by
        ],
        None if request.limit is None else request.limit + 1,
        request.offset + 1,
        None if request.after is None else [None if v is None else other(v) for v in request.after],
        request.keys,
        None if request.max_keys is None else request.max_keys + 1,
        request.lifecycle,
    )


@pytest.mark.parametrize("request_", REQUESTS)
def test_other_values_keep_the_shape_and_the_text(request_: SearchRequest) -> None:
    changed = _values_changed(request_)
    assert changed.shape() == request_.shape()
    assert changed.values() != request_.values() or not request_.values()
    dialect = sqlite.dialect()
    text = str(search_statement(request_, "sqlite").compile(dialect=dialect))
    assert str(search_statement(changed, "sqlite").compile(dialect=dialect)) == text


def test_a_different_operator_column_or_list_length_is_another_shape() -> None:
    base = SearchRequest(None, [Clause("metrics", "auc", ">", 0.5)])
    others = [
        SearchRequest(None, [Clause("metrics", "auc", ">=", 0.5)]),
        SearchRequest(None, [Clause("params", "auc", ">", "0.5")]),
        SearchRequest(None, [Clause("attributes", "start_time", ">", 0.5)]),
        SearchRequest(None, [Clause("attributes", "end_time", ">", 0.5)]),
        SearchRequest(None, [Clause("metrics", "auc", ">", 0.5)], after=[1, "x"]),
        SearchRequest(None, [Clause("metrics", "auc", ">", 0.5)], after=[None, "x"]),
        SearchRequest(None, [Clause("metrics", "auc", ">", 0.5)], lifecycle=None),
        SearchRequest(["e"], [Clause("metrics", "auc", ">", 0.5)]),
        SearchRequest(None, [Clause("metrics", "auc", ">", 0.5)], limit=None),
        SearchRequest(None, [Clause("metrics", "auc", ">", 0.5)], max_keys=2),
        SearchRequest(None, [Clause("metrics", "auc", ">", 0.5)], keys={"params": ["a"]}),
    ]
    shapes = {base.shape(), *(o.shape() for o in others)}
    assert len(shapes) == len(others) + 1
    two = SearchRequest(None, [Clause("tags", "t", "IN", ("a", "b"))])
    three = SearchRequest(None, [Clause("tags", "t", "IN", ("a", "b", "c"))])
    assert two.shape() != three.shape()
