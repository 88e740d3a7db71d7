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


def _joined(prediction: list[object], label: list[object]) -> pd.DataFrame:
    n = len(prediction)
    return pd.DataFrame(
        {
            "_request_id": [f"r{i}" for i in range(n)],
            "_row": 0,
            "_model_version": "1",
            "_prediction": prediction,
            "_label": label,
        }
    )


def test_rows_without_a_prediction_are_not_scored_and_said_so() -> None:
    """Before: 21 null predictions of 300 made MAE and RMSE NaN (and a bare NaN in --json)."""
    rng = np.random.default_rng(1)
    truth = rng.normal(150, 50, 300)
    pred = truth + rng.normal(0, 10, 300)
    holed = pred.copy()
    holed[::15] = np.nan  # 20 rows
    out = score(_joined(list(holed), list(truth)), task="regression")["overall"]
    keep = ~np.isnan(holed)
    assert out["n"] == 300 and out["unscored"] == 20
    assert out["mae"] == pytest.approx(np.abs(pred[keep] - truth[keep]).mean())
    assert "20 of 300" in out["reason"]
    nothing = score(_joined([None, None], [1.0, 2.0]), task="regression")["overall"]
    assert nothing["mae"] is None and nothing["rmse"] is None and nothing["unscored"] == 2


def test_classification_with_a_missing_prediction_does_not_raise() -> None:
    """Before: `ValueError: Input y_pred contains NaN` from scikit-learn."""
    out = score(_joined([1.0, 0.0, np.nan, 1.0], [1, 0, 1, 0]), task="classification")
    assert out["overall"]["accuracy"] == pytest.approx(2 / 3)
    assert out["overall"]["unscored"] == 1
    assert out["by_version"]["1"]["unscored"] == 1


def logged(predictions: list[float]) -> pd.DataFrame:
    """An endpoint's window as the prediction log gives it: one request per row."""
    return pd.DataFrame(
        {
            "_request_id": [f"r{i}" for i in range(len(predictions))],
            "_row": 0,
            "_model_version": 1,
            "_prediction": pd.Series(predictions, dtype="float64"),
            "_status": 200,
        }
    )


def sent_back(labels: dict[str, object]) -> pd.DataFrame:
    from shipyard.stores.predictions import labels_table

    return labels_table([(rid, 0, v, i) for i, (rid, v) in enumerate(labels.items())]).to_pandas()


def test_live_accuracy_says_why_a_metric_cannot_be_computed() -> None:
    import json

    from shipyard.monitoring.performance import AUC_NEEDS, live_accuracy

    rng = np.random.default_rng(0)
    truth = rng.normal(150, 40, 50)
    predicted = truth + rng.normal(0, 10, 50)
    predicted[[3, 17, 40]] = np.nan  # the model answered null for three rows
    labels = sent_back({f"r{i}": float(v) for i, v in enumerate(truth)})
    doc = live_accuracy(logged(list(predicted)), labels, endpoint="diabetes")
    assert doc["labelled_rows"] == 50 and doc["task"] == "regression"
    keep = ~np.isnan(predicted)
    assert doc["overall"]["mae"] == pytest.approx(np.abs(predicted - truth)[keep].mean())
    assert (
        doc["overall"]["reason"]
        == "3 of 50 labelled rows have no prediction or no label: not scored"
    )
    assert doc["not_computable"] == {}
    json.dumps(doc, allow_nan=False)  # never a bare NaN

    classes = logged([np.nan, np.nan, 1.0, 0.0])
    doc = live_accuracy(classes.iloc[:2], sent_back({"r0": 1, "r1": 0}))
    assert doc["task"] == "classification"  # a null answer does not make it a regression
    assert doc["overall"]["accuracy"] is None
    assert (
        doc["not_computable"]["accuracy"] == "2 of 2 labelled rows have no prediction or no label"
    )
    doc = live_accuracy(classes, sent_back({"r0": 1, "r2": 1, "r3": 1}))
    assert doc["task"] == "classification"  # it was "regression" with a null among 0s and 1s
    assert doc["overall"]["accuracy"] == 0.5 and doc["overall"]["unscored"] == 1
    assert doc["not_computable"] == {"auc": AUC_NEEDS}  # no probabilities were logged

    none = live_accuracy(classes, sent_back({}), endpoint="churn")
    assert none["labelled_rows"] == 0
    assert none["not_computable"]["all"].startswith(
        "no label was sent back for this endpoint (POST /endpoints/churn/feedback"
    )
    elsewhere = live_accuracy(classes, sent_back({"x9": 1}))
    assert elsewhere["not_computable"] == {
        "all": "1 label(s) were sent back, none for a prediction in this window"
    }
