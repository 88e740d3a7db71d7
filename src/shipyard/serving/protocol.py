"""Request and response bodies: the plain JSON route and the Open Inference Protocol (V2).

Bodies are parsed with orjson; validation errors name the field at fault."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from shipyard.errors import InvalidArgumentError, SignatureError
from shipyard.flavors.signature import V2_DATATYPE

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from shipyard.flavors.signature import Signature

_V2_NUMERIC = {
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
}
_V2_DATATYPES = frozenset(_V2_NUMERIC | {"BOOL", "BYTES"})  # built once, not per tensor


_PREDICT_FIELDS = frozenset({"instances", "probabilities", "id", "key"})


def parse_json(body: bytes | bytearray) -> Any:
    if not body:
        raise InvalidArgumentError("the request body is empty; send a JSON object", field="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgumentError(
            f"the request body is not valid JSON: {exc}", field="body"
        ) from exc


def request_key(doc: Any) -> str | None:
    """The caller key that sticky routing hashes: `"key"` in a plain body, or
    `parameters.key` in a V2 body."""
    if not isinstance(doc, dict):
        return None
    key = doc.get("key")
    if key is None and isinstance(doc.get("parameters"), dict):
        key = doc["parameters"].get("key")
    if key is None:
        return None
    if isinstance(key, bool) or not isinstance(key, (str, int)) or str(key) == "":
        raise InvalidArgumentError("'key' must be a non-empty string or integer", field="key")
    return str(key)


def parse_predict(body: bytes | Any, signature: Signature) -> tuple[Mapping[str, np.ndarray], bool]:
    """`{"instances": [{...}, ...], "probabilities": false}` → (columns, want probabilities).
    `body` may be the raw bytes or the already parsed JSON."""
    doc = parse_json(body) if isinstance(body, (bytes, bytearray)) else body
    if not isinstance(doc, dict):
        raise InvalidArgumentError("the body must be a JSON object with 'instances'", field="body")
    if "instances" not in doc:
        if "dataframe_records" in doc:  # MLflow's spelling, accepted for easy migration
            doc["instances"] = doc.pop("dataframe_records")
        else:
            raise InvalidArgumentError(
                "the body needs an 'instances' list of rows", field="instances"
            )
    unknown = doc.keys() - _PREDICT_FIELDS
    if unknown:
        raise InvalidArgumentError(
            f"unknown field(s) {', '.join(sorted(map(repr, unknown)))}; "
            "allowed: instances, probabilities, id, key",
            field=sorted(unknown)[0],
        )
    proba = doc.get("probabilities", False)
    if not isinstance(proba, bool):
        raise InvalidArgumentError("'probabilities' must be true or false", field="probabilities")
    return signature.columns_from_records(doc["instances"]), proba


def parse_v2(
    body: bytes | Any, signature: Signature
) -> tuple[Mapping[str, np.ndarray], list[str], str | None]:
    """A V2 infer request → (columns, requested outputs, request id).

    Either one tensor per feature column (named as the column, shape [n]) or one 2-D tensor of
    shape [n, n_features] in signature order."""
    doc = parse_json(body) if isinstance(body, (bytes, bytearray)) else body
    if not isinstance(doc, dict):
        raise InvalidArgumentError("the body must be a JSON object with 'inputs'", field="body")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidArgumentError("'inputs' must be a non-empty list of tensors", field="inputs")
    tensors = _v2_tensors(inputs)
    outputs = doc.get("outputs") or []
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and "name" in o for o in outputs
    ):
        raise InvalidArgumentError("'outputs' must be a list of {\"name\": …}", field="outputs")
    request_id = doc.get("id")
    if len(tensors) == 1 and next(iter(tensors.values())).ndim == 2:
        matrix = next(iter(tensors.values()))
        columns = signature.columns_from_matrix(matrix, field="inputs[0]")
    else:
        columns = _v2_feature_columns(tensors, signature)
    return columns, [str(o["name"]) for o in outputs], str(request_id) if request_id else None


def _v2_tensors(inputs: list[Any]) -> dict[str, np.ndarray]:
    """The `inputs` list → arrays by tensor name, each checked against its declared shape and
    datatype. The per-tensor checks stay inline in this one loop: it runs for every tensor of
    every V2 request."""
    import numpy as np

    tensors: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(inputs):
        field = f"inputs[{i}]"
        if not isinstance(tensor, dict):
            raise InvalidArgumentError(f"{field} must be an object", field=field)
        for key in ("name", "shape", "datatype", "data"):
            if key not in tensor:
                raise InvalidArgumentError(f"{field} has no '{key}'", field=f"{field}.{key}")
        name, shape, datatype, data = (
            tensor["name"],
            tensor["shape"],
            tensor["datatype"],
            tensor["data"],
        )
        if not isinstance(name, str):
            raise InvalidArgumentError(f"{field}.name must be a string", field=f"{field}.name")
        # type(d) is int: a JSON true is a Python int, and no dimension
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= 2
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise InvalidArgumentError(
                f"{field}.shape must be [n] or [n, features] of whole numbers",
                field=f"{field}.shape",
            )
        if datatype not in _V2_DATATYPES:
            raise InvalidArgumentError(
                f"{field}.datatype {datatype!r} is not a V2 datatype", field=f"{field}.datatype"
            )
        if not isinstance(data, list):
            raise InvalidArgumentError(f"{field}.data must be a list", field=f"{field}.data")
        if name in tensors:
            raise InvalidArgumentError(f"tensor '{name}' appears twice", field=f"{field}.name")
        try:
            arr = np.asarray(data, dtype=object if datatype == "BYTES" else None)
        except ValueError as exc:
            raise SignatureError(f"{field}.data is ragged", field=f"{field}.data") from exc
        expected = math.prod(shape)  # Python ints: numpy's product wraps around at 2**64
        if arr.size != expected:
            raise SignatureError(
                f"{field}.data has {arr.size} values but shape {shape} needs {expected}",
                field=f"{field}.data",
            )
        if datatype in _V2_NUMERIC and arr.dtype.kind not in "iuf":
            raise SignatureError(
                f"{field}.data must hold numbers for datatype {datatype}", field=f"{field}.data"
            )
        tensors[name] = arr.reshape(shape)
    return tensors


def _v2_feature_columns(
    tensors: dict[str, np.ndarray], signature: Signature
) -> Mapping[str, np.ndarray]:
    """One [n] tensor per signature input → the model's columns, coerced to its dtypes."""
    names = signature.names
    missing = [n for n in names if n not in tensors]
    unknown = [n for n in tensors if n not in set(names)]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing input(s) {', '.join(map(repr, missing))}")
        if unknown:
            parts.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
        raise SignatureError(
            "; ".join(parts) + f"; send one [n] tensor per feature or one [n, {len(names)}] tensor",
            field="inputs",
            missing=missing,
            unknown=unknown,
        )
    lengths = {tensors[n].shape[0] if tensors[n].ndim else 0 for n in names}
    if any(tensors[n].ndim != 1 for n in names):
        raise SignatureError("per-feature tensors must have shape [n]", field="inputs")
    if len(lengths) != 1:
        raise SignatureError("per-feature tensors have different lengths", field="inputs")
    if lengths == {0}:
        raise SignatureError("the batch is empty", field="inputs")
    return signature.complete(
        {
            c.name: signature.coerce_column(c.name, c.dtype, tensors[c.name])
            for c in signature.inputs
        }
    )


def _v2_type(arr: np.ndarray) -> str:
    kind = arr.dtype.kind
    if kind == "f":
        return "FP32" if arr.dtype.itemsize == 4 else "FP64"
    if kind in "iu":
        return f"{'U' if kind == 'u' else ''}INT{arr.dtype.itemsize * 8}"
    if kind == "b":
        return "BOOL"
    return "BYTES"


def v2_tensor(name: str, arr: np.ndarray) -> dict[str, Any]:
    return {
        "name": name,
        "shape": list(arr.shape),
        "datatype": _v2_type(arr),
        "data": arr.ravel().tolist(),
    }


def v2_metadata_inputs(signature: Signature) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "datatype": V2_DATATYPE.get(c.dtype, "BYTES"), "shape": [-1]}
        for c in signature.inputs
    ]


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY, default=_as_list)


def _as_list(value: Any) -> Any:
    """What orjson's numpy support leaves out: arrays of strings or objects (a classifier's
    string labels), numpy scalars of those kinds."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot answer a {type(value).__name__} in JSON")


class FeedbackItem(NamedTuple):
    """One piece of feedback for a logged prediction row: a late `label` (live accuracy),
    a business `outcome` (A/B tests), or both; what was not sent is None."""

    request_id: str
    row: int
    label: Any = None
    outcome: float | None = None


def parse_feedback(body: bytes, *, max_items: int = 10_000) -> list[FeedbackItem]:
    """Late labels and outcomes → [FeedbackItem]. Accepted bodies:

    {"request_id": "…", "label": 1}                      the first (or only) row's label
    {"request_id": "…", "outcome": 12.5}                 the request's business outcome
    {"request_id": "…", "label": 1, "outcome": 0}        both
    {"request_id": "…", "labels": [1, 0, 1]}             one label per row (+ "outcome")
    {"feedback": [{"request_id": "…", "row": 2, "label": 0}, …]}
    """
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise InvalidArgumentError("the body must be a JSON object", field="body")
    if "feedback" in doc:
        items = doc["feedback"]
        if not isinstance(items, list) or not items:
            raise InvalidArgumentError("'feedback' must be a non-empty list", field="feedback")
        if len(items) > max_items:
            raise InvalidArgumentError(f"at most {max_items} labels per request", field="feedback")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidArgumentError(
                    f"feedback[{i}] must be an object", field=f"feedback[{i}]"
                )
            out.append(_item(item, f"feedback[{i}]"))
        return out
    if "labels" in doc:
        request_id = _request_id(doc, "")
        labels = doc["labels"]
        if not isinstance(labels, list) or not labels or len(labels) > max_items:
            raise InvalidArgumentError(
                f"'labels' must be a list of 1 to {max_items} labels", field="labels"
            )
        outcome = _outcome(doc.get("outcome"), "outcome")
        return [
            FeedbackItem(request_id, i, _label(v, f"labels[{i}]"), outcome if i == 0 else None)
            for i, v in enumerate(labels)
        ]
    return [_item(doc, "")]


def _item(item: dict[str, Any], where: str) -> FeedbackItem:
    request_id, row = _request_id(item, where), _row(item, where)
    label, outcome = item.get("label", _MISSING), item.get("outcome")
    field = f"{where}.label" if where else "label"
    if label is _MISSING and outcome is None:
        raise InvalidArgumentError(f"'{field}' (or an 'outcome') is missing", field=field)
    return FeedbackItem(
        request_id,
        row,
        None if label is _MISSING else _label(label, field),
        _outcome(outcome, f"{where}.outcome" if where else "outcome"),
    )


def _outcome(value: Any, field: str) -> float | None:
    """A business outcome is a number (a bool counts as 0 or 1): A/B tests average them."""
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    raise InvalidArgumentError(f"'{field}' must be a finite number (or true/false)", field=field)


_MISSING = object()
MAX_ROW = 2**31 - 1  # the prediction log's row column is int32: no request has more rows


def _request_id(item: dict[str, Any], where: str) -> str:
    rid = item.get("request_id")
    field = f"{where}.request_id" if where else "request_id"
    if not isinstance(rid, str) or not rid or len(rid) > 200:
        raise InvalidArgumentError(
            f"'{field}' must be the request_id a prediction returned", field=field
        )
    return rid


def _row(item: dict[str, Any], where: str) -> int:
    row = item.get("row", 0)
    field = f"{where}.row" if where else "row"
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row <= MAX_ROW:
        raise InvalidArgumentError(
            f"'{field}' must be a row index (0, 1, … up to {MAX_ROW})", field=field
        )
    return row


def _label(value: Any, field: str) -> Any:
    if value is _MISSING:
        raise InvalidArgumentError(f"'{field}' is missing", field=field)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)) and value == value:  # NaN is no label
        return value
    raise InvalidArgumentError(f"'{field}' must be a number or a string", field=field)
