"""INT8 quantization of a version's ONNX model with onnxruntime's quantization tool.

"dynamic": weights stored as INT8, activations quantized per call (`quantize_dynamic`).
"static": weights and activations INT8, activation ranges calibrated beforehand on rows of the
training data (`quantize_static` in QDQ format, fed by a `CalibrationDataReader`).

Both apply to the weights of MatMul/Gemm/Conv nodes: a neural network or linear model
converted to ONNX. A tree ensemble's ONNX graph has none, and is refused rather than copied.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ConversionError, InvalidArgumentError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np

    from shipyard.stores.artifacts import LocalArtifactStore
    from shipyard.stores.records import ModelVersionRecord

CALIBRATION_ROWS = 1000  # rows fed to the static calibration (a seeded sample above that)
CALIBRATION_BATCH = 64
QUANTIZABLE = ("MatMul", "Gemm", "Conv")
# what a quantized graph holds that a float one does not
QUANTIZED_OPS = ("MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "QuantizeLinear")


def parent_onnx(
    artifacts: LocalArtifactStore, mv: ModelVersionRecord, manifest: dict[str, Any]
) -> tuple[bytes, str]:
    """The version's ONNX model, and where it came from. A version not converted yet is
    converted here, in memory, with the same parity check as the registry's (the old version's
    record is left as it is)."""
    from shipyard.flavors import convert_saved, convertible

    if "model.onnx" in manifest["files"]:
        return artifacts.get_bytes(manifest["files"]["model.onnx"]), "its ONNX file"
    if mv.onnx_digest is not None:
        return artifacts.get_bytes(mv.onnx_digest), "its ONNX conversion"
    uri = f"models:/{mv.name}/{mv.version}"
    if not convertible(manifest):
        raise InvalidArgumentError(
            f"{uri} ({mv.flavor}) has no ONNX model and no converter to ONNX; --quantize "
            "works on ONNX models (scikit-learn, XGBoost and LightGBM versions convert)",
            field="technique",
        )
    try:
        return convert_saved(artifacts, mv.artifact_digest), "converted now"
    except ConversionError as exc:
        raise InvalidArgumentError(
            f"{uri} cannot be quantized: its ONNX conversion failed ({exc})", field="technique"
        ) from exc


def quantize(
    data: bytes,
    mode: str,
    *,
    calibration: np.ndarray | None,
    classes: list[Any] | None,
    what: str,
) -> tuple[Any, dict[str, Any]]:
    """The INT8 model (an `onnx.ModelProto`, its classes stamped in its metadata) and what
    was done (nodes quantized, calibration rows)."""
    try:
        import onnx
        from onnxruntime import quantization as q
    except ImportError as exc:
        raise MissingDependencyError("quantization needs onnx and onnxruntime") from exc
    model = onnx.load_model_from_string(data)
    _check_quantizable(model, what)
    _quiet_advice()
    with tempfile.TemporaryDirectory(prefix="shipyard-quantize-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        if mode == "dynamic":
            q.quantize_dynamic(src, dst, weight_type=q.QuantType.QInt8)
        else:
            assert calibration is not None
            q.quantize_static(
                src,
                dst,
                _reader(q.CalibrationDataReader, model.graph.input[0].name, calibration),
                quant_format=q.QuantFormat.QDQ,
                activation_type=q.QuantType.QInt8,
                weight_type=q.QuantType.QInt8,
            )
        out = onnx.load_model_from_string(dst.read_bytes())
    quantized = sum(n.op_type in QUANTIZED_OPS for n in out.graph.node)
    if classes is not None:
        from shipyard.flavors.onnx import CLASSES_KEY

        entry = out.metadata_props.add()
        entry.key, entry.value = CLASSES_KEY, json.dumps(classes)
    details: dict[str, Any] = {"mode": mode, "quantized_nodes": quantized}
    if calibration is not None:
        details["calibration_rows"] = len(calibration)
    return out, details


def _quiet_advice() -> None:
    """onnxruntime's quantizer logs advice to run its pre-processing on the root logger at
    every call; shipyard's users did not call it, so that line is dropped (once installed)."""
    root = logging.getLogger()
    if not any(isinstance(f, _AdviceFilter) for f in root.filters):
        root.addFilter(_AdviceFilter())


class _AdviceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider")


def _check_quantizable(model: Any, what: str) -> None:
    ops = [n.op_type for n in model.graph.node]
    if not any(op in QUANTIZABLE for op in ops):
        kinds = ", ".join(sorted({op for op in ops if op not in ("Cast", "Identity")})[:4])
        raise InvalidArgumentError(
            f"{what} has nothing INT8 quantization applies to: it quantizes the weights of "
            f"{'/'.join(QUANTIZABLE)} nodes and this ONNX graph has none ({kinds}); "
            "for tree ensembles use --prune or --distill",
            field="technique",
        )
    elem = model.graph.input[0].type.tensor_type.elem_type
    if elem == 11:  # onnx.TensorProto.DOUBLE: onnxruntime quantizes float32 weights only
        raise InvalidArgumentError(
            f"{what}'s ONNX model computes in float64 (its float32 conversion did not match "
            "the original); onnxruntime quantizes float32 models only",
            field="technique",
        )


def _reader(base: type, input_name: str, matrix: np.ndarray) -> Any:
    """A CalibrationDataReader feeding `matrix` in batches."""

    class Reader(base):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            self._batches = iter(
                {input_name: matrix[i : i + CALIBRATION_BATCH]}
                for i in range(0, len(matrix), CALIBRATION_BATCH)
            )

        def get_next(self) -> dict[str, Any] | None:
            return next(self._batches, None)

    return Reader()
