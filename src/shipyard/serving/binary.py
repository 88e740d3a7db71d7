"""The Open Inference Protocol's binary tensor data extension over HTTP: a body that is a JSON
header of `Inference-Header-Content-Length` bytes followed by raw tensor bytes, one run per
input that says `parameters.binary_data_size`, in the order of `inputs`; and an answer whose
outputs asked for `binary_data` (or the request for `binary_data_output`) sent the same way.

    doc = attach(orjson.loads(body[:n]), memoryview(body)[n:])   # inputs' data: RawTensor
    arr = decode(doc["inputs"][0]["data"], "FP32", [2, 3], "inputs[0]")
    status, body, headers = answer(doc, {"predict"}, 200, [])

Numbers are little-endian in row-major order, BOOL one byte per element, BYTES each element
a 4-byte little-endian length and its bytes (Triton's and KServe's clients send these)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, SignatureError

if TYPE_CHECKING:
    import numpy as np

    from shipyard.serving.answers import Answer

HEADER = "inference-header-content-length"

# V2 datatype → numpy dtype of its little-endian bytes (BYTES is length-prefixed)
_DTYPES = {
    "BOOL": "|b1",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


class RawTensor:
    """One input's bytes from the binary part of a request, decoded once its shape and
    datatype have been checked (`decode`)."""

    __slots__ = ("data",)

    def __init__(self, data: memoryview) -> None:
        self.data = data


def header_length(value: str, body_size: int) -> int:
    """The JSON header's length from the `Inference-Header-Content-Length` header's value."""
    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 < n <= body_size:
        raise InvalidArgumentError(
            f"the Inference-Header-Content-Length header ({value!r}) must be a whole number "
            f"of bytes from 1 to the body's {body_size}",
            field=HEADER,
        )
    return n


def attach(doc: Any, rest: memoryview) -> Any:
    """`doc` (the parsed JSON header) with each binary input's bytes, cut from `rest`, as its
    `data`; the sizes must add up to exactly `rest`."""
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    offset = 0
    for i, tensor in enumerate(inputs if isinstance(inputs, list) else ()):
        size = binary_size(tensor, f"inputs[{i}]")
        if size is None:
            continue
        if "data" in tensor:
            raise InvalidArgumentError(
                f"inputs[{i}] has both 'data' and parameters.binary_data_size; send one",
                field=f"inputs[{i}].data",
            )
        if offset + size > len(rest):
            raise InvalidArgumentError(
                f"inputs[{i}].parameters.binary_data_size is {size} but only "
                f"{len(rest) - offset} bytes of binary data are left after the JSON header",
                field=f"inputs[{i}].parameters.binary_data_size",
            )
        tensor["data"] = RawTensor(rest[offset : offset + size])
        offset += size
    if offset != len(rest):
        raise InvalidArgumentError(
            f"the body has {len(rest)} bytes after the JSON header but the inputs' "
            f"binary_data_size add up to {offset}",
            field="inputs",
        )
    return doc


def binary_size(tensor: Any, field: str) -> int | None:
    """An input's `parameters.binary_data_size` (None: it has none)."""
    params = tensor.get("parameters") if isinstance(tensor, dict) else None
    if not isinstance(params, dict) or "binary_data_size" not in params:
        return None
    size = params["binary_data_size"]
    if type(size) is not int or size < 0:
        raise InvalidArgumentError(
            f"{field}.parameters.binary_data_size must be a whole number of bytes",
            field=f"{field}.parameters.binary_data_size",
        )
    return size


def decode(raw: RawTensor, datatype: str, shape: list[int], field: str) -> np.ndarray:
    """An input's bytes as an array of `shape` (already checked: whole numbers ≥ 0)."""
    import numpy as np

    count = math.prod(shape)
    data = raw.data
    if datatype == "BYTES":
        return _decode_bytes(data, count, field).reshape(shape)
    dtype = np.dtype(_DTYPES[datatype])
    if len(data) != count * dtype.itemsize:
        raise SignatureError(
            f"{field}.parameters.binary_data_size is {len(data)} but shape {shape} of "
            f"{datatype} needs {count * dtype.itemsize} bytes",
            field=f"{field}.parameters.binary_data_size",
        )
    arr: np.ndarray
    if datatype == "BOOL":
        arr = np.frombuffer(data, dtype=np.uint8) != 0
    else:  # a copy in native byte order: the body's bytes are read-only
        arr = np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))
    return arr.reshape(shape)


def _decode_bytes(data: memoryview, count: int, field: str) -> np.ndarray:
    """BYTES elements, each a 4-byte little-endian length and its (UTF-8) bytes."""
    import numpy as np

    values: list[str] = []
    offset, size = 0, len(data)
    where = f"{field}.parameters.binary_data_size"
    while offset < size:
        if offset + 4 > size:
            raise SignatureError(f"{field}: a BYTES element's length is cut short", field=where)
        n = int.from_bytes(data[offset : offset + 4], "little")
        offset += 4
        if offset + n > size:
            raise SignatureError(
                f"{field}: a BYTES element of {n} bytes runs past binary_data_size", field=where
            )
        try:
            values.append(str(data[offset : offset + n], "utf-8"))
        except UnicodeDecodeError as exc:
            raise SignatureError(
                f"{field}: BYTES element {len(values)} is not UTF-8 text", field=f"{field}.data"
            ) from exc
        offset += n
    if len(values) != count:
        raise SignatureError(
            f"{field} holds {len(values)} BYTES elements but its shape needs {count}",
            field=where,
        )
    out = np.empty(count, dtype=object)
    out[:] = values
    return out


def encode(arr: np.ndarray, datatype: str) -> bytes:
    """An output array as the extension's bytes for `datatype` (`protocol.v2_tensor`'s)."""
    import numpy as np

    if datatype == "BYTES":
        parts: list[bytes] = []
        for value in arr.ravel().tolist():
            item = value if isinstance(value, bytes) else str(value).encode()
            parts += (len(item).to_bytes(4, "little"), item)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=np.dtype(_DTYPES[datatype])).tobytes()


def answer(doc: dict[str, Any], binary: frozenset[str], status: int, headers: Any) -> Answer:
    """A V2 answer whose outputs named in `binary` leave as raw bytes after the JSON header
    (`parameters.binary_data_size` says how many), the header's length in
    `Inference-Header-Content-Length`."""
    from shipyard.serving import protocol

    blobs = []
    for tensor in doc["outputs"]:
        if tensor["name"] in binary:
            blob = encode(tensor.pop("data"), tensor["datatype"])
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
    head = protocol.dumps(doc)
    body = b"".join((head, *blobs))
    return (
        status,
        body,
        [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(len(body)).encode()),
            (HEADER.encode(), str(len(head)).encode()),
            *headers,
        ],
    )
