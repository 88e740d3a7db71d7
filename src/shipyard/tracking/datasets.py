"""Dataset fingerprints: a content hash, the schema, the row count and a compact per-column
profile — the mergeable sketches of shipyard.sketches, which drift monitoring compares live
traffic against.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError
from shipyard.stores.records import DatasetRecord

if TYPE_CHECKING:
    import pandas as pd


def as_frame(data: Any) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise InvalidArgumentError(f"a dataset must be 2-D, got shape {list(arr.shape)}")
    return pd.DataFrame(arr, columns=[f"f{i}" for i in range(arr.shape[1])])


def content_digest(df: pd.DataFrame) -> str:
    """sha256 over the schema and every value (row order matters, the index does not)."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(json.dumps(schema_of(df), sort_keys=True).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def schema_of(df: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(dt) for c, dt in df.dtypes.items()}


def profile(df: pd.DataFrame) -> dict[str, Any]:
    """The mergeable column sketches of `df` (see shipyard.sketches): the drift reference."""
    from shipyard.sketches import Profile

    return Profile.from_frame(df).to_dict()


def fingerprint(data: Any, *, name: str, role: str = "train") -> DatasetRecord:
    if not name:
        raise InvalidArgumentError("a dataset needs a name", field="name")
    df = as_frame(data)
    return DatasetRecord(
        digest=content_digest(df),
        name=name,
        schema=schema_of(df),
        rows=len(df),
        profile=profile(df),
        role=role,
    )


ROWS_FOLDER = "datasets"  # run artifacts `datasets/<role>/<name>.parquet`: rows kept on request


def rows_path(role: str, name: str) -> str:
    """Where `log_dataset(..., keep_rows=True)` keeps a dataset's rows among the run's artifacts."""
    return f"{ROWS_FOLDER}/{role}/{name}.parquet"


def parse_rows_path(path: str) -> tuple[str, str] | None:
    """(role, name) of a kept dataset's artifact path, or None for any other artifact."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != ROWS_FOLDER or not parts[2].endswith(".parquet"):
        return None
    return parts[1], parts[2][: -len(".parquet")]
