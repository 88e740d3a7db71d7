"""What an optimization gained and lost, measured on this machine: the metrics quality gates
use on held-out data, p50 latency of one-row predictions, and the size of the served file.

Old and new are measured on the same runtime (both ONNX for a quantization, both the
framework's own for pruning and distillation), in the same process, one after the other.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shipyard.flavors import LoadedModel
    from shipyard.stores.artifacts import LocalArtifactStore

LATENCY_CALLS = 200  # one-row predictions timed per model (after WARM_UP calls)
WARM_UP = 20
LATENCY_ROWS = 50  # distinct held-out rows cycled through
NOT_FILES = frozenset({"requirements.txt"})  # written with every model, not the model itself


def metrics(model: LoadedModel, X: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    """The metrics gates compare (`pipelines.gates.evaluate`)."""
    from shipyard.pipelines.gates import evaluate

    return evaluate(model, X, y)


def headline(found: dict[str, float], classifier: bool) -> list[str]:
    """The metrics a version's report leads with: accuracy and ROC AUC for a classifier,
    RMSE and R² for a regressor."""
    keys = ("accuracy", "roc_auc") if classifier else ("rmse", "r2")
    return [k for k in keys if k in found]


def deltas(old: dict[str, float], new: dict[str, float], keys: list[str]) -> dict[str, float]:
    """new - old per metric (for rmse a positive delta is worse; for the others, better)."""
    return {k: new[k] - old[k] for k in keys if k in old and k in new}


def p50_ms_per_row(model: LoadedModel, X: pd.DataFrame) -> float:
    """Median time of a one-row `predict` over LATENCY_CALLS calls, in milliseconds."""
    import numpy as np

    singles = [X.iloc[[i]] for i in range(min(LATENCY_ROWS, len(X)))]
    for i in range(WARM_UP):
        model.predict(singles[i % len(singles)])
    times = np.empty(LATENCY_CALLS)
    for i in range(LATENCY_CALLS):
        row = singles[i % len(singles)]
        start = time.perf_counter_ns()
        model.predict(row)
        times[i] = time.perf_counter_ns() - start
    return float(np.percentile(times, 50) / 1e6)


def served_size(
    artifacts: LocalArtifactStore, manifest: dict[str, Any], *, onnx_digest: str | None
) -> int:
    """Bytes of the file(s) that answer: the ONNX file when `onnx_digest` names it, else the
    model's own files (its lock of package versions left out)."""
    if onnx_digest is not None:
        return _size(artifacts, onnx_digest)
    files: dict[str, str] = manifest["files"]
    return sum(_size(artifacts, d) for name, d in files.items() if name not in NOT_FILES)


def _size(artifacts: LocalArtifactStore, digest: str) -> int:
    return artifacts.local_path(digest).stat().st_size
