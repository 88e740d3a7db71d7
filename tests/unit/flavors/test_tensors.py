"""TensorSignature: inference from examples, the stored form, and the checks of every input
(names, shape, batch, dtype), as the Python API and the serving routes see them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError, SignatureError
from shipyard.flavors.signature import Signature, infer_signature
from shipyard.flavors.tensors import (
    EXAMPLE_VALUES,
    TensorSignature,
    TensorSpec,
    agree_with_model,
)


class FakeTensor:
    """What a torch tensor offers numpy: `__array__`, `.shape`, `detach()` and `cpu()`."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr, self.shape, self.detached = arr, arr.shape, False

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        assert self.detached, "numpy would refuse a tensor that requires grad"
        return self.arr

    def detach(self) -> FakeTensor:
        out = FakeTensor(self.arr)
        out.detached = True
        return out

    def cpu(self) -> FakeTensor:
        return self


@pytest.fixture
def sig() -> TensorSignature:
    return infer_signature(  # type: ignore[return-value]
        {"img": np.zeros((2, 3, 4), np.float32), "ids": np.zeros((2, 5), np.int64)}
    )


def test_inferred_from_arrays_of_3_or_more_dims_and_dicts(sig: TensorSignature) -> None:
    assert sig.kind == "tensors" and sig.names == ["img", "ids"]
    assert [(c.name, c.dtype, c.shape) for c in sig.inputs] == [
        ("img", "float", (-1, 3, 4)),
        ("ids", "long", (-1, 5)),
    ]
    one = infer_signature(FakeTensor(np.zeros((1, 2, 2, 2), np.uint8)))
    assert one.to_dict() == {
        "kind": "tensors",
        "inputs": [{"name": "input", "type": "uint8", "shape": [-1, 2, 2, 2]}],
    }
    assert infer_signature(np.zeros((2, 3, 4)), ["pixels"]).names == ["pixels"]
    # tables stay column signatures, exactly as before
    assert type(infer_signature(np.zeros((2, 3)))) is Signature
    assert type(infer_signature(np.zeros(3))) is Signature
    assert type(infer_signature(pd.DataFrame({"a": [1.0]}))) is Signature
    with pytest.raises(InvalidArgumentError, match="batch dimension"):
        infer_signature({"x": np.zeros((0, 3))})
    with pytest.raises(InvalidArgumentError, match="complex128"):
        infer_signature(np.zeros((1, 2, 2), complex))


def test_stored_form_round_trips_through_signature_from_dict(sig: TensorSignature) -> None:
    doc = sig.to_dict()
    assert doc["kind"] == "tensors"
    back = Signature.from_dict(doc)
    assert back == sig and type(back) is TensorSignature
    with_missing = sig.allowing_missing(["img"])
    assert Signature.from_dict(with_missing.to_dict()) == with_missing
    old = Signature.from_dict({"inputs": [{"name": "a", "type": "double"}]})
    assert type(old) is Signature and old.kind == "columns"
    with pytest.raises(InvalidArgumentError, match="complex"):
        Signature.from_dict(
            {"kind": "tensors", "inputs": [{"name": "a", "type": "complex", "shape": [-1]}]}
        )


def test_check_frame_casts_what_loses_nothing(sig: TensorSignature) -> None:
    out = sig.check_frame({"img": np.ones((3, 3, 4)), "ids": [[1.0] * 5] * 3})
    assert out["img"].dtype == np.float32 and out["img"].shape == (3, 3, 4)
    assert out["ids"].dtype == np.int64
    for bad, field, received in [
        ({"img": np.ones((3, 3, 4)), "ids": [[1.5] * 5] * 3}, "ids", "double"),
        ({"img": np.full((3, 3, 4), "a"), "ids": np.ones((3, 5), int)}, "img", "string"),
        ({"img": np.ones((3, 3, 4), bool), "ids": np.ones((3, 5), int)}, "img", "boolean"),
        ({"img": [[[1.0, None, 1.0, 1.0]] * 3], "ids": [[1] * 5]}, "img", "mixed or null values"),
    ]:
        with pytest.raises(SignatureError) as exc:
            sig.check_frame(bad)
        assert exc.value.details["field"] == field
        assert exc.value.details["received"] == received
    with pytest.raises(SignatureError, match="beyond the long range"):
        sig.check_frame({"img": np.ones((1, 3, 4)), "ids": np.full((1, 5), 2**63, np.uint64)})
    with pytest.raises(SignatureError, match="beyond float's range"):
        sig.check_frame({"img": np.full((1, 3, 4), 1e300), "ids": np.ones((1, 5), int)})


def test_shapes_batches_and_names_are_checked(sig: TensorSignature) -> None:
    with pytest.raises(SignatureError) as shape:
        sig.check_frame({"img": np.ones((2, 3, 5)), "ids": np.ones((2, 5), int)})
    assert shape.value.details == {"field": "img", "expected": [-1, 3, 4], "received": [2, 3, 5]}
    with pytest.raises(SignatureError, match="same batch size") as batch:
        sig.check_frame({"img": np.ones((2, 3, 4)), "ids": np.ones((3, 5), int)})
    assert batch.value.details["field"] == "ids"
    with pytest.raises(SignatureError) as names:
        sig.check_frame({"img": np.ones((2, 3, 4)), "other": 1})
    assert names.value.details["missing"] == ["ids"]
    assert names.value.details["unknown"] == ["other"]
    with pytest.raises(SignatureError, match="ragged"):
        sig.check_frame({"img": [[[1.0] * 4] * 3, [[1.0] * 3] * 3], "ids": [[1] * 5] * 2})
    with pytest.raises(SignatureError, match="pass a dict"):
        sig.check_frame(np.ones((2, 3, 4)))
    with pytest.raises(SignatureError, match="not a DataFrame"):
        sig.check_frame(pd.DataFrame({"img": [1.0]}))
    with pytest.raises(SignatureError, match="datatype FP64; the model takes FP32"):
        sig.check_tensors(
            {"img": np.ones((1, 3, 4)), "ids": np.ones((1, 5), int)},
            {"img": "FP64", "ids": "INT64"},
        )


def test_nan_is_refused_unless_allowed() -> None:
    sig = infer_signature(np.zeros((1, 2, 2), np.float32))
    holed = np.ones((1, 2, 2))
    holed[0, 1, 0] = np.nan
    with pytest.raises(SignatureError, match=r"at \[0, 1, 0\]"):
        sig.check_frame(holed)
    assert np.isnan(sig.allowing_missing(True).check_frame(holed)["input"]).any()
    with pytest.raises(InvalidArgumentError, match="does not take"):
        sig.allowing_missing(["nope"])


def test_the_stored_example_is_small(sig: TensorSignature) -> None:
    example = {"img": np.ones((200, 3, 4)), "ids": np.ones((200, 5), int)}
    doc = sig.example_doc(example, n=100)
    assert doc["shapes"] == {"img": [100, 3, 4], "ids": [100, 5]}
    assert sig.example_columns(doc)["img"].shape == (100, 3, 4)
    big = infer_signature(np.zeros((1, 10, 10, 1001), np.float32))
    doc = big.example_doc(np.ones((2, 10, 10, 1001), np.float32))
    assert "data" not in doc and EXAMPLE_VALUES < 2 * 100 * 1001
    warm = big.example_columns(doc)["input"]
    assert warm.shape == (2, 10, 10, 1001) and warm.dtype == np.float32


def test_the_example_must_agree_with_the_model() -> None:
    sig = infer_signature(np.zeros((2, 3, 8, 8), np.float32), ["x"])
    agreed = agree_with_model(sig, {"x": ("float", [1, 3, -1, 8])})  # type: ignore[arg-type]
    assert agreed.inputs[0].shape == (-1, 3, -1, 8)
    assert agree_with_model(sig, {"x": (None, None)}) == sig  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="declares"):
        agree_with_model(sig, {"x": ("float", [-1, 3, 8])})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="the model takes double"):
        agree_with_model(sig, {"x": ("double", [-1, 3, 8, 8])})  # type: ignore[arg-type]


def test_log_columns_summarise_each_row() -> None:
    sig = TensorSignature((TensorSpec("x", "float", False, (-1, 2, 2)),))
    cols = sig.check_frame(np.arange(8, dtype=np.float32).reshape(2, 2, 2))
    logged = cols.log_columns()  # type: ignore[attr-defined]
    assert list(logged["x.shape"]) == ["2x2", "2x2"]
    assert list(logged["x.mean"]) == [1.5, 5.5] and list(logged["x.max"]) == [3.0, 7.0]


def test_the_prediction_log_writes_a_tensor_models_requests() -> None:
    from shipyard.serving.predlog import Entry, to_table

    sig = infer_signature(np.zeros((1, 2, 2), np.float32))
    entries = []
    for i, n in enumerate((1, 3)):
        cols = sig.check_frame(np.ones((n, 2, 2)))
        entry = Entry("e", "1", f"r{i}", 0, 1.0, 200, cols, np.ones((n, 4), np.float32))
        entries.append(entry)
    # what PredictionLogger.record keeps of a tensor request
    from shipyard.serving.predlog import _tensor_record

    for e in entries:
        e.columns, e.predictions = _tensor_record(e.columns, e.predictions)  # type: ignore[arg-type]
    table = to_table(entries).to_pandas()
    assert len(table) == 4 and list(table["_prediction"].iloc[0]) == [1.0] * 4
    assert set(table["_prediction.shape"]) == {"4"} and set(table["input.shape"]) == {"2x2"}
