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
import struct
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, SignatureError

if TYPE_CHECKING:
    import numpy as np

    from shipyard.serving.answers import Answer

HEADER = "inference-header-content-length"
MAX_DIMENSION = 2**31 - 1  # a tensor's dimension; larger ones fail in numpy, even when empty

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


def header_value(headers: Any) -> str | None:
    """The `Inference-Header-Content-Length` header's one value (None: not sent); sent more
    than once with different values, refused."""
    values = headers.getlist(HEADER) if hasattr(headers, "getlist") else None
    if values and len(set(values)) > 1:
        raise InvalidArgumentError(
            f"the Inference-Header-Content-Length header was sent {len(values)} times with "
            f"different values ({', '.join(map(repr, values))}); send it once",
            field=HEADER,
        )
    value: str | None = values[0] if values else headers.get(HEADER)
    return value


def header_length(value: str, body_size: int) -> int:
    """The JSON header's length from the `Inference-Header-Content-Length` header's value:
    ASCII digits only (no sign, spaces or underscores)."""
    n = int(value) if value.isascii() and value.isdigit() and len(value) <= 20 else -1
    if not 0 < n <= body_size:
        raise InvalidArgumentError(
            f"the Inference-Header-Content-Length header ({value!r}) must be a whole number "
            f"of bytes from 1 to the body's {body_size}",
            field=HEADER,
        )
    return n


def attach(doc: Any, rest: memoryview, max_rows: int | None = None) -> Any:
    """`doc` (the parsed JSON header) with each binary input's bytes, cut from `rest`, as its
    `data`; the sizes must add up to exactly `rest`. A binary input whose shape declares more
    than `max_rows` rows is refused here, before its bytes are decoded."""
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    offset = 0
    for i, tensor in enumerate(inputs if isinstance(inputs, list) else ()):
        size = binary_size(tensor, f"inputs[{i}]")
        if size is None:
            continue
        if max_rows is not None:
            _check_rows(tensor.get("shape"), max_rows, f"inputs[{i}]")
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


def _check_rows(shape: Any, max_rows: int, field: str) -> None:
    rows = shape[0] if isinstance(shape, list) and shape else None
    if type(rows) is int and rows > max_rows:
        raise SignatureError(
            f"{field}.shape declares {rows} rows; the limit is {max_rows} per request",
            field=f"{field}.shape",
            limit=max_rows,
        )


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

    big = next((d for d in shape if d > MAX_DIMENSION), None)
    if big is not None:
        raise InvalidArgumentError(
            f"{field}.shape {shape} has a dimension of {big}; each must be at most {MAX_DIMENSION}",
            field=f"{field}.shape",
        )
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
    """BYTES elements, each a 4-byte little-endian length and its (UTF-8) bytes. The shape's
    `count` bounds the work: at most `count` elements are read, and a body too short to hold
    them (4 bytes each at least) is refused before any is."""
    import numpy as np

    where = f"{field}.parameters.binary_data_size"
    size = len(data)
    if size < 4 * count or (count == 0 and size):
        raise SignatureError(
            f"{field}: binary_data_size is {size} but its shape's {count} BYTES elements need "
            + (f"at least {4 * count} bytes (a 4-byte length each)" if count else "0 bytes"),
            field=where,
        )
    buf = bytes(data)
    values = _uniform_bytes(buf, count, field)
    if values is None:
        values = _scan_bytes(buf, count, field)
    out = np.empty(count, dtype=object)
    out[:] = values
    return out


def _uniform_bytes(buf: bytes, count: int, field: str) -> list[str] | None:
    """The elements when all have one length (checked with numpy, no per-element loop);
    None when they do not."""
    import numpy as np

    if not count:
        return []
    width = int.from_bytes(buf[:4], "little")
    if len(buf) != count * (4 + width):
        return None
    rows = np.frombuffer(buf, dtype=np.uint8).reshape(count, 4 + width)
    if not (rows[:, :4] == rows[0, :4]).all():
        return None
    if not width:
        return [""] * count
    text = rows[:, 4:].tobytes()
    if text.isascii():  # one decode; ASCII characters are bytes, so slices line up
        whole = text.decode("ascii")
        return [whole[i : i + width] for i in range(0, len(whole), width)]
    return _utf8([text[i : i + width] for i in range(0, len(text), width)], field)


def _scan_bytes(buf: bytes, count: int, field: str) -> list[str]:
    """The elements read one after another, stopping after `count`: the rest refused. Each is
    cut from the body decoded once as latin-1 (a character a byte), then, unless all are
    ASCII, decoded again as UTF-8."""
    where = f"{field}.parameters.binary_data_size"
    unpack, size, text = struct.Struct("<I").unpack_from, len(buf), buf.decode("latin-1")
    values: list[str] = []
    add, offset = values.append, 0
    for _ in range(count):
        if offset + 4 > size:
            raise SignatureError(f"{field}: a BYTES element's length is cut short", field=where)
        (n,) = unpack(buf, offset)
        end = offset + 4 + n
        if end > size:
            raise SignatureError(
                f"{field}: a BYTES element of {n} bytes runs past binary_data_size", field=where
            )
        add(text[offset + 4 : end])
        offset = end
    if offset != size:
        raise SignatureError(
            f"{field} holds more BYTES elements than the {count} its shape needs "
            f"({size - offset} bytes left after them)",
            field=where,
        )
    if "".join(values).isascii():
        return values
    return _utf8([value.encode("latin-1") for value in values], field)


def _utf8(parts: list[bytes], field: str) -> list[str]:
    try:
        return [str(part, "utf-8") for part in parts]
    except UnicodeDecodeError:
        bad = next(i for i, part in enumerate(parts) if not _is_utf8(part))
        raise SignatureError(
            f"{field}: BYTES element {bad} is not UTF-8 text", field=f"{field}.data"
        ) from None


def _is_utf8(part: bytes) -> bool:
    try:
        part.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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
