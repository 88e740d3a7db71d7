"""Request and response bodies: the plain JSON route and the Open Inference Protocol (V2).

Bodies are parsed with orjson; validation errors name the field at fault."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from shipyard.errors import InvalidArgumentError, SignatureError
from shipyard.flavors.signature import V2_DATATYPE
from shipyard.serving import binary

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


def parse_body(
    body: bytes | bytearray, header_length: str | None, max_rows: int | None = None
) -> Any:
    """A request's document: its JSON body, or, with the binary tensor data extension's
    `Inference-Header-Content-Length` header, the JSON header with each binary input's bytes
    as its `data` (`binary.attach`; a binary input over `max_rows` rows refused undecoded)."""
    if header_length is None:
        try:
            return parse_json(body)
        except InvalidArgumentError:
            _binary_without_header(body)
            raise
    n = binary.header_length(header_length, len(body))
    return binary.attach(parse_json(body[:n]), memoryview(body)[n:], max_rows)


def _binary_without_header(body: bytes | bytearray) -> None:
    """A body that is JSON and then bytes, sent without its header: the input at fault named,
    or, when the body is not even UTF-8, the header to send."""
    try:
        orjson.loads(body)
        return
    except orjson.JSONDecodeError as exc:
        end, utf8 = exc.pos, "UTF-8" not in str(exc)
    if utf8:
        try:
            doc = orjson.loads(body[:end])
        except orjson.JSONDecodeError:
            return
    else:  # orjson gives no position: Python's scanner finds a JSON header's end (latin-1
        # keeps every byte one character); a header is short, so only its first 64 kB
        try:
            doc = json.JSONDecoder().raw_decode(bytes(body[:65536]).decode("latin-1"))[0]
        except ValueError:
            doc = None
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    for i, tensor in enumerate(inputs if isinstance(inputs, list) else ()):
        if binary.binary_size(tensor, f"inputs[{i}]") is not None:
            raise InvalidArgumentError(
                f"inputs[{i}] has parameters.binary_data_size but the request has no "
                f"Inference-Header-Content-Length header saying where its JSON ends",
                field=f"inputs[{i}].parameters.binary_data_size",
            )
    if not utf8:
        raise InvalidArgumentError(
            "the body is not UTF-8 JSON: it looks binary; a binary tensor body (a JSON header "
            "then raw bytes) needs the Inference-Header-Content-Length header giving the JSON "
            "header's length in bytes",
            field="body",
        )


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


class V2Request(NamedTuple):
    columns: Mapping[str, np.ndarray]
    outputs: list[str]  # the requested outputs' names ([]: the default ones)
    request_id: str | None
    binary: frozenset[str]  # the outputs to answer as raw bytes (`binary.answer`)


def parse_v2(body: bytes | Any, signature: Signature) -> V2Request:
    """A V2 infer request → its columns, requested outputs, id and binary outputs.

    Either one tensor per feature column (named as the column, shape [n]) or one 2-D tensor of
    shape [n, n_features] in signature order. An output is answered as raw bytes when its
    `parameters.binary_data` says so, or else the request's `parameters.binary_data_output`."""
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
    binary_outputs = _binary_outputs(doc, outputs)
    if len(tensors) == 1 and next(iter(tensors.values())).ndim == 2:
        matrix = next(iter(tensors.values()))
        columns = signature.columns_from_matrix(matrix, field="inputs[0]")
    else:
        columns = _v2_feature_columns(tensors, signature)
    return V2Request(
        columns,
        [str(o["name"]) for o in outputs],
        str(request_id) if request_id else None,
        binary_outputs,
    )


def _binary_outputs(doc: dict[str, Any], outputs: list[dict[str, Any]]) -> frozenset[str]:
    params = doc.get("parameters")
    default = params.get("binary_data_output", False) if isinstance(params, dict) else False
    if not isinstance(default, bool):
        raise InvalidArgumentError(
            "parameters.binary_data_output must be true or false",
            field="parameters.binary_data_output",
        )
    if not outputs:
        return frozenset({"predict", "predict_proba"} if default else ())
    chosen, seen = set(), set()
    for i, output in enumerate(outputs):
        name = str(output["name"])
        if name in seen:
            raise InvalidArgumentError(
                f"output {name!r} is asked for twice", field=f"outputs[{i}].name"
            )
        seen.add(name)
        own = output.get("parameters")
        wanted = own.get("binary_data", default) if isinstance(own, dict) else default
        if not isinstance(wanted, bool):
            raise InvalidArgumentError(
                f"outputs[{i}].parameters.binary_data must be true or false",
                field=f"outputs[{i}].parameters.binary_data",
            )
        if wanted:
            chosen.add(name)
    return frozenset(chosen)


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
        if name in tensors:
            raise InvalidArgumentError(f"tensor '{name}' appears twice", field=f"{field}.name")
        if isinstance(data, binary.RawTensor):
            tensors[name] = binary.decode(data, datatype, shape, field)
            continue
        if not isinstance(data, list):
            raise InvalidArgumentError(f"{field}.data must be a list", field=f"{field}.data")
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


def v2_tensor(name: str, arr: np.ndarray, raw: bool = False) -> dict[str, Any]:
    """An output tensor; `raw`: its data left an array, for `binary.answer` to send as bytes."""
    return {
        "name": name,
        "shape": list(arr.shape),
        "datatype": _v2_type(arr),
        "data": arr if raw else arr.ravel().tolist(),
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
