from __future__ import annotations

import numpy as np
import orjson
import pytest

from shipyard.errors import InvalidArgumentError, SignatureError
from shipyard.flavors.signature import infer_signature
from shipyard.serving.protocol import parse_predict, parse_v2, v2_tensor

SIG = infer_signature(np.zeros((1, 2)))  # f0, f1 doubles


def body(doc: object) -> bytes:
    return orjson.dumps(doc)


def test_predict_body() -> None:
    cols, proba = parse_predict(
        body({"instances": [{"f0": 1, "f1": 2}], "probabilities": True}), SIG
    )
    assert proba is True
    assert cols["f1"].tolist() == [2.0]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"", "body"),
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (body({"rows": []}), "instances"),
        (body({"instances": [], "extra": 1}), "extra"),
        (body({"instances": [{"f0": 1, "f1": 2}], "probabilities": "yes"}), "probabilities"),
    ],
)
def test_bad_predict_bodies(raw: bytes, field: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_predict(raw, SIG)
    assert info.value.details["field"] == field


def test_v2_per_column_and_matrix_forms_agree() -> None:
    per_col = {
        "inputs": [
            {"name": "f0", "shape": [2], "datatype": "FP64", "data": [1, 3]},
            {"name": "f1", "shape": [2], "datatype": "FP64", "data": [2, 4]},
        ]
    }
    matrix = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}]}
    a = parse_v2(body(per_col), SIG).columns
    b = parse_v2(body(matrix), SIG).columns
    assert {k: v.tolist() for k, v in a.items()} == {k: v.tolist() for k, v in b.items()}
    nested = {
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]
    }
    c = parse_v2(body(nested), SIG).columns
    assert c["f1"].tolist() == [2.0, 4.0]


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"inputs": []}, "non-empty list"),
        (
            {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1] * 6}]},
            "expected [n, 2]",
        ),
        (
            {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3]}]},
            "has 3 values",
        ),
        (
            {"inputs": [{"name": "f0", "shape": [1], "datatype": "FP64", "data": [1]}]},
            "missing input(s) 'f1'",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP99", "data": [1, 2]}]},
            "not a V2 datatype",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": ["a", "b"]}]},
            "must hold numbers",
        ),
        ({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64"}]}, "has no 'data'"),
        ({"inputs": [{"name": "x", "shape": [0, 2], "datatype": "FP64", "data": []}]}, "empty"),
        (  # the element count overflows a 64-bit product
            {"inputs": [{"name": "x", "shape": [2**32, 2**32], "datatype": "FP64", "data": []}]},
            "needs 18446744073709551616",
        ),
        (  # a JSON true is no dimension
            {"inputs": [{"name": "x", "shape": [True, 2], "datatype": "FP64", "data": [1, 2]}]},
            "whole numbers",
        ),
    ],
)
def test_bad_v2_bodies(doc: object, words: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_v2(body(doc), SIG)
    assert words in str(info.value)
    assert "field" in info.value.details


def test_v2_tensor_types() -> None:
    assert v2_tensor("p", np.array([1, 0]))["datatype"] == "INT64"
    assert v2_tensor("p", np.zeros((2, 2), np.float32)) == {
        "name": "p",
        "shape": [2, 2],
        "datatype": "FP32",
        "data": [0.0] * 4,
    }
    assert isinstance(SignatureError("x"), InvalidArgumentError)
