"""The binary tensor data extension's bytes: every V2 datatype there and back, and the
malformed BYTES runs a caller can send (errors naming the input)."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.errors import ShipyardError
from shipyard.serving import binary


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("BOOL", np.array([[True, False], [False, True]])),
        ("UINT8", np.array([[0, 255], [7, 8]], dtype=np.uint8)),
        ("INT16", np.array([[-3, 2], [1, 0]], dtype=np.int16)),
        ("UINT64", np.array([[2**64 - 1, 0], [1, 2]], dtype=np.uint64)),
        ("INT64", np.array([[-(2**63), 5], [6, 7]], dtype=np.int64)),
        ("FP16", np.array([[0.5, -1.25], [3.0, 4.0]], dtype=np.float16)),
        ("FP32", np.array([[0.1, 2.5], [-3.0, 1e30]], dtype=np.float32)),
        ("FP64", np.array([[0.1, 2.5], [-3.0, 1e300]])),
        ("BYTES", np.array([["a", ""], ["dé", "long text " * 20]], dtype=object)),
    ],
)
def test_every_datatype_round_trips(datatype: str, values: np.ndarray) -> None:
    raw = binary.encode(values, datatype)
    if datatype != "BYTES":  # little-endian, row-major, as Triton's clients send
        assert raw == values.astype(values.dtype.newbyteorder("<")).tobytes()
    got = binary.decode(binary.RawTensor(memoryview(raw)), datatype, [2, 2], "inputs[3]")
    assert got.shape == (2, 2)
    assert got.tolist() == values.tolist()


@pytest.mark.parametrize(
    ("raw", "count", "message"),
    [
        (b"\x01\x00", 1, "1 BYTES elements need at least 4 bytes"),
        (b"\x09\x00\x00\x00abc", 1, "runs past"),
        (b"\x02\x00\x00\x00\xff\xfe", 1, "not UTF-8"),
        (b"\x01\x00\x00\x00a", 2, "2 BYTES elements need at least 8 bytes"),
        (b"", 1, "1 BYTES elements need at least 4 bytes"),
    ],
)
def test_malformed_bytes_elements_name_the_input(raw: bytes, count: int, message: str) -> None:
    with pytest.raises(ShipyardError, match=message) as err:
        binary.decode(binary.RawTensor(memoryview(raw)), "BYTES", [count], "inputs[3]")
    assert err.value.http_status < 500
    assert err.value.details["field"].startswith("inputs[3]")
