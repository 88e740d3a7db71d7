"""scikit-learn pipelines with XGBoost or LightGBM steps: the booster steps are saved in their
library's own format, the rest of the pipeline through skops.

skops cannot rebuild an XGBoost or LightGBM estimator without trusting its types (it would
call the library's unpickling code), so the pipeline skops writes holds "passthrough" where a
booster step was, and the manifest's `native_steps` say which step each booster file fills
back in after loading. Only a pipeline's own steps are split off this way; a booster nested
deeper (inside a ColumnTransformer, a VotingClassifier, a calibrator) stays in the skops file
and loads only with `trusted=True`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from shipyard.flavors.base import Flavor
    from shipyard.flavors.signature import Signature

BOOSTER_FLAVORS = ("xgboost", "lightgbm")


def _booster_flavor(step: Any) -> Flavor | None:
    from shipyard.flavors import flavor_named

    for name in BOOSTER_FLAVORS:
        flavor = flavor_named(name)
        if flavor.owns(step):
            return flavor
    return None


def booster_steps(model: Any) -> list[str]:
    """The flavors of a pipeline's booster steps (live or loaded), in step order."""
    from shipyard.flavors.lightgbm import BoosterPredictor

    steps = getattr(model, "steps", None)
    if not isinstance(steps, list):
        return []
    found = []
    for step in steps:
        est = step[1] if isinstance(step, tuple) else None
        flavor = _booster_flavor(est)
        if flavor is not None:
            found.append(flavor.name)
        elif isinstance(getattr(est, "predictor", None), BoosterPredictor):
            found.append("lightgbm")
    return found


def split_boosters(
    model: Any, folder: Path, signature: Signature
) -> tuple[Any, dict[str, Path], dict[str, Any]]:
    """(the model skops saves, the booster steps' files, what the manifest says about them).
    A model without booster steps comes back as it is, with nothing else."""
    steps = getattr(model, "steps", None)
    if not isinstance(steps, list):
        return model, {}, {}
    files: dict[str, Path] = {}
    native: list[dict[str, Any]] = []
    requirements: dict[str, Any] = {}
    kept = list(steps)
    for index, (name, step) in enumerate(steps):
        flavor = _booster_flavor(step)
        if flavor is None:
            continue
        where = folder / f"step{index}"
        where.mkdir()
        saved = flavor.save(step, where, signature)
        prefixed = {f"step{index}.{file}": path for file, path in saved.files.items()}
        files.update(prefixed)
        requirements.update(saved.manifest.get("requirements", {}))
        native.append(
            {
                "index": index,
                "name": name,
                "flavor": flavor.name,
                "files": {file: f"step{index}.{file}" for file in saved.files},
                "manifest": saved.manifest,
            }
        )
        kept[index] = (name, "passthrough")
    if not native:
        return model, {}, {}
    shell = copy.copy(model)  # shares the other steps, which skops only reads
    shell.steps = kept
    return shell, files, {"native_steps": native, "requirements": requirements}


def restore_boosters(
    model: Any,
    files: Mapping[str, Path],
    manifest: Mapping[str, Any],
    signature: Signature,
) -> Any:
    """Put the booster steps a pipeline was saved without back in their places."""
    from shipyard.errors import ModelLoadError
    from shipyard.flavors import flavor_named

    for spec in manifest.get("native_steps", ()):
        index, name, flavor_name = spec["index"], spec["name"], spec["flavor"]
        if flavor_name not in BOOSTER_FLAVORS or not isinstance(model.steps[index], tuple):
            raise ModelLoadError(f"the manifest's step {index} ({flavor_name}) is not loadable")
        if model.steps[index] != (name, "passthrough"):
            raise ModelLoadError(f"the saved pipeline has no empty step {name!r} at {index}")
        step_files = {file: files[stored] for file, stored in spec["files"].items()}
        predictor = flavor_named(flavor_name).load(
            step_files, spec["manifest"], signature, trusted=False
        )
        model.steps[index] = (name, _as_step(predictor))
    return model


def _as_step(predictor: Any) -> Any:
    """The estimator a pipeline calls: XGBoost's wrapper itself, or a LightGBM booster in
    the shape of its wrapper."""
    from shipyard.flavors.lightgbm import BoosterPredictor

    if not isinstance(predictor, BoosterPredictor):
        return predictor.model
    from sklearn.base import BaseEstimator, ClassifierMixin

    class LightGBMStep(BaseEstimator):  # type: ignore[misc]
        """A loaded LightGBM booster as a fitted pipeline step: `predict` on the matrix the
        steps before it produce."""

        def __init__(self, predictor: BoosterPredictor) -> None:
            self.predictor = predictor

        def __sklearn_is_fitted__(self) -> bool:
            return True

        def fit(self, *args: Any, **kwargs: Any) -> LightGBMStep:
            raise TypeError("a loaded LightGBM step cannot be refitted; refit the original")

        def predict(self, x: Any) -> np.ndarray:
            return self.predictor.predict_matrix(x)

    class LightGBMClassifierStep(ClassifierMixin, LightGBMStep):  # type: ignore[misc]
        """… and `predict_proba`, `classes_` for a classifier."""

        def __init__(self, predictor: BoosterPredictor) -> None:
            super().__init__(predictor)
            import numpy as np

            self.classes_ = np.asarray(predictor.classes)

        def predict_proba(self, x: Any) -> np.ndarray:
            return self.predictor.proba_matrix(x)

    if predictor.classes is None:
        return LightGBMStep(predictor)
    return LightGBMClassifierStep(predictor)
