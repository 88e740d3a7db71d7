"""A version's monitoring reference: profiles of the reference data's features, of the
model's predictions on them and of the target, stored as an artifact."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.stores import Stores

REFERENCE_ROWS = 50_000  # rows of reference data profiled (a seeded sample above that)


def reference_profile(
    stores: Stores, model: Any, reference: tuple[Any, Any], digest: str, kind: str
) -> str:
    """Profile features, predictions and target of (a sample of) the reference data; store
    it as an artifact and return its digest. A model without `predict` (a torch module)
    predicts as saved (manifest `digest`)."""
    data, target = reference
    if kind == "tensors":
        raise InvalidArgumentError(
            "reference_data: a monitoring reference (feature profiles, drift) is not "
            "computable for tensor inputs; register the model without it",
            field="reference_data",
        )
    import json

    import numpy as np
    import pandas as pd

    from shipyard.sketches import Profile

    if not callable(getattr(model, "predict", None)):
        from shipyard.flavors import load_model

        model = load_model(stores.artifacts, digest, backend="python")
    frame = (
        data
        if isinstance(data, pd.DataFrame)
        else pd.DataFrame(
            np.asarray(data), columns=[f"f{i}" for i in range(np.asarray(data).shape[1])]
        )
    )
    if target is not None and len(target) != len(frame):
        raise InvalidArgumentError(
            f"reference_target has {len(target)} rows, reference_data {len(frame)}",
            field="reference_target",
        )
    idx = np.arange(len(frame))
    if len(frame) > REFERENCE_ROWS:
        idx = np.sort(np.random.default_rng(0).choice(len(frame), REFERENCE_ROWS, replace=False))
    sample = frame.iloc[idx].reset_index(drop=True)
    profiled = sample.assign(
        _prediction=np.asarray(
            model.predict(sample if isinstance(data, pd.DataFrame) else sample.to_numpy())
        )
    )
    if target is not None:
        profiled["_label"] = np.asarray(target)[idx]
    doc = Profile.from_frame(profiled).to_dict()
    return stores.artifacts.put_bytes(json.dumps(doc).encode())[0]
