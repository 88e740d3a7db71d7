"""Step outputs as bytes, so they can be stored content-addressed and cached.

DataFrames go to Parquet, arrays to `.npy` (no pickle), JSON-able values to sorted JSON and
everything else (fitted models, …) to pickle. A pickled output is unpickled only when its
record carries a MAC of its digest under the local signing key (`stores.secrets`): bytes that
this installation wrote itself, never ones that someone with write access to the shared
metadata database or artifact store put there. An unsealed cache entry is recomputed.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.errors import UntrustedModelError
from shipyard.stores.secrets import sign, verify

if TYPE_CHECKING:
    from shipyard.stores.artifacts import LocalArtifactStore

KINDS = ("pandas", "numpy", "json", "pickle")


def dumps(value: Any) -> tuple[str, bytes]:
    """(kind, bytes) for a step output."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        buf = io.BytesIO()
        frame = value if all(isinstance(c, str) for c in value.columns) else _str_columns(value)
        frame.to_parquet(buf, index=True, compression="zstd")
        return "pandas", buf.getvalue()
    if isinstance(value, np.ndarray) and value.dtype != object:
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return "numpy", buf.getvalue()
    if is_plain_json(value):
        return "json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    try:
        return "pickle", pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        import cloudpickle  # functions and lambdas; ships with ray

        return "pickle", cloudpickle.dumps(value, protocol=5)


def seal(output: dict[str, str], key: bytes) -> dict[str, str]:
    """The output's record, with a MAC of its digest when it is a pickle."""
    if output["kind"] == "pickle":
        return {**output, "mac": sign(key, output["digest"].encode())}
    return output


def is_sealed(output: dict[str, str], key: bytes) -> bool:
    return output["kind"] != "pickle" or verify(key, output["digest"].encode(), output.get("mac"))


def load_output(artifacts: LocalArtifactStore, output: dict[str, str], key: bytes) -> Any:
    """A stored step output's value; a pickle only when sealed with `key`."""
    if not is_sealed(output, key):
        raise UntrustedModelError(
            f"the pickled step output {output['digest'][:12]} was not written by this "
            "installation (no valid signature); rerun the step, or share SHIPYARD_SECRET_KEY "
            "between the machines that share a pipeline cache"
        )
    return loads(output["kind"], artifacts.get_bytes(output["digest"]))


def loads(kind: str, data: bytes) -> Any:
    import numpy as np
    import pandas as pd

    if kind == "pandas":
        return pd.read_parquet(io.BytesIO(data))
    if kind == "numpy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "json":
        return orjson.loads(data)
    if kind == "pickle":
        return pickle.loads(data)
    raise ValueError(f"unknown output kind {kind!r}")


def digest_of_value(value: Any) -> str:
    """A stable content hash of a constant step argument (part of the cache key)."""
    kind, data = dumps(value)
    return hashlib.sha256(kind.encode() + b"\0" + data).hexdigest()


def is_plain_json(value: Any, depth: int = 0) -> bool:
    """Whether `value` is JSON as it is (None, bool, int, str, finite float, and lists and
    str-keyed dicts of those, at most 20 deep)."""
    if depth > 20:
        return False
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, list):
        return all(is_plain_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain_json(v, depth + 1) for k, v in value.items())
    return False


def _str_columns(frame: Any) -> Any:
    out = frame.copy(deep=False)
    out.columns = [str(c) for c in frame.columns]
    return out
