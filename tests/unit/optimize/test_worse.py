"""Which metrics an optimized version lost, for the CLI's warning: higher-is-better metrics by
an absolute margin, RMSE relative to its old value."""

from __future__ import annotations

from typing import Any

from shipyard.optimize import worse


def _report(old: dict[str, float], new: dict[str, float]) -> dict[str, Any]:
    return {"metrics": {"old": old, "new": new, "delta": {k: new[k] - old[k] for k in old}}}


def test_a_lost_accuracy_is_named_and_a_small_one_is_not() -> None:
    lost = worse(_report({"accuracy": 0.93, "roc_auc": 0.97}, {"accuracy": 0.80, "roc_auc": 0.965}))
    assert lost == ["accuracy -0.1300"]


def test_rmse_is_worse_when_it_grows() -> None:
    assert worse(_report({"rmse": 10.0, "r2": 0.8}, {"rmse": 9.0, "r2": 0.82})) == []
    assert worse(_report({"rmse": 10.0, "r2": 0.8}, {"rmse": 12.0, "r2": 0.8})) == ["rmse +2.0000"]
