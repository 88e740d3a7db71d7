"""ONNX conversion of gradient-boosted trees (onnxmltools), checked against the library's own
predictions before it is kept.

ONNX tree operators compare features with float32 thresholds unless the converter writes
double ones; a value that falls between a double threshold and its float32 rounding takes the
other branch, and a regressor's output drifts as trees are added. So every conversion is run
on the stored example rows (and the reference data's, `parity_rows.py`) and compared with the
native model: class labels must be equal and
probabilities within PROBA_ATOL; a regressor's largest difference, relative to the largest
output, must stay below REGRESSION_RTOL — otherwise the conversion is refused and the model is
served by its own runtime (the version's `onnx_detail` says why). Double-precision inputs are
tried first where the converter supports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np  # imported only to convert, which needs it

from shipyard.errors import ConversionError, MissingDependencyError
from shipyard.flavors.onnx import PROBA_ATOL, OnnxPredictor

if TYPE_CHECKING:
    from shipyard.flavors.signature import Signature

REGRESSION_RTOL = 1e-6
TARGET_OPSET = 15  # the highest onnxmltools 1.16 converts to
# the ONNX metadata key that carries the parity measured at conversion (read by `parity_of`)
PARITY_KEY = "shipyard.parity"

# converts (model, tensor type name "float"|"double", number of features) → ModelProto
Converter = Callable[[Any, str, int], Any]


def onnxmltools_types() -> tuple[Any, Any]:
    try:
        from onnxmltools.convert.common.data_types import DoubleTensorType, FloatTensorType
    except ImportError as exc:
        raise MissingDependencyError(
            "converting XGBoost/LightGBM models to ONNX needs onnxmltools: "
            "pip install 'shipyard[xgboost]' or 'shipyard[lightgbm]'"
        ) from exc
    return FloatTensorType, DoubleTensorType


def convert_checked(
    model: Any,
    convert: Converter,
    expected: np.ndarray,
    expected_proba: np.ndarray | None,
    signature: Signature,
    example_columns: Mapping[str, np.ndarray],
    *,
    what: str,
    extra: str,
    dtypes: tuple[str, ...] = ("double", "float"),
    rtol: float = REGRESSION_RTOL,
) -> bytes:
    """The first conversion (by input precision, in `dtypes` order) whose outputs on the
    example match `expected` (and `expected_proba`; a regressor's within `rtol` of the
    largest output); ConversionError naming the largest difference when none does."""
    if signature.categorical:
        from shipyard.flavors.categories import not_converted

        raise ConversionError(not_converted(signature))
    if not signature.all_numeric:
        raise ConversionError("only models with all-numeric inputs are converted to ONNX")
    problems: list[str] = []
    for dtype in dtypes:
        try:
            onx = convert(model, dtype, len(signature.inputs))
        except ConversionError:
            raise
        except ImportError as exc:  # the converter is not installed: no verdict on the model
            raise MissingDependencyError(
                f"converting this {what} to ONNX needs {exc.name or 'onnxmltools'}, which is "
                f"not installed: pip install 'shipyard[{extra}]'"
            ) from exc
        except Exception as exc:  # onnxmltools raises many types for what it cannot convert
            problems.append(f"{dtype} inputs: the converter failed ({type(exc).__name__}: {exc})")
            continue
        data: bytes = onx.SerializeToString()
        try:
            predictor = OnnxPredictor.from_bytes(data, signature)
            got = predictor.predict_columns(example_columns)
            proba = predictor.predict_proba_columns(example_columns)
        except Exception as exc:  # onnxruntime refuses an operator or a type
            problems.append(f"{dtype} inputs: onnxruntime cannot run it ({exc})")
            continue
        problem, parity = _compare(got, proba, expected, expected_proba, rtol)
        if problem is None:
            rows = len(expected)
            return _stamped(onx, f"{parity} on {rows} example rows ({dtype} inputs)")
        problems.append(f"{dtype} inputs: {problem}")
    raise ConversionError(
        f"the ONNX conversion of this {what} does not match the original: "
        f"{'; '.join(problems)}; served by its own runtime"
    )


def _compare(
    got: np.ndarray,
    proba: np.ndarray | None,
    expected: np.ndarray,
    expected_proba: np.ndarray | None,
    rtol: float = REGRESSION_RTOL,
) -> tuple[str | None, str]:
    """(what differs or None, the parity measured)."""
    if expected_proba is None and proba is not None:
        return (
            "the converter made a classifier (labels) of a model whose own predict returns "
            "scores or probabilities (a native Booster with a classification objective)",
            "",
        )
    if got.shape != expected.shape:
        return f"predictions have shape {got.shape}, not {expected.shape}", ""
    if expected_proba is not None:
        if not np.array_equal(got.astype(expected.dtype), expected):
            return "predicted labels differ", ""
        if proba is None or proba.shape != expected_proba.shape:
            return "no probabilities of the right shape", ""
        diff = float(np.max(np.abs(proba.astype(np.float64) - expected_proba)))
        if not diff <= PROBA_ATOL:
            return f"probabilities differ by up to {diff:.3g} (more than {PROBA_ATOL})", ""
        return None, f"labels equal, probabilities within {diff:.3g}"
    exp = expected.astype(np.float64)
    scale = max(float(np.max(np.abs(exp))), np.finfo(np.float64).tiny)
    relative = float(np.max(np.abs(got.astype(np.float64) - exp))) / scale
    if not relative < rtol:
        return (
            f"predictions differ by up to {relative:.3g} relative to the largest "
            f"(more than {rtol:g})",
            "",
        )
    return None, f"max relative difference {relative:.3g}"


def _stamped(onx: Any, parity: str) -> bytes:
    """The model's bytes with the measured parity in its metadata."""
    entry = onx.metadata_props.add()
    entry.key, entry.value = PARITY_KEY, parity
    return onx.SerializeToString()  # type: ignore[no-any-return]


def parity_of(data: bytes) -> str | None:
    """The parity `convert_checked` measured for an ONNX file it made (None for others)."""
    import onnx

    for entry in onnx.load_model_from_string(data).metadata_props:
        if entry.key == PARITY_KEY:
            return str(entry.value)
    return None
