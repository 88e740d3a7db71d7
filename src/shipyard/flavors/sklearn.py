"""scikit-learn models, saved with skops (safe to load: no arbitrary code runs).

Pickle/joblib is accepted only when the caller says the source is trusted."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import MissingDependencyError, UntrustedModelError

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
        raise UntrustedModelError(
            f"the model file contains types shipyard has not reviewed: {', '.join(unknown)}; "
            "load it with trusted=True (CLI: --trusted) only if you trust its source"
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
