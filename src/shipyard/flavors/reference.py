"""The model's own answers on its input example, recorded at log time and compared at load
time when the environment differs from the lock.

Another version of a framework (XGBoost 2 reading a model saved by XGBoost 3, a scikit-learn
minor release) can load a model and answer differently without any error. `log_model` stores
the saved model's outputs on the first ROWS rows of the stored example (`example_outputs` in
the manifest: a few numbers). When `load_model`'s environment check finds any difference, the
loaded model is run on those rows and compared: labels must be equal and numbers within
ATOL + RTOL·|x|. A mismatch refuses to load (ModelLoadError naming the largest difference);
under `ignore_env=True` it is a loud EnvironmentWarning instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from shipyard.errors import ModelLoadError

ROWS = 20
ATOL = 1e-6
RTOL = 1e-5
# the frameworks whose own runtime is compared (a Python model's code, or pickle, is the
# user's: not compared)
COMPARED = ("xgboost", "lightgbm", "sklearn")


def record(
    predictor: Any, signature: Any, example: Mapping[str, Any], has_proba: bool
) -> dict[str, Any]:
    """The outputs to store: `predict` (and `proba`) on the example's first ROWS rows."""
    import numpy as np

    columns = signature.example_columns(example)
    predicted = np.asarray(predictor.predict_columns(columns))[:ROWS]
    out: dict[str, Any] = {"rows": len(predicted), "predict": predicted.tolist()}
    if has_proba:
        proba = predictor.predict_proba_columns(columns)
        if proba is not None:
            out["proba"] = np.asarray(proba)[:ROWS].tolist()
    return out


def compare(
    predictor: Any,
    signature: Any,
    manifest: Mapping[str, Any],
    differences: list[Any],
    *,
    ignore_env: bool,
    what: str,
) -> None:
    """Refuse (or, under `ignore_env`, warn) when the loaded model's outputs on the example
    are not the ones recorded at log time."""
    stored = manifest.get("example_outputs")
    if not stored or not differences:
        return
    got = record(predictor, signature, manifest["input_example"], "proba" in stored)
    problem = _difference(stored, got)
    if problem is None:
        return
    changed = "; ".join(str(d) for d in differences)
    message = (
        f"{what} answers differently here than when it was logged: on its {stored['rows']} "
        f"example rows {problem}. This environment differs from its lock ({changed}); make its "
        "environment: shipyard models env MODEL_URI --venv DIR"
    )
    if not ignore_env:
        raise ModelLoadError(message)
    from shipyard.flavors.environment import EnvironmentWarning

    warnings.warn(
        f"PREDICTIONS ARE WRONG: {message} (loaded anyway: ignore_env)",
        EnvironmentWarning,
        stacklevel=3,
    )


def _difference(stored: Mapping[str, Any], got: Mapping[str, Any]) -> str | None:
    import numpy as np

    parts = []
    for key, what in (("predict", "predictions"), ("proba", "probabilities")):
        if key not in stored:
            continue
        a, b = np.asarray(stored[key]), np.asarray(got.get(key))
        if a.shape != b.shape:
            parts.append(f"{what} have shape {list(b.shape)}, not {list(a.shape)}")
        elif a.dtype.kind in "fiu" and b.dtype.kind in "fiub":
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            if not np.all(diff <= ATOL + RTOL * np.abs(a)):
                parts.append(f"{what} differ by up to {float(np.max(diff)):.3g}")
        elif not np.array_equal(a, b):
            parts.append(f"{what} differ in {int(np.sum(a != b))} row(s)")
    return "; ".join(parts) or None
