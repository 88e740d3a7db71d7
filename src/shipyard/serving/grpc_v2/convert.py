"""The V2 gRPC messages ↔ the body and answer the data plane reads and writes over HTTP.

A `ModelInferRequest` becomes the body of the binary tensor data extension: a JSON header
naming the inputs (their shape, datatype and parameters), each `raw_input_contents` entry as
that input's `binary_data_size` bytes after it, and each typed `contents` as the input's JSON
`data`; the outputs are asked for as raw bytes. The data plane then checks and answers it as
it does an HTTP request, with the same messages; its answer comes back as a
`ModelInferResponse` whose outputs are `raw_output_contents`.

    body, header_length = infer_body(request)     # the HTTP body and its JSON header's length
    response = infer_response(status, body, headers)   # the data plane's answer, 200 only
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.errors import InvalidArgumentError
from shipyard.serving import binary

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.serving.grpc_v2.proto import pb

# the typed field of `InferTensorContents` that holds each datatype (FP16: raw bytes only)
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

# datatypes whose typed field holds exactly their type: sent on as bytes, nothing to narrow
_EXACT = {
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP32": "<f4",
    "FP64": "<f8",
}


def _count(shape: Any) -> int:
    """The number of values a valid shape ([n] or [n, k] of whole numbers) needs; -1 else."""
    if not 1 <= len(shape) <= 2 or any(d < 0 for d in shape):
        return -1
    return math.prod(shape)


def parameters(params: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A protobuf parameters map as the JSON object the HTTP body carries."""
    out: dict[str, Any] = {}
    for key, param in params.items():
        choice = param.WhichOneof("parameter_choice")
        if choice is not None:
            out[key] = getattr(param, choice)
    return out


def infer_body(request: pb.ModelInferRequest) -> tuple[bytes, int]:
    """The V2 body (binary tensor data extension) of `request` and its JSON header's length."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgumentError(
            f"raw_input_contents has {len(raw)} entries but inputs has {len(request.inputs)}; "
            "send one per input, in the order of inputs",
            field="raw_input_contents",
        )
    inputs = []
    blobs: list[bytes] = list(raw)
    for i, tensor in enumerate(request.inputs):
        doc: dict[str, Any] = {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
        }
        params = parameters(tensor.parameters)
        params.pop("binary_data_size", None)  # the size is the bytes' own
        if raw:
            if tensor.HasField("contents"):
                raise InvalidArgumentError(
                    f"inputs[{i}] has contents and the request has raw_input_contents; "
                    "send one of the two",
                    field=f"inputs[{i}].contents",
                )
            params["binary_data_size"] = len(raw[i])
        else:
            data = _contents(tensor, f"inputs[{i}]")
            if isinstance(data, bytes):
                params["binary_data_size"] = len(data)
                blobs.append(data)
            else:
                doc["data"] = data
        if params:
            doc["parameters"] = params
        inputs.append(doc)
    head: dict[str, Any] = {"inputs": inputs}
    if request.id:
        head["id"] = request.id
    head["parameters"] = {**parameters(request.parameters), "binary_data_output": True}
    if request.outputs:  # every output asked for as raw bytes: raw_output_contents
        head["outputs"] = [
            {
                "name": out.name,
                "parameters": {**parameters(out.parameters), "binary_data": True},
            }
            for out in request.outputs
        ]
    text = orjson.dumps(head)
    return b"".join((text, *blobs)), len(text)


def _contents(tensor: pb.ModelInferRequest.InferInputTensor, field: str) -> list[Any] | bytes:
    """An input's typed `contents` (the field of its datatype) as a JSON data list, or, for a
    field of exactly the datatype's type holding as many values as the shape needs, as its
    little-endian bytes (no list of Python numbers on the way; any other case takes the JSON
    way, whose checks name what is wrong)."""
    name = CONTENTS_FIELD.get(tensor.datatype)
    filled = [f.name for f, _ in tensor.contents.ListFields()]
    if name is None or (filled and filled != [name]):
        wanted = f"'{name}'" if name else "raw_input_contents (no typed field holds it)"
        raise InvalidArgumentError(
            f"{field}.contents: datatype {tensor.datatype!r} takes {wanted}, "
            f"not {', '.join(filled) or 'nothing'}",
            field=f"{field}.contents",
        )
    typed = getattr(tensor.contents, name)
    exact = _EXACT.get(tensor.datatype)
    if exact is not None and len(typed) == _count(tensor.shape):
        import numpy as np

        return np.asarray(typed, dtype=exact).tobytes()
    values = list(typed)
    if name == "bytes_contents":
        try:
            return [v.decode("utf-8") for v in values]
        except UnicodeDecodeError as exc:
            raise InvalidArgumentError(
                f"{field}.contents.bytes_contents holds bytes that are not UTF-8 text",
                field=f"{field}.contents",
            ) from exc
    return values


def infer_response(body: bytes, headers: Mapping[bytes, bytes]) -> pb.ModelInferResponse:
    """The data plane's answer to an infer request (status 200) as a `ModelInferResponse`:
    the outputs' bytes in `raw_output_contents`, the issued request id in `parameters`."""
    from shipyard.serving.grpc_v2.proto import pb

    length = headers.get(binary.HEADER.encode())
    n = int(length) if length is not None else len(body)
    doc = orjson.loads(body[:n])
    response = pb.ModelInferResponse(
        model_name=doc.get("model_name", ""),
        model_version=doc.get("model_version", ""),
        id=doc.get("id", ""),
    )
    for key, value in (doc.get("parameters") or {}).items():
        _set_parameter(response.parameters[key], value)
    variant = headers.get(b"x-model-variant")
    if variant is not None:
        response.parameters["variant"].string_param = variant.decode("latin-1")
    offset = n
    for tensor in doc["outputs"]:
        out = response.outputs.add(
            name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
        )
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is None:  # not raw: cannot happen for an answer asked for as raw bytes
            out.contents.CopyFrom(_typed(tensor["datatype"], tensor["data"]))
            continue
        response.raw_output_contents.append(body[offset : offset + size])
        offset += size
    return response


def _typed(datatype: str, data: list[Any]) -> pb.InferTensorContents:
    from shipyard.serving.grpc_v2.proto import pb

    contents = pb.InferTensorContents()
    field = CONTENTS_FIELD.get(datatype, "bytes_contents")
    values = [str(v).encode() for v in data] if field == "bytes_contents" else data
    getattr(contents, field).extend(values)
    return contents


def _set_parameter(param: pb.InferParameter, value: Any) -> None:
    if isinstance(value, bool):
        param.bool_param = value
    elif isinstance(value, int):
        param.int64_param = value
    else:
        param.string_param = str(value)
