"""Scoring logged predictions against late labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from shipyard.monitoring.performance import score


def test_auc_uses_the_rows_logged_with_probabilities() -> None:
    """Requests that did not ask for probabilities are logged without them (empty cells once
    files are read together): accuracy counts every row, AUC the rows that have scores."""
    rng = np.random.default_rng(0)
    n = 200
    label = rng.integers(0, 2, n)
    proba = np.clip(label * 0.6 + rng.random(n) * 0.5, 0, 1)
    prediction = (proba > 0.5).astype(int)
    proba_1 = proba.copy()
    proba_1[::3] = np.nan  # every third request asked for labels only
    joined = pd.DataFrame(
        {
            "_request_id": [f"r{i}" for i in range(n)],
            "_row": 0,
            "_model_version": "1",
            "_prediction": prediction,
            "_proba_0": 1 - proba_1,
            "_proba_1": proba_1,
            "_label": label,
        }
    )
    out = score(joined)
    overall = out["overall"]
    assert overall["n"] == n
    assert overall["accuracy"] == pytest.approx((prediction == label).mean())
    has = ~np.isnan(proba_1)
    assert overall["auc"] == pytest.approx(roc_auc_score(label[has], proba_1[has]))
    # one class only among the scored rows: no AUC rather than an error
    joined.loc[has & (label == 0), "_proba_1"] = np.nan
    assert score(joined)["overall"]["auc"] is None
