"""A shadow agrees with stable within a numeric tolerance for numbers and by equality for
labels (issue #15: exact equality gave 0.0 for any regression model)."""

from __future__ import annotations

import pandas as pd

from shipyard.rollout.analysis import agreement


def test_numbers_agree_within_the_tolerance() -> None:
    stable = pd.Series([100.0, 200.0, 0.0, 50.0])
    shadow = pd.Series([103.0, 190.0, 1e-9, 60.0])  # +3 %, -5 %, ~0, +20 %
    assert agreement(stable, shadow, rtol=0.05, atol=1e-8) == 0.75
    assert agreement(stable, shadow, rtol=0.0, atol=0.0) == 0.0
    assert agreement(stable, shadow, rtol=0.0, atol=10.0) == 1.0


def test_labels_agree_only_when_equal() -> None:
    stable = pd.Series([100, 101, 3, 3])
    assert agreement(stable, pd.Series([100, 100, 3, 4]), rtol=0.05, atol=1.0) == 0.5
    text = pd.Series(["churn", "stay"])
    assert agreement(text, pd.Series(["churn", "Stay"]), rtol=0.5, atol=1.0) == 0.5
