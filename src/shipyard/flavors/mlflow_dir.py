"""An MLflow model directory (an MLmodel file and the files it names) as a shipyard model.

    flavor, digest, signature, manifest = save_mlflow_dir(folder, artifacts)

What shipyard can run becomes one of its own flavors, so serving, ONNX conversion and the
environment checks treat it like any model: scikit-learn saved with skops (MLflow's default
since 3.x) is loaded with shipyard's reviewed skops types and saved again; ONNX stays ONNX;
scikit-learn pickled (MLflow 2's cloudpickle) is recorded without being loaded and loads only
when the caller trusts it. Anything else (pytorch, transformers, a custom pyfunc…) is kept as
the "mlflow" flavor: stored, handed back to MLflow clients, not served by shipyard.

Every file of the directory is also kept, under "mlflow/" in the manifest's files, so an
MLflow client downloads the very directory it uploaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, ModelLoadError, UntrustedModelError

if TYPE_CHECKING:
    import numpy as np

    from shipyard.flavors.base import Predictor, Saved
    from shipyard.flavors.signature import Signature
    from shipyard.stores.artifacts import LocalArtifactStore

PREFIX = "mlflow/"  # the directory's files in the manifest
SERVED = ("sklearn", "onnx")  # MLflow flavors shipyard runs itself
_ZERO = {"boolean": False, "string": "", "binary": b"", "integer": 0, "long": 0}


# an MLmodel file is a few KB; its YAML, aliases expanded, a few thousand nodes
MAX_MLMODEL_BYTES = 1 << 20
MAX_MLMODEL_NODES = 100_000
# an input example larger than this is not read (parsed, it would take ~10x as much memory):
# the signature's row stands in
MAX_EXAMPLE_BYTES = 32 << 20


def read_mlmodel(folder: Path) -> dict[str, Any]:
    """The MLmodel file as a dict (InvalidArgumentError when there is none, it is not YAML,
    or it is too large once its aliases are expanded: a "billion laughs" file)."""
    import yaml

    path = folder / "MLmodel"
    if not path.is_file() or path.is_symlink():
        raise InvalidArgumentError(
            "this is not an MLflow model directory: it has no MLmodel file", field="source"
        )
    if path.stat().st_size > MAX_MLMODEL_BYTES:
        raise InvalidArgumentError(
            f"the MLmodel file is larger than {MAX_MLMODEL_BYTES} bytes", field="source"
        )
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"the MLmodel file is not YAML: {exc}", field="source") from exc
    _check_size(doc)
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict):
        raise InvalidArgumentError("the MLmodel file names no flavors", field="source")
    return doc


def _check_size(doc: Any) -> None:
    """Refuse a document of more than MAX_MLMODEL_NODES values counted as a reader walks
    them (an alias counts each time it is used), stopping as soon as it is over."""
    stack, seen = [doc], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_MLMODEL_NODES:
            raise InvalidArgumentError(
                f"the MLmodel file holds more than {MAX_MLMODEL_NODES} values once its YAML "
                "aliases are expanded",
                field="source",
            )
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)


def inside(folder: Path, name: Any) -> Path | None:
    """The regular file `name` (as an MLmodel names it) inside `folder`, else None: an
    absolute path, "..", or a symlink never reach outside the model directory."""
    import os

    text = str(name or "")
    if not text or "\x00" in text:
        return None
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, text))
    if os.path.commonpath([root, path]) != root or path == root or not os.path.isfile(path):
        return None
    return Path(path)


def input_example(folder: Path, mlmodel: Mapping[str, Any]) -> Any:
    """The model's input example (a DataFrame or an array) from the directory, else one row
    made from its signature's inputs; None when it has neither."""
    import numpy as np
    import pandas as pd

    info = mlmodel.get("saved_input_example_info") or {}
    info = info if isinstance(info, dict) else {}
    path = inside(folder, info.get("artifact_path"))
    if info and path is not None and path.stat().st_size <= MAX_EXAMPLE_BYTES:
        doc = json.loads(path.read_bytes())
        if info.get("type") == "dataframe" and isinstance(doc, dict) and "columns" in doc:
            return pd.DataFrame(doc.get("data", []), columns=doc["columns"])
        if info.get("type") == "ndarray":
            data = doc.get("inputs", doc) if isinstance(doc, dict) else doc
            return np.asarray(data)
    inputs = _signature_inputs(mlmodel)
    if not inputs:
        return None
    if inputs[0].get("type") == "tensor":
        spec = inputs[0].get("tensor-spec", {})
        shape = [1, *[max(int(d), 1) for d in spec.get("shape", [-1, 1])[1:]]]
        return np.zeros(shape, dtype=spec.get("dtype", "float64"))
    row = {str(c["name"]): _ZERO.get(str(c.get("type")), 0.0) for c in inputs if "name" in c}
    return pd.DataFrame([row]) if row else None


def _signature_inputs(mlmodel: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = (mlmodel.get("signature") or {}).get("inputs")
    try:
        found = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return []
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def save_mlflow_dir(
    folder: Path, artifacts: LocalArtifactStore, *, trusted: bool = False
) -> tuple[str, str, Signature, dict[str, Any]]:
    """Save the MLflow model in `folder` as a shipyard model (see the module's docstring).
    `trusted` lets a pickled model be loaded now (to describe it and convert it later)."""
    mlmodel = read_mlmodel(folder)
    flavors = mlmodel["flavors"]
    try:  # the client's files: a broken example is its mistake (400), not the server's (500)
        example = input_example(folder, mlmodel)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidArgumentError(
            f"the model's input example or signature cannot be read: {str(exc)[:300]}",
            field="source",
        ) from exc
    try:
        native = _native_model(folder, flavors, trusted=trusted)
    except UntrustedModelError:  # kept as it came: it loads only when trusted
        native = None
    if native is not None and example is None:
        example = _example_of(native[0])
    if native is not None and example is not None:
        from shipyard.flavors import save_model

        model, serialization = native
        saved = save_model(model, artifacts, input_example=example, serialization=serialization)
    else:
        saved = _recorded(folder, flavors, example, artifacts)
    return _with_directory(folder, mlmodel, saved, artifacts)


def _native_model(
    folder: Path, flavors: Mapping[str, Any], *, trusted: bool
) -> tuple[Any, Any] | None:
    """(the model, how shipyard saves it) for what shipyard loads safely, else None."""
    sk = flavors.get("sklearn")
    if isinstance(sk, dict):
        path = inside(folder, sk.get("pickled_model"))
        if sk.get("serialization_format") == "skops" and path is not None:
            from shipyard.flavors.sklearn import load_skops

            return load_skops(path, trusted=trusted), "skops"
        if trusted and path is not None:
            from shipyard.flavors.sklearn import load_pickle

            return load_pickle(path, trusted=True), "pickle"
        return None
    onnx_flavor = flavors.get("onnx")
    if isinstance(onnx_flavor, dict):
        path = inside(folder, onnx_flavor.get("data", "model.onnx"))
        if path is not None:
            import onnx

            try:  # onnx refuses external data outside the directory, and garbage
                return onnx.load(str(path)), "skops"
            except Exception as exc:
                raise InvalidArgumentError(
                    f"the ONNX model cannot be read: {type(exc).__name__}: {str(exc)[:300]}",
                    field="source",
                ) from exc
    return None


def _example_of(model: Any) -> Any:
    """One row of zeros in the columns a fitted scikit-learn model names (or counts)."""
    import numpy as np
    import pandas as pd

    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return pd.DataFrame([dict.fromkeys(map(str, names), 0.0)])
    count = getattr(model, "n_features_in_", None)
    return np.zeros((1, int(count))) if isinstance(count, int) else None


def _recorded(
    folder: Path, flavors: Mapping[str, Any], example: Any, artifacts: LocalArtifactStore
) -> tuple[str, str, Signature, dict[str, Any]]:
    """A manifest written without loading the model: a scikit-learn model pickled, or in
    skops with types shipyard has not reviewed (either loads only when trusted), or a flavor
    shipyard does not run ("mlflow")."""
    import platform

    from shipyard.flavors import _lock_environment
    from shipyard.flavors.signature import Signature, infer_signature

    sk = flavors.get("sklearn")
    model_file = inside(folder, sk.get("pickled_model")) if isinstance(sk, dict) else None
    signature = infer_signature(example) if example is not None else Signature(())
    manifest: dict[str, Any] = {
        "format": 1,
        "signature": signature.to_dict(),
        "input_example": signature.example_doc(example, n=100) if example is not None else [],
        "python": str((flavors.get("python_function") or {}).get("python_version", "")),
        "files": {},
    }
    if model_file is not None and example is not None:
        assert isinstance(sk, dict)
        skops = sk.get("serialization_format") == "skops"
        name = "model.skops" if skops else "model.joblib"
        manifest["files"][name] = artifacts.put_file(model_file)[0]
        manifest["serialization"] = "skops" if skops else "pickle"
        manifest["described_at_load"] = True  # probabilities, classes: from the loaded model
        manifest["requirements"] = {"scikit-learn": str(sk.get("sklearn_version", ""))}
        manifest["flavor"] = "sklearn"
    else:
        manifest["flavor"] = "mlflow"
        manifest["requirements"] = {}
        manifest["python"] = manifest["python"] or platform.python_version()
    _lock_environment(manifest, artifacts, ())
    digest = artifacts.put_bytes(json.dumps(manifest, sort_keys=True).encode())[0]
    return manifest["flavor"], digest, signature, manifest


def _with_directory(
    folder: Path,
    mlmodel: Mapping[str, Any],
    saved: tuple[str, str, Signature, dict[str, Any]],
    artifacts: LocalArtifactStore,
) -> tuple[str, str, Signature, dict[str, Any]]:
    """The saved manifest with the directory's files added under "mlflow/" (stored again:
    a manifest's digest covers every file it names)."""
    flavor, _, signature, manifest = saved
    sizes = {}
    links = sorted(p.name for p in folder.rglob("*") if p.is_symlink())
    if links:  # a link may point anywhere on this machine: never followed
        raise InvalidArgumentError(
            f"the model directory holds symbolic links ({', '.join(links[:5])}); copy the files "
            "themselves",
            field="source",
        )
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        manifest["files"][PREFIX + relative], sizes[relative] = artifacts.put_file(path)
    manifest["mlflow"] = {
        "sizes": sizes,
        "flavors": sorted(mlmodel["flavors"]),
        "model_id": mlmodel.get("model_id"),
        "run_id": mlmodel.get("run_id"),
    }
    digest = artifacts.put_bytes(json.dumps(manifest, sort_keys=True).encode())[0]
    return flavor, digest, signature, manifest


def directory_files(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The MLflow directory's files a manifest keeps: relative path → digest."""
    files: Mapping[str, str] = manifest.get("files", {})
    return {k[len(PREFIX) :]: v for k, v in files.items() if k.startswith(PREFIX)}


class MlflowFlavor:
    """A model in an MLflow flavor shipyard does not run: kept for MLflow clients only."""

    name = "mlflow"
    converts = False

    def owns(self, model: Any) -> bool:
        return False

    def takes_missing(self, model: Any) -> bool:
        return False

    def save(self, model: Any, folder: Path, signature: Signature) -> Saved:
        raise InvalidArgumentError("MLflow models are registered from their directory")

    def load(
        self,
        files: Mapping[str, Path],
        manifest: Mapping[str, Any],
        signature: Signature,
        *,
        trusted: bool,
    ) -> Predictor:
        kept = ", ".join((manifest.get("mlflow") or {}).get("flavors", [])) or "unknown"
        raise ModelLoadError(
            f"this version is an MLflow model in the flavor(s) {kept}, which shipyard does not "
            "serve (it serves scikit-learn and ONNX models logged with MLflow); load it with "
            "mlflow.pyfunc.load_model against this server"
        )

    def to_onnx(
        self, model: Any, signature: Signature, example_columns: Mapping[str, np.ndarray]
    ) -> bytes:
        from shipyard.errors import ConversionError

        raise ConversionError("MLflow models in flavors shipyard does not run are not converted")


MLFLOW = MlflowFlavor()
