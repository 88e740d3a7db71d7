"""What every loaded model offers, whatever its flavor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import numpy as np

    from shipyard.flavors.signature import Signature


class Predictor(Protocol):
    """A backend: takes validated columns, returns predictions (and probabilities if it can)."""

    backend: str

    def predict_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def predict_proba_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray | None: ...


@dataclass
class Saved:
    """What a flavor wrote for one model: its files (name in the manifest → a local file the
    artifact store copies) and what the manifest says about it (serialization, requirements,
    has_proba, classes…)."""

    files: dict[str, Path]
    manifest: dict[str, Any] = field(default_factory=dict)


class Flavor(Protocol):
    """A model format (`flavors/<name>.py` defines one, `flavors/__init__.py` lists it).

    `owns` must not import the framework (it looks at the object's type); `save` writes the
    model into `folder` in the framework's own format; `load` rebuilds it from the files the
    manifest names — refusing, unless `trusted`, any format that can run code; `to_onnx` is the
    verified conversion (ConversionError when there is none or it disagrees).

    A flavor may also define `prepare(model, signature, example_columns)`: `save_model` calls
    it first and hands what it returns to `save` and `to_onnx` (PyTorch compiles the module to
    TorchScript there, checked on the example)."""

    name: str
    converts: bool  # whether `to_onnx` can convert this flavor's models

    def owns(self, model: Any) -> bool: ...

    def takes_missing(self, model: Any) -> bool: ...

    def save(self, model: Any, folder: Path, signature: Signature) -> Saved: ...

    def load(
        self,
        files: Mapping[str, Path],
        manifest: Mapping[str, Any],
        signature: Signature,
        *,
        trusted: bool,
    ) -> Predictor: ...

    def to_onnx(
        self, model: Any, signature: Signature, example_columns: Mapping[str, np.ndarray]
    ) -> bytes: ...


@dataclass
class LoadedModel:
    """A model as `shipyard.load_model` returns it.

    >>> model = shipyard.load_model("models:/churn@champion")
    >>> model.predict(df)            # numpy array of predictions
    >>> model.predict_proba(df)      # class probabilities, when the model has them
    """

    predictor: Predictor
    signature: Signature
    flavor: str
    name: str | None = None
    version: int | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return self.predictor.backend

    @property
    def has_proba(self) -> bool:
        if self.manifest.get("described_at_load"):  # saved unloaded (an MLflow pickle)
            return callable(getattr(self._native, "predict_proba", None))
        return bool(self.manifest.get("has_proba"))

    @property
    def classes(self) -> list[Any] | None:
        classes = self.manifest.get("classes")
        if classes is None and self.manifest.get("described_at_load"):
            found = getattr(self._native, "classes_", None)
            classes = (
                None if found is None else [getattr(c, "item", lambda c=c: c)() for c in found]
            )
        return list(classes) if classes is not None else None

    @property
    def _native(self) -> Any:
        return getattr(self.predictor, "model", None)

    def predict(self, data: Any) -> np.ndarray:
        return self.predictor.predict_columns(self.signature.check_frame(data))

    def predict_proba(self, data: Any) -> np.ndarray:
        if not self.has_proba:
            raise AttributeError(f"this {self.flavor} model has no predict_proba")
        out = self.predictor.predict_proba_columns(self.signature.check_frame(data))
        assert out is not None
        return out

    def __repr__(self) -> str:
        who = f"{self.name}/{self.version}" if self.name else "model"
        return f"<LoadedModel {who} flavor={self.flavor} backend={self.backend}>"
