"""Drift verdicts on data with known drift, false-alarm control without drift, and the sketch
(live) path agreeing with itself however windows are split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring import Profile, detect_drift

DRIFTED = ["normal_shift", "lognormal_shift", "exponential_shift", "gamma_shift", "cat_shift"]


def generate(n: int, rng: np.random.Generator, *, drift: bool) -> pd.DataFrame:
    """20 numeric + 5 categorical columns from several families; with `drift`, four numeric
    columns move by 0.1 standard deviation and one categorical changes its frequencies."""
    s = 0.1 if drift else 0.0
    cols: dict[str, np.ndarray] = {
        "normal_shift": rng.normal(s, 1, n),
        "lognormal_shift": rng.lognormal(0, 0.5, n) + s * 0.6,  # sd of lognormal(0, .5) ≈ .6
        "exponential_shift": rng.exponential(1, n) + s,
        "gamma_shift": rng.gamma(2, 1, n) + s * np.sqrt(2),
    }
    for i in range(16):
        family = i % 4
        cols[f"stable_{i}"] = (
            rng.normal(0, 1, n),
            rng.lognormal(0, 1, n),
            rng.exponential(2, n),
            rng.uniform(0, 1, n),
        )[family]
    p_stable = [0.5, 0.3, 0.15, 0.05]
    p_drift = [0.45, 0.32, 0.17, 0.06] if drift else p_stable
    cols["cat_shift"] = rng.choice(list("abcd"), n, p=p_drift)
    for j in range(4):
        cols[f"cat_stable_{j}"] = rng.choice(list("abcd"), n, p=p_stable)
    return pd.DataFrame(cols)


@pytest.mark.parametrize("n", [10_000, 100_000])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_drifted_column_is_found_and_no_other(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref, cur = generate(n, rng, drift=False), generate(n, rng, drift=True)
    # alpha 1 %: a family-wise false alarm in one of these fixed runs has 1 % odds (the rate
    # itself is tested below); the drifted columns are found at p-values far below it
    report = detect_drift(ref, cur, alpha=0.01)
    assert sorted(report.drifted_columns) == sorted(DRIFTED)
    col = report.columns["normal_shift"]
    assert col.test == ("ks" if n <= 10_000 else "ks_binned")
    assert 0.05 < col.effect_size < 0.2  # 0.1 sd, in reference sds
    assert report.columns["cat_shift"].test == "chi2_homogeneity"
    assert "adjusted p=" in col.rule and "Holm" in col.rule
    live = detect_drift(Profile.from_frame(ref), cur, alpha=0.01)  # the live path
    assert sorted(live.drifted_columns) == sorted(DRIFTED)


@pytest.mark.slow
def test_a_million_rows() -> None:
    rng = np.random.default_rng(7)
    ref, cur = generate(1_000_000, rng, drift=False), generate(1_000_000, rng, drift=True)
    assert sorted(detect_drift(ref, cur, alpha=0.01).drifted_columns) == sorted(DRIFTED)
    live = detect_drift(Profile.from_frame(ref), cur, alpha=0.01)
    assert sorted(live.drifted_columns) == sorted(DRIFTED)


@pytest.mark.slow
@pytest.mark.parametrize("correction", ["holm", "bonferroni"])
def test_family_wise_false_alarms_stay_at_the_nominal_level(correction: str) -> None:
    rng = np.random.default_rng(123)
    trials, alarms = 200, 0
    for _ in range(trials):
        ref, cur = generate(2_000, rng, drift=False), generate(2_000, rng, drift=False)
        alarms += bool(detect_drift(ref, cur, correction=correction).drifted_columns)  # type: ignore[arg-type]
    # nominal 5 %, plus three binomial standard deviations of slack for 200 trials
    assert alarms / trials <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials)


def test_a_goodness_of_fit_test_would_alarm_where_homogeneity_does_not() -> None:
    """Small reference, large current from the same distribution: a one-sample chi-square that
    treats reference frequencies as exact flags it far more often than the two-sample test."""
    from scipy.stats import chisquare

    rng = np.random.default_rng(5)
    p = [0.5, 0.3, 0.2]
    gof_alarms = homogeneity_alarms = 0
    for _ in range(100):
        ref = pd.DataFrame({"c": rng.choice(list("abc"), 300, p=p)})
        cur = pd.DataFrame({"c": rng.choice(list("abc"), 50_000, p=p)})
        homogeneity_alarms += bool(detect_drift(ref, cur).drifted_columns)
        expected = ref["c"].value_counts(normalize=True).sort_index() * len(cur)
        observed = cur["c"].value_counts().sort_index()
        gof_alarms += chisquare(observed, expected).pvalue < 0.05
    assert homogeneity_alarms <= 12
    assert gof_alarms > 3 * max(homogeneity_alarms, 5)


def test_windows_merged_from_sketches_give_the_raw_verdict() -> None:
    rng = np.random.default_rng(11)
    ref, cur = generate(20_000, rng, drift=False), generate(30_000, rng, drift=True)
    reference = Profile.from_frame(ref)
    whole = reference.empty_like()
    whole.observe(cur)
    windows = []
    for chunk in (cur.iloc[i * 5_000 : (i + 1) * 5_000] for i in range(6)):
        w = reference.empty_like()
        w.observe(chunk)
        windows.append(w)
    rolled = windows[0]
    for w in windows[1:]:
        rolled = rolled.merged(w)
    a = detect_drift(reference, whole).to_dict()
    b = detect_drift(reference, rolled).to_dict()
    assert a["drifted_columns"] == b["drifted_columns"]
    for name in a["columns"]:
        assert a["columns"][name]["p_value"] == pytest.approx(b["columns"][name]["p_value"])
        assert a["columns"][name]["statistic"] == pytest.approx(b["columns"][name]["statistic"])
    raw = detect_drift(ref, cur)
    assert sorted(raw.drifted_columns) == sorted(a["drifted_columns"])


def test_min_effect_vetoes_significant_but_tiny_differences() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 400_000)})
    cur = pd.DataFrame({"x": rng.normal(0.02, 1, 400_000)})
    assert detect_drift(ref, cur).drifted_columns == ["x"]
    vetoed = detect_drift(ref, cur, min_effect=0.05)
    assert vetoed.drifted_columns == []
    assert "< min_effect=0.05" in vetoed.columns["x"].rule


def test_bad_arguments() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(InvalidArgumentError, match="share no column"):
        detect_drift(df, pd.DataFrame({"y": [1.0]}))
    with pytest.raises(InvalidArgumentError, match="alpha"):
        detect_drift(df, df, alpha=2)
    with pytest.raises(InvalidArgumentError, match="correction"):
        detect_drift(df, df, correction="fdr")  # type: ignore[arg-type]
    report = detect_drift(df, df, columns=["x", "nope"])
    assert report.skipped == {"nope": "not in both samples"}
