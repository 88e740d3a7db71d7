"""XGBoost models: a native `xgboost.Booster` and the scikit-learn wrappers (XGBClassifier,
XGBRegressor and their random-forest variants), saved in XGBoost's own UBJSON format — data
only, never pickle — so they load without `trusted=True`. The wrapper's own `load_model`
rebuilds it (classes, objective), so a loaded classifier answers like the one logged."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ConversionError, InvalidArgumentError, MissingDependencyError
from shipyard.flavors.base import Saved

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from shipyard.flavors.signature import Signature

FILE = "model.ubj"
# the classes `load` may rebuild, by the name the manifest records: never a name from the file
WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor")
BOOSTER = "Booster"


def import_xgboost() -> Any:
    try:
        import xgboost
    except ImportError as exc:
        raise MissingDependencyError(
            "XGBoost models need xgboost: pip install 'shipyard[xgboost]'"
        ) from exc
    return xgboost


def xgboost_requirements() -> dict[str, str | None]:
    """The installed distribution that provides `xgboost` (xgboost, or xgboost-cpu)."""
    from shipyard.flavors.sklearn import package_version

    for dist in ("xgboost", "xgboost-cpu"):
        found = package_version(dist)
        if found is not None:
            return {dist: found}
    return {"xgboost": None}


def kind_of(model: Any) -> str | None:
    """ "Booster", a wrapper's name in WRAPPERS, or None when it is not a model this flavor
    saves. Looks at the type's module and names only (never imports xgboost)."""
    for cls in type(model).__mro__:
        if cls.__module__.split(".")[0] != "xgboost":
            continue
        if cls.__name__ == BOOSTER or cls.__name__ in WRAPPERS:
            return cls.__name__
    return None


class BoosterPredictor:
    """A native Booster: its own `predict` on a DMatrix (what the library answers)."""

    backend = "python"

    def __init__(self, model: Any, signature: Signature) -> None:
        self.model = model
        self.signature = signature

    def predict_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np
        import xgboost

        categorical = bool(self.signature.categorical)  # category columns: as the model saw
        data = xgboost.DMatrix(
            self.signature.to_model_input(columns), enable_categorical=categorical
        )
        return np.asarray(self.model.predict(data))

    def predict_proba_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray | None:
        return None


class XGBoostFlavor:
    name = "xgboost"
    converts = True

    def owns(self, model: Any) -> bool:
        return type(model).__module__.split(".")[0] == "xgboost"

    def takes_missing(self, model: Any) -> bool:
        return True  # NaN is XGBoost's own missing value, routed by every split

    def save(self, model: Any, folder: Path, signature: Signature) -> Saved:
        kind = kind_of(model)
        if kind is None:
            raise InvalidArgumentError(
                f"shipyard saves XGBoost's Booster and {', '.join(WRAPPERS)}, not "
                f"{type(model).__name__}"
            )
        if kind != BOOSTER and callable(getattr(model, "objective", None)):
            raise InvalidArgumentError(
                "an XGBoost model trained with a Python objective function cannot be saved "
                "without pickle; train it with a built-in objective"
            )
        path = folder / FILE
        model.save_model(str(path))  # the wrapper adds its own attributes (classes, params)
        doc: dict[str, Any] = {
            "serialization": "ubjson",
            "xgboost_class": kind,
            "requirements": xgboost_requirements(),
            "has_proba": kind != BOOSTER and hasattr(model, "predict_proba"),
        }
        if doc["has_proba"]:
            doc["classes"] = [c.item() if hasattr(c, "item") else c for c in model.classes_]
        return Saved({FILE: path}, doc)

    def load(
        self,
        files: Mapping[str, Path],
        manifest: Mapping[str, Any],
        signature: Signature,
        *,
        trusted: bool,
    ) -> Any:
        from shipyard.flavors.booster_guard import load_xgboost
        from shipyard.flavors.sklearn import NativePredictor

        xgboost = import_xgboost()
        kind = manifest.get("xgboost_class")
        if kind != BOOSTER and kind not in WRAPPERS:
            raise InvalidArgumentError(f"unknown XGBoost model class {kind!r} in the manifest")
        model = getattr(xgboost, str(kind))()
        load_xgboost(model, files[FILE])  # checked by shipyard before XGBoost parses it
        if kind == BOOSTER:
            return BoosterPredictor(model, signature)
        return NativePredictor(model, signature)

    def to_onnx(
        self, model: Any, signature: Signature, example_columns: Mapping[str, np.ndarray]
    ) -> bytes:
        from shipyard.flavors.tree_onnx import convert_checked

        if kind_of(model) == BOOSTER:
            predictor: Any = BoosterPredictor(model, signature)
        else:
            from shipyard.flavors.sklearn import NativePredictor

            predictor = NativePredictor(model, signature)
        expected = predictor.predict_columns(example_columns)
        proba = predictor.predict_proba_columns(example_columns)
        # XGBoost itself compares float32 features with float32 thresholds: the float
        # conversion is the faithful one
        return convert_checked(
            model,
            _convert,
            expected,
            proba,
            signature,
            example_columns,
            what=f"XGBoost {kind_of(model)}",
            extra="xgboost",
            dtypes=("float",),
        )


def _convert(model: Any, dtype: str, n_features: int) -> Any:
    from onnxmltools import convert_xgboost

    from shipyard.flavors.tree_onnx import TARGET_OPSET, onnxmltools_types

    float_type, _ = onnxmltools_types()
    if dtype != "float":
        raise ConversionError("onnxmltools converts XGBoost models with float inputs only")
    return convert_xgboost(
        _unnamed(model),
        initial_types=[("input", float_type([None, n_features]))],
        target_opset=TARGET_OPSET,
    )


def _unnamed(model: Any) -> Any:
    """A copy of `model` whose features have no names: onnxmltools finds features by position
    ("f0", "f1", …), and the signature already puts the columns in the training order."""
    import tempfile

    xgboost = import_xgboost()
    kind = str(kind_of(model))
    with tempfile.TemporaryDirectory(prefix="shipyard-xgb-") as tmp:
        path = str(Path(tmp) / FILE)
        model.save_model(path)
        clone = getattr(xgboost, kind)()
        clone.load_model(path)
    booster = clone if kind == BOOSTER else clone.get_booster()
    booster.feature_names = None
    booster.feature_types = None
    return clone


XGBOOST = XGBoostFlavor()
