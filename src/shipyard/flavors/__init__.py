"""Model formats: save, load, signature and conversion per framework.

A saved model is a small JSON *manifest* in the artifact store that names its files by digest:

    {"format": 1, "flavor": "sklearn", "serialization": "skops",
     "files": {"model.skops": "<sha256>", "model.onnx": "<sha256>"},
     "signature": {...}, "input_example": [...], "onnx": {"status": "ok"}, ...}

Loading verifies every digest, and prefers the ONNX file when there is one.
"""

from __future__ import annotations

import importlib
import json
import logging
import platform
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import ConversionError, InvalidArgumentError, ModelLoadError
from shipyard.flavors import parity_rows
from shipyard.flavors.base import Flavor, LoadedModel
from shipyard.flavors.booster_guard import verify_saved
from shipyard.flavors.reference import COMPARED, compare, record
from shipyard.flavors.signature import Signature, infer_signature, missing_columns

if TYPE_CHECKING:
    from shipyard.stores.artifacts import LocalArtifactStore

log = logging.getLogger("shipyard.flavors")

Serialization = Literal["skops", "pickle"]
OnnxMode = bool | Literal["auto"]


# Every flavor, in the order `save_model` asks them whether they own a model (the first that
# does saves it): "module:attribute", imported only when asked.
# XGBoost's and LightGBM's scikit-learn wrappers are scikit-learn estimators too: they come
# before "sklearn" so their own format, not skops, saves them.
FLAVORS: dict[str, str] = {
    "onnx": "shipyard.flavors.onnx:ONNX",
    "xgboost": "shipyard.flavors.xgboost:XGBOOST",
    "lightgbm": "shipyard.flavors.lightgbm:LIGHTGBM",
    "pytorch": "shipyard.flavors.pytorch:PYTORCH",
    "sklearn": "shipyard.flavors.sklearn:SKLEARN",
    "python_model": "shipyard.flavors.python_model:PYTHON_MODEL",
    # never picked by type: an MLflow model directory in a flavor shipyard does not run
    "mlflow": "shipyard.flavors.mlflow_dir:MLFLOW",
}
# not picked by type: `serialization="pickle"` asks for it
PICKLED = "shipyard.flavors.sklearn:PICKLED"


def flavor_named(name: str) -> Flavor:
    """The flavor a manifest names ("python": a pickled object)."""
    path = FLAVORS.get(name) or (PICKLED if name == "python" else None)
    if path is None:
        raise ModelLoadError(
            f"this model's flavor {name!r} is not known to this shipyard "
            f"(it knows {', '.join(FLAVORS)}); upgrade shipyard or install the flavor's extra"
        )
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def pick_flavor(model: Any, serialization: Serialization) -> Flavor:
    """The flavor that saves `model`."""
    if serialization not in ("skops", "pickle"):
        raise InvalidArgumentError(
            f"unknown serialization {serialization!r}: skops or pickle", field="serialization"
        )
    if serialization == "pickle":
        pickled = flavor_named("python")
        if not pickled.owns(model):
            raise InvalidArgumentError("serialization='pickle' needs an object with predict()")
        return pickled
    for name in FLAVORS:
        flavor = flavor_named(name)
        if flavor.owns(model):
            return flavor
    raise InvalidArgumentError(
        f"shipyard cannot save a {type(model).__module__}.{type(model).__name__} safely; "
        f"supported: {', '.join(FLAVORS)} models; for anything else, wrap it in a "
        "shipyard.PythonModel logged with its code (code=[...]), or pass "
        "serialization='pickle' for any object with predict() (both load only when trusted)"
    )


def save_model(
    model: Any,
    artifacts: LocalArtifactStore,
    *,
    input_example: Any = None,
    serialization: Serialization = "skops",
    onnx: OnnxMode = False,
    allow_missing: bool | Iterable[str] = (),
    code: Iterable[str | Path] | None = None,
    artifacts_of_model: Mapping[str, str | Path] | None = None,
    pip_requirements: Iterable[str] = (),
    check_data: Any = None,
) -> tuple[str, str, Signature, dict[str, Any]]:
    """Save `model` into the artifact store. Returns (flavor, manifest digest, signature,
    manifest). `onnx=True` converts now and requires the conversion to match (ConversionError
    otherwise); "auto" leaves conversion to the registry, which does it in the background.

    The signature takes missing values in a column when `allow_missing` names it (True: every
    column), the input example has one there, or the model declares it handles them.

    A `shipyard.PythonModel` is saved with its `code` (paths) and `artifacts_of_model` (name →
    path); every model gets a lock of the package versions it needs (`flavors.environment`),
    with `pip_requirements` added. Up to 1000 rows of `check_data` (the reference data) are
    stored to check its ONNX conversion with the example's (`parity_rows`)."""
    if input_example is None:
        raise InvalidArgumentError(
            "input_example is required: shipyard infers the signature from it and uses it to "
            "warm the model up and to check conversions (pass X[:5])",
            field="input_example",
        )
    python_model = _is_python_model(model) and serialization != "pickle"
    if code is not None or artifacts_of_model is not None or python_model:
        from shipyard.flavors.python_model import package

        model = package(model, code=code, artifacts=artifacts_of_model, input_example=input_example)
    flavor = pick_flavor(model, serialization)
    signature = _signature(flavor, model, input_example, allow_missing)
    example_columns = signature.check_frame(input_example)
    prepare = getattr(flavor, "prepare", None)  # a flavor that compiles the model first
    if prepare is not None:
        model = prepare(model, signature, example_columns)
    _check_missing_handled(flavor, model, signature, example_columns)
    manifest: dict[str, Any] = {
        "format": 1,
        "signature": signature.to_dict(),
        "input_example": signature.example_doc(input_example, n=100),
        "python": platform.python_version(),
        "python_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "files": {},
    }
    with tempfile.TemporaryDirectory(prefix="shipyard-save-") as tmp:
        saved = flavor.save(model, Path(tmp), signature)
        reloaded = verify_saved(flavor, model, saved, signature, example_columns)
        manifest.update(saved.manifest)
        for name, path in saved.files.items():
            manifest["files"][name] = artifacts.put_file(path)[0]
        _record_outputs(flavor, saved.files, manifest, signature, reloaded)
    checked = parity_rows.store(signature, check_data, artifacts) if flavor.converts else None
    if checked is not None:
        manifest[parity_rows.KEY] = checked[0]
    if onnx is True and flavor.converts:
        check_columns = parity_rows.joined(example_columns, None if checked is None else checked[1])
        data = flavor.to_onnx(model, signature, check_columns)
        manifest["files"]["model.onnx"] = artifacts.put_bytes(data)[0]
        rows = len(next(iter(check_columns.values())))
        manifest["onnx"] = {"status": "ok", "checked_rows": rows, "parity": _parity(data)}
        manifest["requirements"]["onnxruntime"] = _package_version("onnxruntime")
    # a scikit-learn estimator pickled keeps its flavor: it is still scikit-learn's to convert
    pickled_sklearn = flavor.name == "python" and _is_sklearn(model)
    manifest["flavor"] = "sklearn" if pickled_sklearn else flavor.name
    _lock_environment(manifest, artifacts, pip_requirements)
    digest = artifacts.put_bytes(json.dumps(manifest, sort_keys=True).encode())[0]
    return manifest["flavor"], digest, signature, manifest


def _record_outputs(
    flavor: Flavor,
    files: Mapping[str, Path],
    manifest: dict[str, Any],
    signature: Signature,
    reloaded: Any = None,
) -> None:
    """The saved model's own outputs on the example's first rows (`flavors.reference`),
    from the files just written: what `load_model` compares with in another environment.
    `reloaded`: those files already loaded (by `verify_saved`), not loaded a second time."""
    if flavor.name not in COMPARED:
        return
    try:  # the object this process saved a moment ago: trusted
        predictor = (
            reloaded
            if reloaded is not None
            else flavor.load(files, manifest, signature, trusted=True)
        )
        manifest["example_outputs"] = record(
            predictor, signature, manifest["input_example"], bool(manifest.get("has_proba"))
        )
    except Exception:  # an optional check: logging the model does not depend on it
        log.warning("recording the example's outputs failed; not compared at load", exc_info=True)


def _lock_environment(
    manifest: dict[str, Any], artifacts: LocalArtifactStore, declared: Iterable[str]
) -> None:
    """Record the package versions the model needs, in the manifest and as requirements.txt."""
    from shipyard.flavors.environment import lock

    if isinstance(declared, str):
        declared = [declared]
    env = lock(manifest.get("requirements") or {}, manifest.pop("imports", ()), declared)
    manifest["environment"] = env.to_dict()
    manifest["files"]["requirements.txt"] = artifacts.put_bytes(env.requirements_txt().encode())[0]


def _signature(
    flavor: Flavor, model: Any, example: Any, allow_missing: bool | Iterable[str]
) -> Signature:
    """The example's signature, taking missing values where `save_model` says. A flavor that
    knows its model's input names and shapes (`tensor_inputs`) names a tensor signature's
    inputs and checks the example against them."""
    declared = getattr(flavor, "tensor_inputs", None)
    inputs = declared(model) if declared is not None else None
    signature = infer_signature(example, list(inputs) if inputs else None)
    if inputs and signature.kind == "tensors":
        from shipyard.flavors.tensors import agree_with_model

        signature = agree_with_model(signature, inputs)  # type: ignore[arg-type]
    if allow_missing is True or flavor.takes_missing(model):
        return signature.allowing_missing(True)
    named = [allow_missing] if isinstance(allow_missing, str) else list(allow_missing or ())
    return signature.allowing_missing({*named, *missing_columns(example)})


def _check_missing_handled(
    flavor: Flavor, model: Any, signature: Signature, example: Mapping[str, Any]
) -> None:
    """A model told to take missing values it does not declare it handles is tried on the
    example with those columns missing: one that fails or answers NaN is refused now, not
    served answering null."""
    import numpy as np

    taken = [c for c in signature.inputs if c.missing]
    if not taken or flavor.takes_missing(model) or flavor.name == "python_model":
        return
    if not callable(getattr(model, "predict", None)):
        return
    rows = len(next(iter(example.values())))
    holed = dict(example)
    for c in taken:
        # what a request's null becomes: NaN in a number or true/false column (float64)
        holed[c.name] = np.full(rows, np.nan) if c.dtype != "string" else [None] * rows
    names = ", ".join(repr(c.name) for c in taken)
    try:
        out = np.asarray(model.predict(signature.to_model_input(holed)))
    except Exception as exc:  # the model's own error says why
        raise InvalidArgumentError(
            f"allow_missing: the model fails on a missing value in {names} "
            f"({type(exc).__name__}: {exc}); put an imputer in front of it or drop allow_missing",
            field="allow_missing",
        ) from exc
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        raise InvalidArgumentError(
            f"allow_missing: the model answers NaN when {names} is missing; put an imputer in "
            "front of it or drop allow_missing",
            field="allow_missing",
        )


def convertible(manifest: Mapping[str, Any]) -> bool:
    """Whether a saved model has a converter to ONNX (never a pickled one: converting loads it)."""
    if manifest.get("serialization") == "pickle" or manifest.get("flavor") == "python":
        return False
    try:
        return flavor_named(str(manifest.get("flavor"))).converts
    except ModelLoadError:
        return False


def convert_saved(artifacts: LocalArtifactStore, digest: str) -> bytes:
    """Convert a saved model to ONNX, checked on its stored input example (and its stored
    `parity_rows`, from the reference data). Works from the
    saved (immutable) artifact, never from a live object that may have changed since."""
    manifest = read_manifest(artifacts, digest)
    if not convertible(manifest):
        raise ConversionError(
            f"{manifest.get('flavor')} models saved with {manifest.get('serialization')} are "
            "not converted to ONNX"
        )
    signature = Signature.from_dict(manifest["signature"])
    native = load_model(artifacts, digest, backend="python")
    columns = parity_rows.joined(
        signature.example_columns(manifest["input_example"]),
        parity_rows.load(signature, manifest, artifacts),
    )
    flavor = flavor_named(manifest["flavor"])
    # what the flavor converts: the predictor itself where the bare model lacks what the
    # manifest adds (a LightGBM booster's classes), else the model it calls
    model = getattr(native.predictor, "convertible", None) or native.predictor.model  # type: ignore[attr-defined]
    return flavor.to_onnx(model, signature, columns)


def read_manifest(artifacts: LocalArtifactStore, digest: str) -> dict[str, Any]:
    return json.loads(artifacts.get_bytes(digest))  # type: ignore[no-any-return]


def load_model(
    artifacts: LocalArtifactStore,
    digest: str,
    *,
    trusted: bool = False,
    backend: Literal["auto", "onnx", "python"] = "auto",
    onnx_digest: str | None = None,
    ignore_env: bool = False,
    what: str = "this model",
) -> LoadedModel:
    """Load a saved model by its manifest digest, verifying every file. `onnx_digest` names a
    verified ONNX conversion made after registration (the registry records it); "python" is
    the framework's own runtime. The environment is checked against the model's lock first
    (`environment.check`: a framework's other major version refuses unless `ignore_env`)."""
    manifest = read_manifest(artifacts, digest)
    signature = Signature.from_dict(manifest["signature"])
    files: dict[str, str] = manifest["files"]
    flavor = manifest["flavor"]
    onnx_file = files.get("model.onnx") or onnx_digest
    differences = check_environment(
        manifest, onnx=bool(onnx_file) and backend != "python", ignore_env=ignore_env, what=what
    )
    if onnx_file and backend in ("auto", "onnx"):
        from shipyard.flavors.onnx import OnnxPredictor

        predictor: Any = OnnxPredictor.from_bytes(artifacts.get_bytes(onnx_file), signature)
        return LoadedModel(predictor, signature, flavor, manifest=manifest)
    if backend == "onnx":
        raise InvalidArgumentError("this model has no ONNX file; load it with backend='auto'")
    local = {name: artifacts.local_path(d) for name, d in files.items()}
    predictor = flavor_named(flavor).load(local, manifest, signature, trusted=trusted)
    if differences and flavor in COMPARED:  # another version may answer otherwise: compare
        compare(predictor, signature, manifest, differences, ignore_env=ignore_env, what=what)
    return LoadedModel(predictor, signature, flavor, manifest=manifest)


def check_environment(
    manifest: Mapping[str, Any],
    *,
    onnx: bool,
    ignore_env: bool,
    what: str = "this model",
    warn: bool = True,
) -> list[Any]:
    """Compare a saved model's lock with the running environment (warn, or refuse a
    framework's other major version unless `ignore_env`). Served through ONNX, the framework
    that must match is onnxruntime, not the one it was trained with."""
    from shipyard.flavors.environment import Environment, check

    env = Environment.from_manifest(manifest)
    strict = ["onnxruntime"] if onnx else None
    return check(env, ignore_env=ignore_env, strict=strict, what=what, warn=warn)


def _is_python_model(model: Any) -> bool:
    from shipyard.flavors.python_model import is_python_model

    return is_python_model(model)


def _is_sklearn(model: Any) -> bool:
    from shipyard.flavors.sklearn import is_sklearn

    return is_sklearn(model)


def _parity(data: bytes) -> str | None:
    from shipyard.flavors.tree_onnx import parity_of

    return parity_of(data)


def _package_version(dist: str) -> str | None:
    from shipyard.flavors.sklearn import package_version

    return package_version(dist)


__all__ = [
    "FLAVORS",
    "Flavor",
    "LoadedModel",
    "Signature",
    "infer_signature",
    "load_model",
    "read_manifest",
    "save_model",
]
