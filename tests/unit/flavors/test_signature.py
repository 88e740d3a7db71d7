from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError, SignatureError
from shipyard.flavors.signature import (
    ColumnSpec,
    Signature,
    example_records,
    example_rows,
    infer_signature,
)


@pytest.fixture
def sig() -> Signature:
    return infer_signature(
        pd.DataFrame({"age": [30, 40], "income": [1.5, 2.5], "city": ["a", "b"]})
    )


def test_infer_from_a_frame(sig: Signature) -> None:
    assert sig.kind == "columns"
    assert sig.inputs == (
        ColumnSpec("age", "long"),
        ColumnSpec("income", "double"),
        ColumnSpec("city", "string"),
    )
    assert Signature.from_dict(sig.to_dict()) == sig


def test_infer_from_an_array() -> None:
    sig = infer_signature(np.zeros((3, 4), dtype=np.float32))
    assert sig.kind == "tensor"
    assert sig.names == ["f0", "f1", "f2", "f3"]
    assert {c.dtype for c in sig.inputs} == {"float"}


def test_infer_3d_is_a_tensor_signature_and_a_scalar_is_refused() -> None:
    assert infer_signature(np.zeros((2, 2, 2))).kind == "tensors"  # flavors/tensors.py
    with pytest.raises(InvalidArgumentError, match="2-D"):
        infer_signature(np.float64(1.0))


def test_records_become_typed_columns(sig: Signature) -> None:
    records = [{"age": 30, "income": 1, "city": "x"}, {"age": 41.0, "income": None, "city": "y"}]
    with pytest.raises(SignatureError, match=r"'income' is missing \(null\) in row 1"):
        sig.columns_from_records(records)  # trained without missing values there
    cols = sig.allowing_missing(["income"]).columns_from_records(records)
    assert cols["age"].dtype == np.int64 and cols["age"].tolist() == [30, 41]
    assert cols["income"].dtype == np.float64 and np.isnan(cols["income"][1])
    assert cols["city"].tolist() == ["x", "y"]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "empty"),
        ({"age": 1}, "must be a list"),
        ([{"age": 1, "income": 2.0}], "missing feature(s) 'city'"),
        ([{"age": 1, "income": 2.0, "city": "a", "zip": 1}], "unknown feature(s) 'zip'"),
        (
            [{"age": "old", "income": 2.0, "city": "a"}],
            "feature 'age' expects long values, got string",
        ),
        ([{"age": 1.5, "income": 2.0, "city": "a"}], "feature 'age' expects whole numbers"),
        ([{"age": True, "income": 2.0, "city": "a"}], "got boolean"),
        ([{"age": [1, 2], "income": 2.0, "city": "a"}], "single value per row"),
        ([{"age": 1, "income": "2.0", "city": "a"}], "feature 'income' expects double"),
        ([{"age": 1, "income": 2.0, "city": 3}], "feature 'city' expects string"),
        ([5], "instances[0] must be an object"),
    ],
)
def test_bad_records_name_the_problem(sig: Signature, records: object, message: str) -> None:
    with pytest.raises(SignatureError) as info:
        sig.columns_from_records(records)
    assert message in str(info.value)


def test_matrix_shape_is_checked() -> None:
    sig = infer_signature(np.zeros((2, 3)))
    with pytest.raises(SignatureError, match=r"expected \[n, 3\]"):
        sig.columns_from_matrix(np.zeros((2, 4)))
    cols = sig.columns_from_records([[1, 2, 3], [4, 5, 6]])
    assert sig.matrix(cols).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_frames_may_carry_extra_columns_but_not_miss_one(sig: Signature) -> None:
    df = pd.DataFrame({"city": ["a"], "income": [1.0], "age": [3], "extra": [0]})
    assert list(sig.to_model_input(sig.check_frame(df)).columns) == ["age", "income", "city"]
    with pytest.raises(SignatureError, match="missing column"):
        sig.check_frame(df.drop(columns=["age"]))


def test_example_keeps_column_order_through_json() -> None:
    import json

    df = pd.DataFrame({"z": [1.0], "a": [2.0]})
    stored = json.loads(json.dumps(example_rows(df), sort_keys=True))
    assert example_records(stored) == [{"z": 1.0, "a": 2.0}]
    assert list(example_records(stored)[0]) == ["z", "a"]


def test_all_float_rows_take_the_one_conversion_path() -> None:
    from shipyard.flavors.signature import MatrixColumns

    sig = infer_signature(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    cols = sig.columns_from_records([{"a": 1, "b": 2.5}, {"b": 4.0, "a": 3.0}])
    assert isinstance(cols, MatrixColumns)
    assert sig.matrix(cols, "float64") is cols.matrix
    assert cols["a"].tolist() == [1.0, 3.0] and cols["b"].tolist() == [2.5, 4.0]
    # anything that is not a number falls back to the column checks, which name the problem
    for bad, words in [
        ({"a": "1.5", "b": 2.0}, "feature 'a' expects double"),
        ({"a": [1.0], "b": 2.0}, "mixed shapes"),
    ]:
        with pytest.raises(SignatureError, match=words):
            sig.columns_from_records([{"a": 1.0, "b": 2.0}, bad])
    with pytest.raises(SignatureError, match="'a' is missing"):
        sig.columns_from_records([{"a": None, "b": 1.0}])
    with_none = sig.allowing_missing(True).columns_from_records([{"a": None, "b": 1.0}])
    assert np.isnan(with_none["a"][0])


@pytest.fixture
def wide() -> Signature:
    return infer_signature(pd.DataFrame({f"x{i}": [float(i)] for i in range(5)}))


def test_rows_in_any_key_order_give_the_same_matrix(wide: Signature) -> None:
    from shipyard.flavors.signature import MatrixColumns

    names = wide.names
    rows = [{n: float(10 * r + i) for i, n in enumerate(names)} for r in range(20)]
    want = [[float(10 * r + i) for i in range(5)] for r in range(20)]
    in_order = wide.columns_from_records(rows)
    reversed_keys = wide.columns_from_records([dict(reversed(row.items())) for row in rows])
    mixed = wide.columns_from_records(
        [dict(reversed(row.items())) if r % 3 else row for r, row in enumerate(rows)]
    )
    for cols in (in_order, reversed_keys, mixed):
        assert isinstance(cols, MatrixColumns)
        assert wide.matrix(cols, "float64").tolist() == want
        assert list(cols) == names and len(cols) == 5
        assert cols["x3"].tolist() == [float(10 * r + 3) for r in range(20)]


@pytest.mark.parametrize("reorder", [False, True])
def test_a_bad_row_among_good_ones_is_named(wide: Signature, reorder: bool) -> None:
    names = wide.names
    rows = [{n: 1.0 for n in (reversed(names) if reorder and r % 2 else names)} for r in range(32)]
    missing = [dict(row) for row in rows]
    del missing[17]["x2"]
    with pytest.raises(SignatureError) as info:
        wide.columns_from_records(missing)
    assert info.value.details["field"] == "instances[17]"
    assert "instances[17]: missing feature(s) 'x2'" in str(info.value)
    unknown = [dict(row) for row in rows]
    unknown[5]["x9"] = 1.0
    with pytest.raises(SignatureError, match=r"instances\[5\]: unknown feature\(s\) 'x9'"):
        wide.columns_from_records(unknown)
    renamed = [dict(row) for row in rows]
    renamed[30]["y0"] = renamed[30].pop("x0")  # same number of keys, one of them wrong
    with pytest.raises(SignatureError, match=r"instances\[30\]: missing feature\(s\) 'x0'"):
        wide.columns_from_records(renamed)
    text = [dict(row) for row in rows]
    text[17]["x4"] = "1.0"
    with pytest.raises(SignatureError, match="feature 'x4' expects double"):
        wide.columns_from_records(text)
    not_a_row = [dict(row) for row in rows]
    not_a_row[17] = list(names)
    with pytest.raises(SignatureError, match=r"instances\[17\] must be an object"):
        wide.columns_from_records(not_a_row)


def test_an_empty_matrix_is_refused() -> None:
    sig = infer_signature(np.zeros((2, 3)))
    with pytest.raises(SignatureError, match="'inputs' is empty") as info:
        sig.columns_from_matrix(np.zeros((0, 3)))
    assert info.value.details["field"] == "inputs"


def test_tensor_signatures_feed_the_model_an_array() -> None:
    sig = infer_signature(np.zeros((2, 2), dtype=np.float32))
    cols = sig.check_frame(np.array([1.0, 2.0]))  # one row as a 1-D array
    model_input = sig.to_model_input(cols)
    assert isinstance(model_input, np.ndarray) and model_input.tolist() == [[1.0, 2.0]]
    assert sig.matrix(cols, "float64").dtype == np.float64
    frame = pd.DataFrame({"a": [1.0], "b": [2.0]})  # other names, same width: by position
    assert sig.matrix(sig.check_frame(frame)).tolist() == [[1.0, 2.0]]


def test_a_dict_of_columns_is_checked_like_records(sig: Signature) -> None:
    cols = sig.check_frame({"age": [1, 2], "income": [0.5, 1.5], "city": ["a", "b"]})
    assert cols["age"].tolist() == [1, 2] and cols["city"].tolist() == ["a", "b"]
    with pytest.raises(SignatureError, match="feature 'age' expects whole numbers"):
        sig.check_frame({"age": [1.5], "income": [0.5], "city": ["a"]})


def test_an_empty_frame_is_refused(sig: Signature) -> None:
    with pytest.raises(SignatureError, match="no rows"):
        sig.check_frame(pd.DataFrame({"age": [], "income": [], "city": []}))


def test_boolean_features_take_only_booleans() -> None:
    sig = infer_signature(pd.DataFrame({"flag": [True, False]}))
    assert sig.inputs == (ColumnSpec("flag", "boolean"),)
    assert sig.columns_from_records([{"flag": True}])["flag"].tolist() == [True]
    with pytest.raises(SignatureError, match="expects true/false"):
        sig.columns_from_records([{"flag": 1}])
    assert not sig.all_numeric


@pytest.mark.parametrize(
    ("dtype", "values", "words"),
    [
        # a dict in a string column reached the model: a 500 a caller could use to roll back
        ("string", ["x", {"k": 1}], "expects string values"),
        ("string", ["x", 1], "expects string values"),
        # strings among numbers were converted when a null was there too
        ("double", ["1e5", None], "expects double values"),
        ("double", ["-inf", None], "expects double values"),
        ("double", [True, None], "expects double values"),
        # beyond the type's range: wrapped around (long) or infinite (float)
        ("long", [1e300], "beyond the long range"),
        ("long", [2.0**64], "beyond the long range"),
        ("integer", [2**31 + 5], "beyond the integer range"),
        ("float", [1e39], "beyond the float range"),
        ("double", [float("inf")], "finite"),
    ],
)
def test_values_that_are_not_the_columns_type_are_refused(
    dtype: str, values: list[object], words: str
) -> None:
    """Red team: each of these reached the model (a 500, a wrapped int64, a null answer)."""
    from shipyard.flavors.signature import ColumnSpec

    sig = Signature((ColumnSpec("c", dtype, missing=True),))
    with pytest.raises(SignatureError, match=words):
        sig.coerce_column("c", dtype, values)


def test_finite_doubles_beyond_float32_are_refused_for_a_float32_model() -> None:
    sig = infer_signature(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    cols = sig.columns_from_records([{"a": 1e39, "b": 1.0}])
    assert sig.matrix(cols, "float64")[0, 0] == 1e39
    with pytest.raises(SignatureError, match="float32"):
        sig.matrix(cols, "float32")


def test_pandas_nullable_columns_are_numbers_with_missing_values() -> None:
    frame = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")})
    sig = infer_signature(pd.DataFrame({"n": [1.0]})).allowing_missing(True)
    cols = sig.check_frame(frame)
    assert np.isnan(cols["n"][1]) and cols["n"][2] == 3.0
