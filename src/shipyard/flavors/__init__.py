"""Model formats: save, load, signature and conversion per framework.

A saved model is a small JSON *manifest* in the artifact store that names its files by digest:

    {"format": 1, "flavor": "sklearn", "serialization": "skops",
     "files": {"model.skops": "<sha256>", "model.onnx": "<sha256>"},
     "signature": {...}, "input_example": [...], "onnx": {"status": "ok"}, ...}

Loading verifies every digest, and prefers the ONNX file when there is one.
"""

from __future__ import annotations

import json
import platform
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import ConversionError, InvalidArgumentError
from shipyard.flavors.base import LoadedModel
from shipyard.flavors.signature import (
    Signature,
    example_rows,
    infer_signature,
    missing_columns,
)

if TYPE_CHECKING:
    from shipyard.stores.artifacts import LocalArtifactStore

Serialization = Literal["skops", "pickle"]
OnnxMode = bool | Literal["auto"]


def _package_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def save_model(
    model: Any,
    artifacts: LocalArtifactStore,
    *,
    input_example: Any = None,
    serialization: Serialization = "skops",
    onnx: OnnxMode = False,
    allow_missing: bool | Iterable[str] = (),
) -> tuple[str, str, Signature, dict[str, Any]]:
    """Save `model` into the artifact store. Returns (flavor, manifest digest, signature,
    manifest). `onnx=True` converts now and requires the conversion to match (ConversionError
    otherwise); "auto" leaves conversion to the registry, which does it in the background.

    The signature takes missing values in a column when `allow_missing` names it (True: every
    column), the input example has one there, or the model declares it handles them."""
    from shipyard.flavors import sklearn as sk

    if input_example is None:
        raise InvalidArgumentError(
            "input_example is required: shipyard infers the signature from it and uses it to "
            "warm the model up and to check conversions (pass X[:5])",
            field="input_example",
        )
    signature = _signature(model, input_example, allow_missing)
    example_columns = signature.check_frame(input_example)
    manifest: dict[str, Any] = {
        "format": 1,
        "signature": signature.to_dict(),
        "input_example": example_rows(input_example, n=100),
        "python": platform.python_version(),
        "python_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "files": {},
    }
    with tempfile.TemporaryDirectory(prefix="shipyard-save-") as tmp:
        if _is_onnx(model):
            flavor = "onnx"
            data = model if isinstance(model, bytes) else model.SerializeToString()
            manifest["files"]["model.onnx"] = artifacts.put_bytes(data)[0]
            manifest["requirements"] = {"onnxruntime": _package_version("onnxruntime")}
            manifest["onnx"] = {"status": "native"}
            from shipyard.flavors.onnx import OnnxPredictor

            predictor = OnnxPredictor.from_bytes(data, signature)
            manifest["has_proba"] = predictor.proba_output is not None
        elif sk.is_sklearn(model) or serialization == "pickle":
            flavor = "sklearn" if sk.is_sklearn(model) else "python"
            if serialization == "skops" and flavor == "sklearn":
                path = Path(tmp) / "model.skops"
                sk.save_skops(model, path)
            elif serialization == "pickle":
                path = Path(tmp) / "model.joblib"
                sk.save_pickle(model, path)
            else:
                raise InvalidArgumentError(f"unknown serialization {serialization!r}")
            manifest["serialization"] = serialization
            manifest["files"][path.name] = artifacts.put_file(path)[0]
            manifest["requirements"] = {"scikit-learn": _package_version("scikit-learn")}
            manifest["has_proba"] = hasattr(model, "predict_proba")
            if hasattr(model, "classes_"):
                manifest["classes"] = [_py(c) for c in model.classes_]
            if onnx is True and flavor == "sklearn":
                from shipyard.flavors.onnx import convert_sklearn

                data = convert_sklearn(model, signature, example_columns)
                manifest["files"]["model.onnx"] = artifacts.put_bytes(data)[0]
                manifest["onnx"] = {
                    "status": "ok",
                    "checked_rows": len(next(iter(example_columns.values()))),
                }
                manifest["requirements"]["onnxruntime"] = _package_version("onnxruntime")
        else:
            raise InvalidArgumentError(
                f"shipyard cannot save a {type(model).__module__}.{type(model).__name__} safely; "
                "supported: scikit-learn estimators and ONNX models, or pass "
                "serialization='pickle' for any object with predict() (loads only when trusted)"
            )
    manifest["flavor"] = flavor
    digest = artifacts.put_bytes(json.dumps(manifest, sort_keys=True).encode())[0]
    return flavor, digest, signature, manifest


def _signature(model: Any, example: Any, allow_missing: bool | Iterable[str]) -> Signature:
    """The example's signature, taking missing values where `save_model` says."""
    from shipyard.flavors import sklearn as sk

    if allow_missing is True or (sk.is_sklearn(model) and sk.takes_missing(model)):
        return infer_signature(example).allowing_missing(True)
    named = [allow_missing] if isinstance(allow_missing, str) else list(allow_missing or ())
    return infer_signature(example).allowing_missing({*named, *missing_columns(example)})


def convert_saved(artifacts: LocalArtifactStore, digest: str) -> bytes:
    """Convert a saved sklearn model to ONNX, checked on its stored input example. Works from
    the saved (immutable) artifact, never from a live object that may have changed since."""
    from shipyard.flavors.onnx import convert_sklearn
    from shipyard.flavors.signature import example_records

    manifest = read_manifest(artifacts, digest)
    if manifest.get("flavor") != "sklearn" or "model.skops" not in manifest["files"]:
        raise ConversionError("only scikit-learn models saved with skops are converted")
    signature = Signature.from_dict(manifest["signature"])
    native = load_model(artifacts, digest, backend="python")
    columns = signature.columns_from_records(example_records(manifest["input_example"]))
    return convert_sklearn(native.predictor.model, signature, columns)  # type: ignore[attr-defined]


def read_manifest(artifacts: LocalArtifactStore, digest: str) -> dict[str, Any]:
    return json.loads(artifacts.get_bytes(digest))  # type: ignore[no-any-return]


def load_model(
    artifacts: LocalArtifactStore,
    digest: str,
    *,
    trusted: bool = False,
    backend: Literal["auto", "onnx", "python"] = "auto",
    onnx_digest: str | None = None,
) -> LoadedModel:
    """Load a saved model by its manifest digest, verifying every file. `onnx_digest` names a
    verified ONNX conversion made after registration (the registry records it)."""
    manifest = read_manifest(artifacts, digest)
    signature = Signature.from_dict(manifest["signature"])
    files: dict[str, str] = manifest["files"]
    flavor = manifest["flavor"]
    onnx_file = files.get("model.onnx") or onnx_digest
    if onnx_file and backend in ("auto", "onnx"):
        from shipyard.flavors.onnx import OnnxPredictor

        predictor: Any = OnnxPredictor.from_bytes(artifacts.get_bytes(onnx_file), signature)
        return LoadedModel(predictor, signature, flavor, manifest=manifest)
    if backend == "onnx":
        raise InvalidArgumentError("this model has no ONNX file; load it with backend='auto'")
    from shipyard.flavors import sklearn as sk

    if "model.skops" in files:
        obj = sk.load_skops(artifacts.local_path(files["model.skops"]), trusted=trusted)
    elif "model.joblib" in files:
        obj = sk.load_pickle(artifacts.local_path(files["model.joblib"]), trusted=trusted)
    else:
        raise InvalidArgumentError(f"manifest {digest[:12]} names no loadable model file")
    return LoadedModel(sk.NativePredictor(obj, signature), signature, flavor, manifest=manifest)


def _is_onnx(model: Any) -> bool:
    return type(model).__name__ == "ModelProto" and type(model).__module__.startswith("onnx")


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


__all__ = [
    "LoadedModel",
    "Signature",
    "infer_signature",
    "load_model",
    "read_manifest",
    "save_model",
]
