"""Property tests: whatever a caller sends, the request decoders give a result or a typed
shipyard error (an HTTP 4xx naming the field), never another exception (an HTTP 500)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.errors import InvalidArgumentError
from shipyard.flavors.signature import ColumnSpec, Signature
from shipyard.serving.protocol import parse_feedback, parse_predict, parse_v2

SIGNATURES = [
    Signature((ColumnSpec("f0", "double"), ColumnSpec("f1", "double")), "tensor"),
    Signature(
        (
            ColumnSpec("age", "long"),
            ColumnSpec("score", "float"),
            ColumnSpec("n", "integer"),
            ColumnSpec("member", "boolean"),
            ColumnSpec("city", "string"),
        )
    ),
]

# What orjson can hand the decoders: its integers are 64-bit (signed or not), it has no NaN.
ints = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([0, 1, -1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, -(2**63)]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from(["f0", "f1", "x", "age", "score", "n", "member", "city", ""])
datatypes = st.sampled_from(
    ["FP64", "FP32", "FP16", "INT64", "INT8", "UINT64", "BOOL", "BYTES", "FP99", 3, None]
)
dims = st.one_of(ints, st.booleans(), st.floats(allow_nan=False), st.text(max_size=2))
shapes = st.one_of(st.lists(dims, max_size=3), json_values)


def tensor_data(draw: Any) -> Any:
    flat = st.lists(scalars, max_size=8)
    nested = st.lists(st.lists(scalars, max_size=4), max_size=4)
    return draw(st.one_of(flat, nested, json_values))


@st.composite
def tensors(draw: Any) -> dict[str, Any]:
    tensor: dict[str, Any] = {
        "name": draw(st.one_of(names, json_values)),
        "shape": draw(shapes),
        "datatype": draw(datatypes),
        "data": tensor_data(draw),
    }
    for key in draw(st.sets(st.sampled_from(list(tensor)), max_size=1)):
        del tensor[key]
    return tensor


@st.composite
def v2_bodies(draw: Any) -> Any:
    doc: dict[str, Any] = {"inputs": draw(st.lists(tensors(), max_size=5))}
    if draw(st.booleans()):
        doc["outputs"] = draw(st.one_of(json_values, st.lists(st.fixed_dictionaries({}))))
    if draw(st.booleans()):
        doc["id"] = draw(json_values)
    return draw(st.one_of(st.just(doc), json_values))


@st.composite
def row_bodies(draw: Any) -> Any:
    keys = st.sampled_from(["f0", "f1", "age", "score", "n", "member", "city", "other"])
    rows = st.lists(st.dictionaries(keys, scalars, max_size=6), max_size=4)
    instances = draw(st.one_of(rows, st.lists(st.lists(scalars, max_size=3), max_size=3)))
    doc: dict[str, Any] = {"instances": instances}
    if draw(st.booleans()):
        doc["probabilities"] = draw(scalars)
    return draw(st.one_of(st.just(doc), json_values))


quick = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("signature", SIGNATURES, ids=["tensor", "columns"])
@quick
@given(doc=v2_bodies())
def test_v2_decoder_gives_columns_or_a_typed_error(signature: Signature, doc: Any) -> None:
    try:
        columns, outputs, _, _ = parse_v2(doc, signature)
    except InvalidArgumentError as exc:
        assert exc.details.get("field")
        return
    assert set(columns) == set(signature.names)
    assert len({len(v) for v in columns.values()}) == 1
    assert all(isinstance(o, str) for o in outputs)


@pytest.mark.parametrize("signature", SIGNATURES, ids=["tensor", "columns"])
@quick
@given(doc=row_bodies())
def test_predict_decoder_gives_columns_or_a_typed_error(signature: Signature, doc: Any) -> None:
    try:
        columns, _ = parse_predict(doc, signature)
    except InvalidArgumentError as exc:
        assert exc.details.get("field")
        return
    assert set(columns) == set(signature.names)
    assert len({len(v) for v in columns.values()}) == 1


@quick
@given(raw=st.one_of(st.binary(max_size=64), json_values.map(orjson.dumps)))
def test_any_bytes_give_a_typed_error_or_a_result(raw: bytes) -> None:
    for parse in (lambda b: parse_v2(b, SIGNATURES[0]), lambda b: parse_predict(b, SIGNATURES[1])):
        try:
            parse(raw)
        except InvalidArgumentError as exc:
            assert exc.details.get("field")


@quick
@given(
    doc=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"request_id": json_values},
            optional={"label": json_values, "outcome": json_values, "row": json_values},
        ),
        st.fixed_dictionaries({"feedback": st.lists(json_values, max_size=3)}),
    )
)
def test_feedback_decoder_gives_items_or_a_typed_error(doc: Any) -> None:
    try:
        items = parse_feedback(orjson.dumps(doc))
    except InvalidArgumentError as exc:
        assert exc.details.get("field")
        return
    for request_id, row, label, outcome in items:
        assert isinstance(request_id, str) and isinstance(row, int) and row >= 0
        assert label is not None or outcome is not None
        assert outcome is None or isinstance(outcome, float)
