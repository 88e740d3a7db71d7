"""More rows for the ONNX parity check than the input example's few: up to MAX_ROWS of the
`reference_data` given at registration (typically the training data), spread evenly over it,
stored with the version (an artifact the manifest names as `parity_rows`), and checked —
after the example's rows — by the conversion now (`onnx=True`) or in the background.

A converted tree ensemble differs from its library only on rows whose feature values fall
within float32 rounding of a threshold, so a handful of example rows says little; a thousand
rows of the training distribution is a real check. Without reference data only the example
is checked: perturbing it would test rows unlike any the model sees, and a row that differs
there would refuse a conversion that is right on real data (or pass one that is not).
Reference data that does not fit the signature (columns missing, values refused) is not used
for the check (its monitoring profile reports the problem)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from shipyard.errors import SignatureError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from shipyard.flavors.signature import Signature
    from shipyard.stores.artifacts import LocalArtifactStore

MAX_ROWS = 1000
KEY = "parity_rows"  # the manifest's key: the digest of the stored rows


def store(
    signature: Signature, data: Any, artifacts: LocalArtifactStore
) -> tuple[str, Mapping[str, np.ndarray]] | None:
    """(digest, columns) of up to MAX_ROWS rows of `data` stored for the parity check; None
    when there are none or they do not fit the signature."""
    import numpy as np

    from shipyard.flavors.signature import example_rows

    if data is None or signature.kind == "tensors" or not signature.all_numeric:
        return None
    n = len(data)
    if n == 0:
        return None
    picked = np.unique(np.linspace(0, n - 1, min(n, MAX_ROWS)).astype(np.int64))
    rows = data.iloc[picked] if hasattr(data, "iloc") else np.asarray(data)[picked]
    try:
        signature.check_frame(rows)
        doc = example_rows(rows, n=MAX_ROWS)
        columns = signature.example_columns(doc)
    except (SignatureError, ValueError, TypeError):
        return None
    return artifacts.put_bytes(json.dumps(doc).encode())[0], columns


def load(
    signature: Signature, manifest: Mapping[str, Any], artifacts: LocalArtifactStore
) -> Mapping[str, np.ndarray] | None:
    """The stored rows of a saved model (None: it has none)."""
    digest = manifest.get(KEY)
    if not digest:
        return None
    return signature.example_columns(json.loads(artifacts.get_bytes(str(digest))))


def joined(
    example: Mapping[str, np.ndarray], extra: Mapping[str, np.ndarray] | None
) -> Mapping[str, np.ndarray]:
    """The example's columns followed by the extra rows'."""
    import numpy as np

    if extra is None:
        return example
    return {name: np.concatenate([example[name], extra[name]]) for name in example}
