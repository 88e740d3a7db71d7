"""Data quality: a rise in missing values beyond what the reference had is a violation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shipyard.monitoring.quality import check_quality
from shipyard.sketches import Profile


def _frames(missing_share: float, reference_missing: float = 0.0) -> tuple[Profile, Profile]:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=1000), "city": rng.choice(["a", "b"], 1000)})
    ref.loc[: int(1000 * reference_missing) - 1, "x"] = np.nan
    cur = pd.DataFrame({"x": rng.normal(size=1000), "city": rng.choice(["a", "b"], 1000)})
    cur.loc[: int(1000 * missing_share) - 1, ["x", "city"]] = np.nan
    reference = Profile.from_frame(ref)
    window = reference.empty_like()
    window.observe(cur)
    return reference, window


def test_missing_values_appearing_where_the_reference_had_none_is_a_violation() -> None:
    reference, window = _frames(0.07)
    report = check_quality(reference, window)
    x = report.columns["x"]
    assert round(100 * x.missing_rate, 1) == 7.0 and x.reference_missing_rate == 0.0
    assert x.missing_excess == 70 and x.violations == 70
    assert x.to_dict()["verdict"] == "violation"
    assert report.columns["city"].violations == 70  # categorical columns too
    assert report.violations == 140


def test_a_rise_within_the_tolerance_is_ok_and_beyond_it_is_not() -> None:
    reference, window = _frames(0.06, reference_missing=0.05)
    assert check_quality(reference, window).columns["x"].violations == 0  # 1 point: tolerated
    strict = check_quality(reference, window, missing_tolerance=0.0)
    assert strict.columns["x"].missing_excess == 10
    reference, window = _frames(0.12, reference_missing=0.05)
    assert check_quality(reference, window).columns["x"].missing_excess == 50  # 12 % vs 5 % + 2


def test_no_rise_no_violation() -> None:
    reference, window = _frames(0.0, reference_missing=0.05)
    report = check_quality(reference, window)
    assert report.violations == 0 and report.columns["x"].to_dict()["verdict"] == "ok"
