"""ONNX: sklearn → ONNX conversion that refuses a converted model whose outputs differ from
the original, and an onnxruntime predictor with tuned session options."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np  # imported only to convert or to serve a model, which both need it

from shipyard.errors import (
    ConversionError,
    InvalidArgumentError,
    MissingDependencyError,
    ModelLoadError,
    UntrustedModelError,
)
from shipyard.flavors.base import Saved

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.flavors.signature import Signature

PROBA_ATOL = 1e-4


def convert_sklearn(
    model: Any, signature: Signature, example_columns: Mapping[str, np.ndarray]
) -> bytes:
    """Convert `model` to ONNX (one 2-D float input in signature order) and check it against the
    original on the example. Raises ConversionError when it cannot be converted or disagrees."""
    try:
        from skl2onnx import to_onnx
    except ImportError as exc:
        raise MissingDependencyError(
            "ONNX conversion needs skl2onnx: pip install skl2onnx"
        ) from exc
    if not signature.all_numeric:
        raise ConversionError("only models with all-numeric inputs are converted to ONNX")
    native_input = signature.to_model_input(example_columns)
    expected = np.asarray(model.predict(native_input))
    expected_proba = (
        np.asarray(model.predict_proba(native_input)) if hasattr(model, "predict_proba") else None
    )
    last_problem = "unknown"
    for dtype in ("float32", "float64"):
        x = signature.matrix(example_columns, dtype)
        try:
            options = {id(model): {"zipmap": False}} if expected_proba is not None else None
            onx = to_onnx(model, x[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3})
        except Exception as exc:  # skl2onnx raises many types for unsupported models
            raise ConversionError(f"skl2onnx cannot convert {type(model).__name__}: {exc}") from exc
        data: bytes = onx.SerializeToString()
        predictor = OnnxPredictor.from_bytes(data, signature)
        got = predictor.predict_columns(example_columns)
        if got.shape != expected.shape or not _same_predictions(got, expected):
            last_problem = f"predictions differ from the original with {dtype} inputs"
            continue
        if expected_proba is not None:
            proba = predictor.predict_proba_columns(example_columns)
            if (
                proba is None
                or proba.shape != expected_proba.shape
                or not np.allclose(proba, expected_proba, atol=PROBA_ATOL)
            ):
                last_problem = f"probabilities differ by more than {PROBA_ATOL} ({dtype} inputs)"
                continue
        return data
    raise ConversionError(
        f"the ONNX conversion of {type(model).__name__} does not match the "
        f"original: {last_problem}; keeping the native model only"
    )


def _same_predictions(got: np.ndarray, expected: np.ndarray) -> bool:
    if expected.dtype.kind in "fc":
        return bool(np.allclose(got.astype(np.float64), expected, rtol=1e-4, atol=1e-5))
    return bool(np.array_equal(got.astype(expected.dtype), expected))


def refuse_external_data(data: bytes) -> None:
    """Refuse a model whose tensors point to files outside it (ONNX "external data"): a model
    in the registry is one self-contained artifact, and a location such as `../../secret`
    would read a file of the serving host into the model's weights."""
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError("loading ONNX models needs onnx: pip install onnx") from exc
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelLoadError(f"not a readable ONNX model: {exc}") from exc
    graphs = [model.graph, *(f for f in model.functions)]
    while graphs:
        graph = graphs.pop()
        tensors = list(getattr(graph, "initializer", []))
        for sparse in getattr(graph, "sparse_initializer", []):
            tensors += [sparse.values, sparse.indices]
        for node in graph.node:
            for attr in node.attribute:
                tensors += [attr.t, *attr.tensors]
                for sparse in [attr.sparse_tensor, *attr.sparse_tensors]:
                    tensors += [sparse.values, sparse.indices]
                graphs += [g for g in [attr.g, *attr.graphs] if g.ByteSize()]
        for tensor in tensors:
            if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
                raise UntrustedModelError(
                    f"the ONNX model's tensor {tensor.name!r} keeps its data in an external "
                    "file; shipyard serves self-contained models only (save it with "
                    "onnx.save_model(..., save_as_external_data=False))"
                )


class OnnxPredictor:
    backend = "onnxruntime"

    def __init__(self, session: Any, signature: Signature) -> None:
        self.session = session
        # onnxruntime's `run` checks the input names in Python on every call (ours are fixed
        # and checked here), and builds default run options when given none; on small
        # requests that overhead is a large share of the call, so calls go straight to the
        # compiled session (fences/onnxruntime.py) with options made once
        import onnxruntime as ort

        from shipyard.fences.onnxruntime import direct_run

        self._options = ort.RunOptions()
        self._run_now = direct_run(session)
        self.signature = signature
        inp = session.get_inputs()
        if len(inp) != 1:
            raise ConversionError("shipyard serves ONNX models with exactly one (2-D) input")
        self.input_name = inp[0].name
        self.input_dtype = "float64" if "double" in inp[0].type else "float32"
        outs = [o.name for o in session.get_outputs()]
        self.label_output = outs[0]
        self.proba_output = outs[1] if len(outs) > 1 else None

    @classmethod
    def from_bytes(cls, data: bytes, signature: Signature) -> OnnxPredictor:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError(
                "serving ONNX needs onnxruntime: pip install onnxruntime"
            ) from exc
        refuse_external_data(data)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Small requests: one thread per session avoids thread hand-off costs that dominate
        # at a few rows; parallelism comes from concurrent requests and workers.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        if signature.kind == "tensors":  # N-d inputs by name
            return OnnxTensorPredictor(session, signature)
        return cls(session, signature)

    @classmethod
    def from_path(cls, path: Path, signature: Signature) -> OnnxPredictor:
        return cls.from_bytes(Path(path).read_bytes(), signature)

    def _run(self, columns: Mapping[str, np.ndarray], outputs: list[str]) -> list[Any]:
        x = self.signature.matrix(columns, self.input_dtype)
        if self._run_now is not None:
            return self._run_now(outputs, {self.input_name: x}, self._options)  # type: ignore[no-any-return]
        return self.session.run(outputs, {self.input_name: x}, self._options)  # type: ignore[no-any-return]

    def predict_both(
        self, columns: Mapping[str, np.ndarray], proba: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (and probabilities) from one session run."""
        if not proba or self.proba_output is None:
            return self.predict_columns(columns), None
        labels, probabilities = self._run(columns, [self.label_output, self.proba_output])
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels.ravel()
        return labels, np.asarray(probabilities)

    def predict_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        out = np.asarray(self._run(columns, [self.label_output])[0])
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_proba_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray | None:
        if self.proba_output is None:
            return None
        return np.asarray(self._run(columns, [self.proba_output])[0])


class OnnxTensorPredictor(OnnxPredictor):
    """An ONNX model with a tensor signature: each input fed by name as the checked N-d array;
    the first output is the prediction, in its own shape."""

    def __init__(self, session: Any, signature: Signature) -> None:
        import onnxruntime as ort

        from shipyard.fences.onnxruntime import direct_run

        self.session = session
        self.signature = signature
        self._options = ort.RunOptions()
        self._run_now = direct_run(session)
        graph = {i.name for i in session.get_inputs()}
        if graph != set(signature.names):
            raise ConversionError(
                f"the ONNX model takes inputs {sorted(graph)}; its signature names "
                f"{sorted(signature.names)}"
            )
        self.input_name = signature.names[0]
        self.input_dtype = ""
        outs = [o.name for o in session.get_outputs()]
        self.label_output = outs[0]
        # a classifier shipyard converted (a PyTorch image classifier) names its second output
        # "probabilities"; another graph's second output is not taken for them
        self.proba_output = outs[1] if outs[1:2] == ["probabilities"] else None

    def _run(self, columns: Mapping[str, np.ndarray], outputs: list[str]) -> list[Any]:
        feed = {n: columns[n] for n in self.signature.names}
        if self._run_now is not None:
            return self._run_now(outputs, feed, self._options)  # type: ignore[no-any-return]
        return self.session.run(outputs, feed, self._options)  # type: ignore[no-any-return]

    def predict_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self._run(columns, [self.label_output])[0])


def _tensor_type(elem_type: int) -> str | None:
    """The tensor signature type of an ONNX element type (None: one it does not hold)."""
    import onnx

    from shipyard.flavors.tensors import TENSOR_TYPES

    try:
        numpy = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return None
    found = [name for name, (dtype, _) in TENSOR_TYPES.items() if dtype == numpy]
    return found[0] if found else None


def _proto(model: Any) -> Any:
    """An ONNX model given as bytes, parsed (refused when it is not one)."""
    if not isinstance(model, (bytes, bytearray)):
        return model
    try:
        refuse_external_data(bytes(model))
    except ModelLoadError as exc:  # bytes that are no ONNX model
        raise InvalidArgumentError(
            f"the model is bytes but {exc.message}; pass an onnx.ModelProto, the bytes of one, "
            "or a model object of a supported flavor",
            field="model",
        ) from exc
    import onnx

    return onnx.load_model_from_string(bytes(model))


class OnnxFlavor:
    """An ONNX model (`onnx.ModelProto`), served by onnxruntime as it is."""

    name = "onnx"
    converts = False

    def owns(self, model: Any) -> bool:
        """An `onnx.ModelProto`, or the bytes of one (a file's content, `SerializeToString`)."""
        if isinstance(model, (bytes, bytearray)):
            return True
        return type(model).__name__ == "ModelProto" and type(model).__module__.startswith("onnx")

    def takes_missing(self, model: Any) -> bool:
        return False

    def tensor_inputs(self, model: Any) -> dict[str, tuple[str | None, list[int] | None]]:
        """The graph's own inputs (not its initializers): name → (type, shape), -1 where a
        dimension is symbolic; what a tensor signature inferred from the example must match."""
        graph = _proto(model).graph
        weights = {t.name for t in graph.initializer}
        out = {}
        for value in graph.input:
            if value.name in weights:
                continue
            tensor = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
            known = tensor.HasField("shape")  # a graph may leave a shape unsaid
            out[value.name] = (_tensor_type(tensor.elem_type), dims if known else None)
        return out

    def save(self, model: Any, folder: Path, signature: Signature) -> Saved:
        from shipyard.flavors.sklearn import package_version

        data = bytes(model) if isinstance(model, (bytes, bytearray)) else model.SerializeToString()
        predictor = OnnxPredictor.from_bytes(data, signature)  # refuses what it cannot serve
        path = folder / "model.onnx"
        path.write_bytes(data)
        doc: dict[str, Any] = {
            "requirements": {"onnxruntime": package_version("onnxruntime")},
            "onnx": {"status": "native"},
            "has_proba": predictor.proba_output is not None,
        }
        classes = _stamped_classes(_proto(model))
        if classes is not None and doc["has_proba"]:
            doc["classes"] = classes
        return Saved({path.name: path}, doc)

    def load(
        self,
        files: Mapping[str, Path],
        manifest: Mapping[str, Any],
        signature: Signature,
        *,
        trusted: bool,
    ) -> OnnxPredictor:
        return OnnxPredictor.from_path(files["model.onnx"], signature)

    def to_onnx(
        self, model: Any, signature: Signature, example_columns: Mapping[str, np.ndarray]
    ) -> bytes:
        raise ConversionError("an ONNX model is served as it is")


CLASSES_KEY = "shipyard.classes"  # metadata: a classifier's labels, in probability-column order


def _stamped_classes(model: Any) -> list[Any] | None:
    """The class labels stamped in the model's metadata (JSON under CLASSES_KEY), e.g. by
    `shipyard models optimize` on a quantized classifier; None when there are none."""
    import json

    for prop in model.metadata_props:
        if prop.key == CLASSES_KEY:
            try:
                classes = json.loads(prop.value)
            except ValueError:
                return None
            return classes if isinstance(classes, list) else None
    return None


ONNX = OnnxFlavor()
