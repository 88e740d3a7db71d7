"""LightGBM models: a native `lightgbm.Booster` and the scikit-learn wrappers (LGBMClassifier,
LGBMRegressor), saved as LightGBM's own text model — data only, never pickle — so they load
without `trusted=True`.

The text model has no wrapper: a classifier's classes (LightGBM encodes any labels as 0…k-1)
are kept in the manifest, and `BoosterPredictor` answers as the wrapper does — probabilities
from the booster (one column per class), the label of the most probable class."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ConversionError, InvalidArgumentError, MissingDependencyError
from shipyard.flavors.base import Saved

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from shipyard.flavors.signature import Signature

FILE = "model.txt"
CLASSIFIERS = ("LGBMClassifier",)
REGRESSORS = ("LGBMRegressor",)
BOOSTER = "Booster"


def import_lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError as exc:
        raise MissingDependencyError(
            "LightGBM models need lightgbm: pip install 'shipyard[lightgbm]'"
        ) from exc
    return lightgbm


def kind_of(model: Any) -> str | None:
    """ "Booster", a wrapper's name, or None. Looks at type names only (no import)."""
    for cls in type(model).__mro__:
        if cls.__module__.split(".")[0] == "lightgbm" and cls.__name__ in (
            BOOSTER,
            *CLASSIFIERS,
            *REGRESSORS,
        ):
            return cls.__name__
    return None


class BoosterPredictor:
    """A LightGBM Booster answering as its wrapper would: `classes` set → a classifier."""

    backend = "python"

    def __init__(self, model: Any, signature: Signature, classes: list[Any] | None) -> None:
        self.model = model
        self.signature = signature
        self.classes = classes

    @property
    def convertible(self) -> BoosterPredictor:
        """What `to_onnx` takes from a loaded model: the booster with its classes."""
        return self

    def predict_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.predict_matrix(self.signature.to_model_input(columns))

    def predict_proba_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray | None:
        if self.classes is None:
            return None
        return self.proba_matrix(self.signature.to_model_input(columns))

    def predict_matrix(self, x: Any) -> np.ndarray:
        """The booster's answer on a table or matrix, as its wrapper gives it."""
        import numpy as np

        if self.classes is None:
            return np.asarray(self.model.predict(x))
        labels: np.ndarray = np.asarray(self.classes)[np.argmax(self.proba_matrix(x), axis=1)]
        return labels

    def proba_matrix(self, x: Any) -> np.ndarray:
        import numpy as np

        out = np.asarray(self.model.predict(x))
        if out.ndim == 1:  # binary: the probability of the second class
            return np.column_stack([1.0 - out, out])
        return out


class LightGBMFlavor:
    name = "lightgbm"
    converts = True

    def owns(self, model: Any) -> bool:
        # a BoosterPredictor: a booster with its classes (a loaded or pruned model)
        return type(model).__module__.split(".")[0] == "lightgbm" or isinstance(
            model, BoosterPredictor
        )

    def takes_missing(self, model: Any) -> bool:
        return True  # LightGBM routes NaN at every split (use_missing, on by default)

    def save(self, model: Any, folder: Path, signature: Signature) -> Saved:
        from shipyard.flavors.sklearn import package_version

        if isinstance(model, BoosterPredictor):
            return _save_booster(model, folder)
        kind = kind_of(model)
        if kind is None:
            raise InvalidArgumentError(
                f"shipyard saves LightGBM's Booster, LGBMClassifier and LGBMRegressor, not "
                f"{type(model).__name__}"
            )
        if kind != BOOSTER and callable(getattr(model, "objective", None)):
            raise InvalidArgumentError(
                "a LightGBM model trained with a Python objective function cannot be saved "
                "without pickle (its predictions are raw scores); use a built-in objective"
            )
        booster = model if kind == BOOSTER else model.booster_
        path = folder / FILE
        path.write_text(booster.model_to_string(), encoding="utf-8")
        doc: dict[str, Any] = {
            "serialization": "lightgbm-text",
            "lightgbm_class": kind,
            "requirements": {"lightgbm": package_version("lightgbm")},
            "has_proba": kind in CLASSIFIERS,
        }
        if kind in CLASSIFIERS:
            doc["classes"] = _plain(model.classes_)
        return Saved({FILE: path}, doc)

    def load(
        self,
        files: Mapping[str, Path],
        manifest: Mapping[str, Any],
        signature: Signature,
        *,
        trusted: bool,
    ) -> BoosterPredictor:
        from shipyard.flavors.booster_guard import load_lightgbm

        # checked (and rebuilt) by shipyard before LightGBM parses it
        booster = load_lightgbm(import_lightgbm(), files[FILE])
        classes = manifest.get("classes") if manifest.get("has_proba") else None
        return BoosterPredictor(booster, signature, None if classes is None else list(classes))

    def to_onnx(
        self, model: Any, signature: Signature, example_columns: Mapping[str, np.ndarray]
    ) -> bytes:
        from shipyard.flavors.lightgbm_onnx import double_first
        from shipyard.flavors.tree_onnx import convert_checked

        predictor = _predictor_of(model, signature)
        classes = predictor.classes
        if classes is not None and classes != list(range(len(classes))):
            raise ConversionError(
                f"a LightGBM classifier with classes {classes[:5]} is served by LightGBM: "
                "its ONNX conversion answers class indices 0…k-1, not the labels"
            )
        expected = predictor.predict_columns(example_columns)
        proba = predictor.predict_proba_columns(example_columns)
        return convert_checked(
            predictor.model,
            _convert if classes is None else double_first(classes, _convert),
            expected,
            proba,
            signature,
            example_columns,
            what="LightGBM classifier" if classes is not None else "LightGBM model",
            extra="lightgbm",
        )


def _save_booster(model: BoosterPredictor, folder: Path) -> Saved:
    """A booster with its classes, saved as its wrapper would be (what `load` rebuilds)."""
    from shipyard.flavors.sklearn import package_version

    path = folder / FILE
    path.write_text(model.model.model_to_string(), encoding="utf-8")
    classifier = model.classes is not None
    doc: dict[str, Any] = {
        "serialization": "lightgbm-text",
        "lightgbm_class": CLASSIFIERS[0] if classifier else BOOSTER,
        "requirements": {"lightgbm": package_version("lightgbm")},
        "has_proba": classifier,
    }
    if classifier:
        doc["classes"] = _plain(model.classes or [])
    return Saved({FILE: path}, doc)


def _predictor_of(model: Any, signature: Signature) -> BoosterPredictor:
    """The predictor of a live model (a loaded one's is rebuilt from its manifest)."""
    if isinstance(model, BoosterPredictor):
        return model
    kind = kind_of(model)
    if kind == BOOSTER:
        return BoosterPredictor(model, signature, None)
    classes = _plain(model.classes_) if kind in CLASSIFIERS else None
    return BoosterPredictor(model.booster_, signature, classes)


def _plain(classes: Any) -> list[Any]:
    """Class labels as JSON values (numpy scalars → Python)."""
    return [c.item() if hasattr(c, "item") else c for c in classes]


def _convert(booster: Any, dtype: str, n_features: int) -> Any:
    from onnxmltools import convert_lightgbm

    from shipyard.flavors.tree_onnx import TARGET_OPSET, onnxmltools_types

    float_type, double_type = onnxmltools_types()
    tensor = double_type if dtype == "double" else float_type
    return convert_lightgbm(
        booster,
        initial_types=[("input", tensor([None, n_features]))],
        target_opset=TARGET_OPSET,
        zipmap=False,
    )


LIGHTGBM = LightGBMFlavor()
