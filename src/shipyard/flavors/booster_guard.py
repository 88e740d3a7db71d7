"""Where XGBoost and LightGBM models meet their native libraries: a saved file is checked by
`booster_checks` / `lightgbm_checks` before it is handed over, and a model being saved is
reloaded from its own saved file and must predict like the live object on the input example.

The second catches what a type check cannot: `owns` looks at a class's module and name, so
a look-alike class (`__module__ = "lightgbm.fake"`, named Booster) would otherwise store any
bytes it likes as a "LightGBM model"; those bytes now have to pass the checks and answer as
the object that wrote them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, ModelLoadError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import numpy as np

    from shipyard.flavors.base import Flavor, Saved
    from shipyard.flavors.signature import Signature

CHECKED_FLAVORS = ("xgboost", "lightgbm")


def load_xgboost(model: Any, path: Path) -> None:
    """Load `model` (an empty Booster or wrapper) from a saved file, checked first."""
    from shipyard.flavors.booster_checks import BadBooster, checked_xgboost_model

    try:
        data = checked_xgboost_model(path.read_bytes())
    except BadBooster as exc:
        raise BadBooster(f"not a readable XGBoost model: {exc.message}") from exc
    try:
        model.load_model(bytearray(data))
    except Exception as exc:  # XGBoostError, with a C++ backtrace after its first line
        raise ModelLoadError(f"not a readable XGBoost model: {_first_line(exc)}") from exc


def load_lightgbm(lightgbm: Any, path: Path) -> Any:
    """A LightGBM Booster from a saved text model, checked (and rebuilt) first."""
    from shipyard.flavors.booster_checks import BadBooster
    from shipyard.flavors.lightgbm_checks import checked_lightgbm_text

    try:
        checked = checked_lightgbm_text(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BadBooster(f"not a readable LightGBM model: {exc}") from exc
    except BadBooster as exc:
        raise BadBooster(f"not a readable LightGBM model: {exc.message}") from exc
    try:
        return lightgbm.Booster(model_str=checked)
    except Exception as exc:  # LightGBMError on what the checks let through
        raise ModelLoadError(f"not a readable LightGBM model: {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def verify_saved(
    flavor: Flavor,
    model: Any,
    saved: Saved,
    signature: Signature,
    example: Mapping[str, np.ndarray],
) -> Any:
    """Reload a just-saved booster through the checks and the real library and compare its
    predictions on the example with the live model's; InvalidArgumentError if either fails.
    Returns the reloaded predictor (None for a flavor not checked here), which answers for
    the saved file: the caller records its outputs without loading the file again."""
    import numpy as np

    if flavor.name not in CHECKED_FLAVORS:
        return None
    what = f"this {flavor.name} model"
    try:
        reloaded = flavor.load(saved.files, saved.manifest, signature, trusted=False)
        again = np.asarray(reloaded.predict_columns(example))
    except ModelLoadError as exc:
        raise InvalidArgumentError(
            f"{what} saves a file shipyard refuses to load: {exc.message}", field="model"
        ) from exc
    live = np.asarray(_live_predictor(flavor.name, model, signature).predict_columns(example))
    same = live.shape == again.shape and (
        np.allclose(live, again, rtol=1e-5, atol=1e-6, equal_nan=True)
        if live.dtype.kind in "fiub" and again.dtype.kind in "fiub"
        else bool(np.array_equal(live, again))
    )
    if not same:
        raise InvalidArgumentError(
            f"{what} ({type(model).__module__}.{type(model).__qualname__}) does not predict "
            "like the file it saves, reloaded by the library: shipyard stores only models "
            f"the library itself answers for (pass a real {flavor.name} model)",
            field="model",
        )
    return reloaded


def _live_predictor(flavor: str, model: Any, signature: Signature) -> Any:
    if flavor == "lightgbm":
        from shipyard.flavors.lightgbm import _predictor_of

        return _predictor_of(model, signature)
    from shipyard.flavors.xgboost import BOOSTER, BoosterPredictor, kind_of

    if kind_of(model) == BOOSTER:
        return BoosterPredictor(model, signature)
    from shipyard.flavors.sklearn import NativePredictor

    return NativePredictor(model, signature)
