"""Fewer trees for a boosted ensemble (XGBoost, LightGBM), chosen by the validation curve.

The rule: the held-out metric is computed for the first k boosting rounds (every k up to
CURVE_POINTS rounds, else CURVE_POINTS counts spread evenly), and the smallest k whose metric is
within `tolerance` of the full model's is kept — ROC AUC for a binary classifier, accuracy for
one of more classes, R² for a regressor (higher is better for all three; `tolerance` is
absolute). The pruned model is the library's own: XGBoost's booster sliced to k rounds,
LightGBM's model text cut at k iterations; saved as a normal model of its flavor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shipyard.flavors import LoadedModel

CURVE_POINTS = 100
DEFAULT_TOLERANCE = 0.005
PRUNABLE = ("xgboost", "lightgbm")

Outputs = Callable[[int], tuple[Any, Any]]  # rounds → (predictions, probabilities or None)


def prune(
    native: LoadedModel, X: pd.DataFrame, y: np.ndarray, *, tolerance: float, what: str
) -> tuple[Any, dict[str, Any]]:
    """The pruned model (of `native`'s flavor, loaded with its own runtime) and the curve."""
    if native.flavor not in PRUNABLE:
        raise InvalidArgumentError(
            f"--prune works on boosted trees ({', '.join(PRUNABLE)}) and PyTorch MLPs; "
            f"{what} is a {native.flavor} model; try --distill",
            field="technique",
        )
    if not 0 <= tolerance < 1:
        raise InvalidArgumentError("tolerance is in [0, 1)", field="tolerance")
    matrix = native.signature.to_model_input(native.signature.check_frame(X))
    if native.flavor == "xgboost":
        rounds, outputs, cut = _xgboost(native, matrix)
    else:
        rounds, outputs, cut = _lightgbm(native, matrix)
    metric, score = _scorer(native, y)
    curve = {k: score(*outputs(k)) for k in _grid(rounds)}
    full = curve[rounds]
    kept = min(k for k, v in curve.items() if v >= full - tolerance)
    if kept == rounds:
        raise InvalidArgumentError(
            f"pruning {what} keeps all its {rounds} rounds: every smaller count loses more "
            f"than {tolerance:g} {metric} on the held-out data; raise --tolerance",
            field="tolerance",
        )
    details = {
        "rounds_before": rounds,
        "rounds_after": kept,
        "tolerance": tolerance,
        "curve_metric": metric,
        "curve_full": full,
        "curve_kept": curve[kept],
        "rule": f"smallest rounds with {metric} >= full model's - tolerance",
    }
    return cut(kept), details


def _xgboost(native: LoadedModel, matrix: Any) -> tuple[int, Outputs, Callable[[int], Any]]:
    import xgboost

    model = native.predictor.model  # type: ignore[attr-defined]
    booster = model if isinstance(model, xgboost.Booster) else model.get_booster()
    rounds = booster.num_boosted_rounds()
    data = xgboost.DMatrix(matrix)

    def outputs(k: int) -> tuple[Any, Any]:
        if native.has_proba:
            return None, model.predict_proba(matrix, iteration_range=(0, k))
        return booster.predict(data, iteration_range=(0, k)), None

    def cut(k: int) -> Any:
        try:
            sliced = booster[0:k]
        except Exception as exc:  # XGBoostError: a linear booster has no rounds to cut
            raise InvalidArgumentError(
                f"XGBoost cannot slice this booster ({exc}); only tree boosters are pruned",
                field="technique",
            ) from exc
        if model is booster:
            return sliced
        wrapper = type(model)()  # the wrapper rebuilds itself from the booster (classes…)
        wrapper.load_model(bytearray(sliced.save_raw("ubj")))
        return wrapper

    return rounds, outputs, cut


def _lightgbm(native: LoadedModel, matrix: Any) -> tuple[int, Outputs, Callable[[int], Any]]:
    import lightgbm

    from shipyard.flavors.lightgbm import BoosterPredictor

    predictor = native.predictor
    assert isinstance(predictor, BoosterPredictor)
    booster = predictor.model
    rounds = int(booster.current_iteration())

    def outputs(k: int) -> tuple[Any, Any]:
        raw = booster.predict(matrix, num_iteration=k)
        if predictor.classes is None:
            return raw, None
        import numpy as np

        return None, np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw

    def cut(k: int) -> Any:
        text = booster.model_to_string(num_iteration=k)
        return BoosterPredictor(
            lightgbm.Booster(model_str=text), native.signature, predictor.classes
        )

    return rounds, outputs, cut


def _scorer(native: LoadedModel, y: np.ndarray) -> tuple[str, Callable[[Any, Any], float]]:
    import numpy as np
    from sklearn import metrics as m

    classes = native.classes
    if native.has_proba and classes is not None:
        if len(classes) == 2 and len(np.unique(y)) == 2:
            positive = y == classes[1]
            return "roc_auc", lambda _p, proba: float(m.roc_auc_score(positive, proba[:, 1]))
        labels = np.asarray(classes)
        return "accuracy", lambda _p, proba: float(
            m.accuracy_score(y, labels[np.argmax(proba, axis=1)])
        )
    return "r2", lambda pred, _p: float(m.r2_score(y, np.asarray(pred, dtype=float)))


def _grid(rounds: int) -> list[int]:
    if rounds <= CURVE_POINTS:
        return list(range(1, rounds + 1))
    import numpy as np

    return sorted({int(k) for k in np.linspace(1, rounds, CURVE_POINTS).round()} | {rounds})
