"""scikit-learn models, saved with skops (safe to load: no arbitrary code runs), and any
object with `predict()` saved with pickle (`serialization="pickle"`, flavor "python"), which
loads only when the caller says the source is trusted."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import (
    ConversionError,
    InvalidArgumentError,
    MissingDependencyError,
    UntrustedModelError,
)
from shipyard.flavors.base import Saved

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from shipyard.flavors.signature import Signature


def is_sklearn(model: Any) -> bool:
    return any(c.__module__.startswith("sklearn.") for c in type(model).__mro__)


def takes_missing(model: Any) -> bool:
    """Whether the estimator declares that it handles missing values itself (scikit-learn's
    public `allow_nan` input tag: gradient-boosted trees, imputers). A pipeline takes them when
    its first step does (an imputer in front). False when the tag cannot be read (before
    scikit-learn 1.6): the user then says so with `allow_missing`."""
    try:
        from sklearn.utils import get_tags
    except ImportError:
        return False
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[0], tuple):
        first = steps[0][1]
        return first not in (None, "passthrough") and takes_missing(first)
    try:
        return bool(get_tags(model).input_tags.allow_nan)
    except Exception:  # a third-party estimator with broken tags: it did not say
        return False


def save_skops(model: Any, path: Path) -> None:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise MissingDependencyError(
            "saving sklearn models needs skops: pip install skops"
        ) from exc
    sio.dump(model, path)


def load_skops(path: Path, *, trusted: bool) -> Any:
    """Load a skops file. Untrusted, only skops' default types and shipyard's reviewed list
    (`skops_trust.REVIEWED_TYPES`) are rebuilt; trees are checked index by index either way."""
    import skops.io as sio

    from shipyard.flavors import skops_checks, skops_trust

    skops_trust.check_archive(path)
    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a zip or schema skops cannot read: malformed, not a model
        raise UntrustedModelError(f"the model file is not a readable skops file: {exc}") from exc
    reviewed, unknown = skops_trust.split_types(found)
    if unknown and not trusted:
        nested = any(t.split(".")[0] in ("xgboost", "lightgbm") for t in unknown)
        raise UntrustedModelError(
            f"the model file contains types shipyard has not reviewed: {', '.join(unknown)}; "
            "load it with trusted=True (CLI: --trusted) only if you trust its source"
            + (
                " (an XGBoost/LightGBM model inside another estimator stays in the skops "
                "file; logged on its own or as a Pipeline step it is saved in its own format "
                "and loads untrusted)"
                if nested
                else ""
            )
        )
    model = sio.load(path, trusted=(found if trusted else reviewed) or None)
    skops_checks.check_loaded(model)
    return model


def save_pickle(model: Any, path: Path) -> None:
    import joblib

    joblib.dump(model, path)


def load_pickle(path: Path, *, trusted: bool) -> Any:
    if not trusted:
        raise UntrustedModelError(
            "this model is stored with pickle, which can run arbitrary code when loaded; "
            "pass trusted=True (CLI: --trusted) only if you trust its source"
        )
    import joblib

    return joblib.load(path)


class NativePredictor:
    """Calls the Python object itself: the fallback that always works."""

    backend = "python"

    def __init__(self, model: Any, signature: Signature) -> None:
        self.model = model
        self.signature = signature

    def predict_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        return np.asarray(self.model.predict(self.signature.to_model_input(columns)))

    def predict_proba_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray | None:
        if not hasattr(self.model, "predict_proba"):
            return None
        import numpy as np

        return np.asarray(self.model.predict_proba(self.signature.to_model_input(columns)))


def package_version(dist: str) -> str | None:
    """The installed version of a distribution, None when it is not installed."""
    try:
        return _version(dist)
    except PackageNotFoundError:
        return None


def _described(model: Any) -> dict[str, Any]:
    """What the manifest says about any estimator: probabilities, classes."""
    doc: dict[str, Any] = {"has_proba": hasattr(model, "predict_proba")}
    if hasattr(model, "classes_"):
        doc["classes"] = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    return doc


def _load_native(files: Mapping[str, Path], *, trusted: bool) -> Any:
    if "model.skops" in files:
        return load_skops(files["model.skops"], trusted=trusted)
    if "model.joblib" in files:
        return load_pickle(files["model.joblib"], trusted=trusted)
    raise InvalidArgumentError("the manifest names no loadable model file (model.skops, .joblib)")


class SklearnFlavor:
    """scikit-learn estimators and pipelines, in skops' format (or pickle when asked)."""

    name = "sklearn"
    converts = True

    def owns(self, model: Any) -> bool:
        return is_sklearn(model)

    def takes_missing(self, model: Any) -> bool:
        return takes_missing(model)

    def save(self, model: Any, folder: Path, signature: Signature) -> Saved:
        from shipyard.flavors.pipeline_steps import split_boosters

        # XGBoost/LightGBM steps go in their own format (skops would need them trusted)
        shell, step_files, steps_doc = split_boosters(model, folder, signature)
        path = folder / "model.skops"
        save_skops(shell, path)
        requirements = {
            "scikit-learn": package_version("scikit-learn"),
            **steps_doc.pop("requirements", {}),
        }
        return Saved(
            {path.name: path, **step_files},
            {
                "serialization": "skops",
                "requirements": {**requirements, "skops": package_version("skops")},
                **steps_doc,
                **_described(model),
            },
        )

    def load(
        self,
        files: Mapping[str, Path],
        manifest: Mapping[str, Any],
        signature: Signature,
        *,
        trusted: bool,
    ) -> NativePredictor:
        model = _load_native(files, trusted=trusted)
        if manifest.get("native_steps"):
            from shipyard.flavors.pipeline_steps import restore_boosters

            model = restore_boosters(model, files, manifest, signature)
        return NativePredictor(model, signature)

    def to_onnx(
        self, model: Any, signature: Signature, example_columns: Mapping[str, np.ndarray]
    ) -> bytes:
        from shipyard.flavors.onnx import convert_sklearn
        from shipyard.flavors.pipeline_steps import booster_steps

        if booster_steps(model):
            raise ConversionError(
                f"a pipeline with {' and '.join(booster_steps(model))} steps is served by "
                "its own runtime (skl2onnx does not convert them)"
            )
        return convert_sklearn(model, signature, example_columns)


class PickledFlavor(SklearnFlavor):
    """Any object with `predict()`, pickled with joblib: loads only when trusted. A
    scikit-learn estimator saved this way keeps the flavor "sklearn"."""

    name = "python"
    converts = False

    def owns(self, model: Any) -> bool:
        return callable(getattr(model, "predict", None))

    def takes_missing(self, model: Any) -> bool:
        return is_sklearn(model) and takes_missing(model)

    def save(self, model: Any, folder: Path, signature: Signature) -> Saved:
        path = folder / "model.joblib"
        save_pickle(model, path)
        return Saved(
            {path.name: path},
            {
                "serialization": "pickle",
                "requirements": {"scikit-learn": package_version("scikit-learn")},
                **_described(model),
            },
        )


SKLEARN = SklearnFlavor()
PICKLED = PickledFlavor()
