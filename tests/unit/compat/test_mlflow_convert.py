"""MLflow's JSON read and written: protobuf's doubles and int64s, its DatasetInput, and
shipyard's errors as MLflow's codes and statuses."""

from __future__ import annotations

import math
import sys

import pytest

from shipyard.compat.mlflow import convert
from shipyard.compat.mlflow.app import error_code
from shipyard.errors import (
    AlreadyExistsError,
    ConflictError,
    FilterSyntaxError,
    ForbiddenError,
    InvalidArgumentError,
    NotFoundError,
    ShipyardError,
    StoreUnavailableError,
)


def test_doubles_as_protobuf_writes_and_reads_them() -> None:
    assert [convert.number(v) for v in (1.5, math.nan, math.inf, -math.inf)] == [
        1.5,
        "NaN",
        "Infinity",
        "-Infinity",
    ]
    assert math.isnan(convert.double({"value": "NaN"}, "value"))
    assert convert.double({"value": "Infinity"}, "value") == sys.float_info.max
    assert convert.double({"value": "-Infinity"}, "value") == -sys.float_info.max
    for bad in ({"value": True}, {"value": "high"}, {}):
        with pytest.raises(InvalidArgumentError):
            convert.double(bad, "value")


def test_int64_fields_come_as_numbers_or_strings() -> None:
    assert convert.integer({"step": "12"}, "step") == 12
    assert convert.integer({"step": 3.0}, "step") == 3
    assert convert.integer({}, "step", 0) == 0
    for bad in ("1.5", 1.5, True, "x"):
        with pytest.raises(InvalidArgumentError):
            convert.integer({"step": bad}, "step")


def test_page_tokens_by_offset() -> None:
    assert convert.read_offset(convert.offset_token(25)) == 25
    assert convert.read_offset("") == 0 and convert.read_offset(None) == 0
    for bad in ("nonsense", convert.offset_token(-1)):
        with pytest.raises(InvalidArgumentError):
            convert.read_offset(bad)


def test_a_dataset_input_needs_its_description() -> None:
    item = {
        "dataset": {"name": "d", "digest": "abc", "source_type": "code", "source": "{}"},
        "tags": [{"key": "mlflow.data.context", "value": "training"}],
        "newer_field": 1,
    }
    dataset = convert.dataset_input(item)
    assert (dataset.name, dataset.context, dataset.schema) == ("d", "training", "")
    record = dataset.record()
    assert convert.dataset_input_json(record) == {
        "tags": [{"key": "mlflow.data.context", "value": "training"}],
        "dataset": {
            "name": "d",
            "digest": "abc",
            "source_type": "code",
            "source": "{}",
            "schema": "",
            "profile": "",
        },
    }
    with pytest.raises(InvalidArgumentError, match=r"dataset\.digest"):
        convert.dataset_input({"dataset": {"name": "d", "source_type": "x", "source": "y"}})


@pytest.mark.parametrize(
    ("error", "answer"),
    [
        (NotFoundError("x"), (404, "RESOURCE_DOES_NOT_EXIST")),
        (InvalidArgumentError("x"), (400, "INVALID_PARAMETER_VALUE")),
        (FilterSyntaxError("x", text="a", position=0), (400, "INVALID_PARAMETER_VALUE")),
        (AlreadyExistsError("x"), (400, "RESOURCE_ALREADY_EXISTS")),
        (ConflictError("x"), (400, "INVALID_STATE")),
        (ForbiddenError("x"), (403, "PERMISSION_DENIED")),
        (StoreUnavailableError("x"), (503, "TEMPORARILY_UNAVAILABLE")),
        (ShipyardError("x"), (500, "INTERNAL_ERROR")),
    ],
)
def test_errors_as_mlflow_codes(error: ShipyardError, answer: tuple[int, str]) -> None:
    assert error_code(error) == answer


def test_string_fields() -> None:
    assert convert.text({"experiment_id": 3}, "experiment_id") == "3"  # an id sent as a number
    assert convert.text({"run_id": ["a", "b"]}, "run_id") == "a"  # a query parameter twice
    assert convert.text({}, "filter", required=False) is None
    with pytest.raises(InvalidArgumentError, match="Missing value for required parameter 'name'"):
        convert.required({"name": ""}, "name")
    with pytest.raises(InvalidArgumentError):
        convert.text({"name": {"a": 1}}, "name")
    assert convert.key_values({"tags": [{"key": "a", "value": None}]}, "tags") == {"a": ""}
    assert convert.strings({"order_by": "x"}, "order_by") == ["x"]
