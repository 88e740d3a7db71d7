"""Property tests: any filter text gives clauses or a typed error (a 400), never another
exception, and a filter that parses stays within the size limits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import InvalidArgumentError
from shipyard.tracking.search import MAX_FILTER_CLAUSES, parse_filter, parse_order_by

pieces = st.sampled_from(
    [
        "metrics.auc", "params.p", "tags.t", "status", "start_time", "attr.name", "run.id",
        "metrics.`a/b`", "foo.bar", ">", ">=", "=", "==", "!=", "<>", "LIKE", "ILIKE", "IN",
        "NOT", "NOT IN", "AND", "and", "OR", "(", ")", ",", "'x'", '"y"', "'it\\'s'", "0.5",
        "-1e3", "1.", ".5", "`", "'", '"', "\\", "ASC", "DESC", " ", "\t", "\x00", "é",
    ]
)  # fmt: skip
texts = st.one_of(st.text(max_size=60), st.lists(pieces, max_size=25).map(" ".join))


@settings(max_examples=500, deadline=None)
@given(text=texts)
def test_a_filter_parses_or_is_a_typed_error(text: str) -> None:
    try:
        clauses = parse_filter(text)
    except InvalidArgumentError:
        return
    assert len(clauses) <= MAX_FILTER_CLAUSES


@settings(max_examples=300, deadline=None)
@given(items=st.one_of(texts, st.lists(texts, max_size=4)))
def test_an_order_by_parses_or_is_a_typed_error(items: str | list[str]) -> None:
    try:
        parse_order_by(items)
    except InvalidArgumentError:
        return
