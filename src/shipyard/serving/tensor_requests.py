"""Request bodies of models with a tensor signature (flavors/tensors.py): the same two routes
as `protocol` reads for column models, with N-d tensors of any rank.

    {"instances": [row, row, …]}                 a one-input model: each row its tensor
    {"instances": [{"x": row, "m": row}, …]}     every input of each row by name
    {"inputs": {"x": [[…], …], "m": …}}           each input's batch, nested lists
    {"inputs": [[…], …]}                         a one-input model: the batch itself
    V2: {"inputs": [{"name": "x", "shape": [2, 3, 8, 8], "datatype": "FP32", "data": […]}]}

A V2 tensor's datatype must be its input's; its data flat or nested, or raw bytes (the binary
tensor data extension). `ServedModel.wire` picks this module or `protocol` once, when a model
is loaded: a column model's request never passes here."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, SignatureError
from shipyard.serving import binary
from shipyard.serving.protocol import (
    _V2_DATATYPES,
    _V2_NUMERIC,
    V2Request,
    _binary_outputs,
    parse_json,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from shipyard.flavors.signature import Signature

_PREDICT_FIELDS = frozenset({"instances", "inputs", "probabilities", "id", "key"})


def parse_predict(body: bytes | Any, signature: Signature) -> tuple[Mapping[str, np.ndarray], bool]:
    """The plain route's body → (tensors by input name, want probabilities)."""
    doc = parse_json(body) if isinstance(body, (bytes, bytearray)) else body
    if not isinstance(doc, dict):
        raise InvalidArgumentError(
            "the body must be a JSON object with 'instances' or 'inputs'", field="body"
        )
    unknown = doc.keys() - _PREDICT_FIELDS
    if unknown:
        raise InvalidArgumentError(
            f"unknown field(s) {', '.join(sorted(map(repr, unknown)))}; "
            "allowed: instances, inputs, probabilities, id, key",
            field=sorted(unknown)[0],
        )
    if ("instances" in doc) == ("inputs" in doc):
        raise InvalidArgumentError(
            "send 'instances' (a list of rows) or 'inputs' (tensors by input name), one of them",
            field="inputs" if "inputs" in doc else "instances",
        )
    proba = doc.get("probabilities", False)
    if not isinstance(proba, bool):
        raise InvalidArgumentError("'probabilities' must be true or false", field="probabilities")
    sig: Any = signature  # a TensorSignature
    if "instances" in doc:
        return sig.columns_from_records(doc["instances"]), proba
    return sig.columns_from_inputs(doc["inputs"]), proba


def parse_v2(body: bytes | Any, signature: Signature) -> V2Request:
    """A V2 infer request → its tensors (checked against the signature), requested outputs,
    id and binary outputs."""
    doc = parse_json(body) if isinstance(body, (bytes, bytearray)) else body
    if not isinstance(doc, dict):
        raise InvalidArgumentError("the body must be a JSON object with 'inputs'", field="body")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidArgumentError("'inputs' must be a non-empty list of tensors", field="inputs")
    sent: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for i, tensor in enumerate(inputs):
        name, datatype, arr = _v2_tensor(tensor, f"inputs[{i}]")
        if name in sent:
            raise InvalidArgumentError(f"tensor '{name}' appears twice", field=f"inputs[{i}].name")
        sent[name], datatypes[name] = arr, datatype
    outputs = doc.get("outputs") or []
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and "name" in o for o in outputs
    ):
        raise InvalidArgumentError("'outputs' must be a list of {\"name\": …}", field="outputs")
    request_id = doc.get("id")
    binary_outputs = _binary_outputs(doc, outputs)
    columns = signature.check_tensors(sent, datatypes)  # type: ignore[attr-defined]
    return V2Request(
        columns,
        [str(o["name"]) for o in outputs],
        str(request_id) if request_id else None,
        binary_outputs,
    )


def _v2_tensor(tensor: Any, field: str) -> tuple[str, str, np.ndarray]:
    """One V2 input tensor → (name, datatype, array of its declared shape, any rank)."""
    import numpy as np

    if not isinstance(tensor, dict):
        raise InvalidArgumentError(f"{field} must be an object", field=field)
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            raise InvalidArgumentError(f"{field} has no '{key}'", field=f"{field}.{key}")
    name, shape, datatype, data = (tensor[k] for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str):
        raise InvalidArgumentError(f"{field}.name must be a string", field=f"{field}.name")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise InvalidArgumentError(
            f"{field}.shape must be a list of whole numbers, the batch first",
            field=f"{field}.shape",
        )
    if datatype not in _V2_DATATYPES:
        raise InvalidArgumentError(
            f"{field}.datatype {datatype!r} is not a V2 datatype", field=f"{field}.datatype"
        )
    if isinstance(data, binary.RawTensor):
        return name, datatype, binary.decode(data, datatype, shape, field)
    if not isinstance(data, list):
        raise InvalidArgumentError(f"{field}.data must be a list", field=f"{field}.data")
    try:
        arr = np.asarray(data, dtype=object if datatype == "BYTES" else None)
    except ValueError as exc:
        raise SignatureError(f"{field}.data is ragged", field=f"{field}.data") from exc
    expected = math.prod(shape)
    if arr.size != expected:
        raise SignatureError(
            f"{field}.data has {arr.size} values but shape {shape} needs {expected}",
            field=f"{field}.data",
            expected=shape,
            received=list(arr.shape),
        )
    if datatype in _V2_NUMERIC and arr.dtype.kind not in "iuf":
        raise SignatureError(
            f"{field}.data must hold numbers for datatype {datatype}", field=f"{field}.data"
        )
    if datatype == "BOOL" and arr.dtype.kind != "b":
        raise SignatureError(
            f"{field}.data must hold true/false for datatype BOOL", field=f"{field}.data"
        )
    return name, datatype, arr.reshape(shape)


def v2_metadata_inputs(signature: Signature) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "datatype": c.datatype, "shape": list(c.shape)}  # type: ignore[attr-defined]
        for c in signature.inputs
    ]
