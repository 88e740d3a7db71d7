"""Drift between a reference and a current sample, column by column, with a correction for
testing many columns at once.

Tests (the p-value decides, an effect size can veto):
- numeric, raw samples up to ~100k rows each: two-sample Kolmogorov-Smirnov (scipy; exact or
  asymptotic by size). Larger samples, or profiles: the same KS statistic on the reference's
  quantile bins — never larger than the exact statistic, so its p-value is conservative.
  Effect sizes: Wasserstein distance in reference standard deviations, PSI.
- categorical: chi-square test of homogeneity on the 2 x k contingency table — a two-sample test
  that treats both samples as samples (a goodness-of-fit test against reference frequencies
  taken as exact raises false alarms). Effect sizes: Jensen-Shannon distance, PSI.
P-values are adjusted across columns: Holm by default (controls the family-wise false-alarm
rate, like Bonferroni but more powerful), or Bonferroni, Benjamini-Hochberg (false discovery
rate; more alarms) or none.
A column drifts when its adjusted p-value is below `alpha` and, if `min_effect` is set, its
effect size reaches it (so huge samples do not alarm on differences nobody cares about).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError
from shipyard.sketches import (
    CategoricalSketch,
    NumericSketch,
    Profile,
    is_numeric,
    observe_series,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Correction = Literal["holm", "bonferroni", "bh", "none"]
EXACT_LIMIT = 10_000  # n*m/(n+m) up to which raw numeric columns get scipy's KS test
_PSI_EPS = 1e-4


@dataclass
class ColumnDrift:
    column: str
    kind: str
    test: str
    statistic: float
    p_value: float
    effect_size: float
    effect_metric: str
    reference_rows: int
    current_rows: int
    p_adjusted: float = math.nan
    drifted: bool = False
    rule: str = ""
    psi: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()
        }


@dataclass
class DriftReport:
    columns: dict[str, ColumnDrift]
    alpha: float
    correction: str
    min_effect: float | None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def drifted_columns(self) -> list[str]:
        return [c for c, v in self.columns.items() if v.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "drifted": bool(self.drifted_columns),
            "drifted_columns": self.drifted_columns,
            "share_drifted": self.share_drifted,
            "alpha": self.alpha,
            "correction": self.correction,
            "min_effect": self.min_effect,
            "columns": {c: v.to_dict() for c, v in self.columns.items()},
            "skipped": self.skipped,
        }


# -- numeric ------------------------------------------------------------------------------------


def _ks_pvalue(d: float, n: int, m: int) -> float:
    from scipy.stats import kstwobign

    if n == 0 or m == 0:
        return 1.0
    en = math.sqrt(n * m / (n + m))
    return float(kstwobign.sf(d * en))


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    import numpy as np

    p = ref / max(ref.sum(), 1)
    q = cur / max(cur.sum(), 1)
    p = np.clip(p, _PSI_EPS, None)
    q = np.clip(q, _PSI_EPS, None)
    return float(((q - p) * np.log(q / p)).sum())


def _group_bins(counts: np.ndarray, groups: int = 10) -> np.ndarray:
    """Aggregate fine bins into ~`groups` consecutive groups of about equal reference mass
    (the usual 10-bin PSI, from a 128-bin sketch)."""
    import numpy as np

    cum = np.cumsum(counts)
    total = cum[-1] if cum.size else 0
    if total == 0:
        return np.zeros(len(counts), dtype=np.int64)
    return np.minimum((cum - counts / 2) * groups // total, groups - 1).astype(np.int64)


def numeric_from_sketches(name: str, ref: NumericSketch, cur: NumericSketch) -> ColumnDrift:
    import numpy as np

    r = np.asarray(ref.counts, dtype=np.float64)
    c = np.asarray(cur.counts, dtype=np.float64)
    n, m = int(r.sum()), int(c.sum())
    if n == 0 or m == 0:
        return ColumnDrift(
            name,
            "numeric",
            "ks_binned",
            0.0,
            1.0,
            0.0,
            "wasserstein_std",
            n,
            m,
            details={"note": "no values on one side"},
        )
    fr, fc = np.cumsum(r) / n, np.cumsum(c) / m
    d = float(np.abs(fr - fc).max())
    edges = np.asarray(ref.edges)
    widths = np.diff(edges)
    # W1 = ∫|F - G|; over the finite bins, the CDFs are known at the edges
    w1 = float((np.abs(fr - fc)[:-1][: len(widths)] * widths).sum()) if widths.size else 0.0
    wstd = w1 / ref.std if ref.std > 0 else (0.0 if w1 == 0 else math.inf)
    groups = _group_bins(r)
    psi = _psi(np.bincount(groups, weights=r), np.bincount(groups, weights=c))
    return ColumnDrift(
        name,
        "numeric",
        "ks_binned",
        d,
        _ks_pvalue(d, n, m),
        wstd,
        "wasserstein_std",
        n,
        m,
        psi=psi,
        details={
            "reference_mean": ref.mean,
            "current_mean": cur.mean,
            "reference_std": ref.std,
            "current_std": cur.std,
        },
    )


def numeric_from_values(name: str, ref: np.ndarray, cur: np.ndarray) -> ColumnDrift:
    import numpy as np
    from scipy import stats

    ref = ref[np.isfinite(ref)]
    cur = cur[np.isfinite(cur)]
    n, m = ref.size, cur.size
    if n * m / max(n + m, 1) > EXACT_LIMIT or n == 0 or m == 0:
        rs = NumericSketch.reference(ref)
        cs = rs.empty_like()
        cs.observe(cur)
        return numeric_from_sketches(name, rs, cs)
    ks = stats.ks_2samp(ref, cur, method="auto")
    std = float(ref.std(ddof=1)) if n > 1 else 0.0
    w1 = float(stats.wasserstein_distance(ref, cur))
    wstd = w1 / std if std > 0 else (0.0 if w1 == 0 else math.inf)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)[1:-1]))
    r = np.bincount(np.searchsorted(edges, ref), minlength=edges.size + 1)
    c = np.bincount(np.searchsorted(edges, cur), minlength=edges.size + 1)
    return ColumnDrift(
        name,
        "numeric",
        "ks",
        float(ks.statistic),
        float(ks.pvalue),
        wstd,
        "wasserstein_std",
        n,
        m,
        psi=_psi(r, c),
        details={
            "reference_mean": float(ref.mean()),
            "current_mean": float(cur.mean()),
            "reference_std": std,
            "current_std": float(cur.std(ddof=1)) if m > 1 else 0.0,
        },
    )


# -- categorical --------------------------------------------------------------------------------


def categorical_from_sketches(
    name: str, ref: CategoricalSketch, cur: CategoricalSketch
) -> ColumnDrift:
    import numpy as np
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency

    keys = sorted(set(ref.counts) | set(cur.counts))
    r = np.array([ref.counts.get(k, 0) for k in keys] + [ref.other], dtype=np.float64)
    c = np.array([cur.counts.get(k, 0) for k in keys] + [cur.other], dtype=np.float64)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    n, m = int(r.sum()), int(c.sum())
    unseen = sorted(set(cur.counts) - set(ref.counts))
    if n == 0 or m == 0 or r.size < 2:
        return ColumnDrift(
            name,
            "categorical",
            "chi2_homogeneity",
            0.0,
            1.0,
            0.0,
            "jensen_shannon",
            n,
            m,
            details={"unseen": unseen[:10]},
        )
    chi2, p, dof, _ = chi2_contingency(np.vstack([r, c]), correction=False)
    js = float(jensenshannon(r / n, c / m, base=2))
    return ColumnDrift(
        name,
        "categorical",
        "chi2_homogeneity",
        float(chi2),
        float(p),
        js,
        "jensen_shannon",
        n,
        m,
        psi=_psi(r, c),
        details={
            "dof": int(dof),
            "unseen": unseen[:10],
            "unseen_count": int(sum(cur.counts[k] for k in unseen)),
        },
    )


# -- the report ---------------------------------------------------------------------------------


def _adjust(pvalues: list[float], correction: Correction) -> list[float]:
    import numpy as np

    if not pvalues:
        return []
    ps = np.clip(np.nan_to_num(np.asarray(pvalues, dtype=np.float64), nan=1.0), 0.0, 1.0)
    if correction == "none":
        return ps.tolist()  # type: ignore[no-any-return]
    if correction == "bonferroni":
        return np.minimum(ps * len(ps), 1.0).tolist()  # type: ignore[no-any-return]
    if correction == "holm":
        m = len(ps)
        order = np.argsort(ps)
        stepped = np.maximum.accumulate(ps[order] * (m - np.arange(m)))
        out = np.empty(m)
        out[order] = np.minimum(stepped, 1.0)
        return out.tolist()  # type: ignore[no-any-return]
    if correction == "bh":
        from scipy.stats import false_discovery_control

        return np.asarray(false_discovery_control(ps, method="bh")).tolist()  # type: ignore[no-any-return]
    raise InvalidArgumentError(
        f"correction must be holm, bonferroni, bh or none, not {correction!r}", field="correction"
    )


def judge(
    results: list[ColumnDrift], alpha: float, correction: Correction, min_effect: float | None
) -> DriftReport:
    """The report over per-column tests: p-values adjusted for the whole family of tests,
    then each column judged against `alpha` (and `min_effect`). Judge again when the family
    grows (a label column added to a feature report)."""
    if not 0 < alpha < 1:
        raise InvalidArgumentError("alpha must be between 0 and 1", field="alpha")
    adjusted = _adjust([r.p_value for r in results], correction)
    label = {
        "holm": "Holm",
        "bh": "Benjamini-Hochberg",
        "bonferroni": "Bonferroni",
        "none": "no",
    }.get(correction, correction)
    for r, p in zip(results, adjusted, strict=True):
        r.p_adjusted = p
        significant = p < alpha
        big_enough = min_effect is None or r.effect_size >= min_effect
        r.drifted = significant and big_enough
        rule = (
            f"{r.test}: adjusted p={p:.3g} {'<' if significant else '>='} alpha={alpha} "
            f"({label} correction over {len(results)} columns)"
        )
        if min_effect is not None:
            rule += (
                f"; {r.effect_metric}={r.effect_size:.3g} "
                f"{'>=' if big_enough else '<'} min_effect={min_effect}"
            )
        r.rule = rule
    return DriftReport({r.column: r for r in results}, alpha, correction, min_effect)


def detect_drift(
    reference: pd.DataFrame | Profile,
    current: pd.DataFrame | Profile,
    *,
    columns: list[str] | None = None,
    alpha: float = 0.05,
    correction: Correction = "holm",
    min_effect: float | None = None,
) -> DriftReport:
    """Compare `current` with `reference` (DataFrames, or Profiles — the live path) column by
    column.

    >>> report = detect_drift(train_df, last_hour_df)
    >>> report.drifted_columns, report.columns["age"].p_value
    """
    ref_profile = reference if isinstance(reference, Profile) else None
    cur_profile = current if isinstance(current, Profile) else None
    ref_cols = list(ref_profile.columns) if ref_profile else [str(c) for c in reference.columns]  # type: ignore[union-attr]
    cur_cols = set(cur_profile.columns) if cur_profile else {str(c) for c in current.columns}  # type: ignore[union-attr]
    wanted = columns if columns is not None else [c for c in ref_cols if c in cur_cols]
    skipped: dict[str, str] = {}
    for c in list(wanted):
        if c not in ref_cols or c not in cur_cols:
            skipped[c] = "not in both samples"
    wanted = [c for c in wanted if c not in skipped]
    if not wanted:
        raise InvalidArgumentError(
            "the reference and current samples share no column", field="columns"
        )
    rows = _rows(reference) + _rows(current)
    workers = min(len(wanted), os.cpu_count() or 1) if rows > 200_000 else 1
    if workers > 1:  # numpy's sort and searchsorted release the GIL: columns run in parallel
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers, thread_name_prefix="shipyard-drift") as pool:
            results = list(
                pool.map(
                    lambda name: _column(name, reference, current, ref_profile, cur_profile), wanted
                )
            )
    else:
        results = [_column(name, reference, current, ref_profile, cur_profile) for name in wanted]
    report = judge(results, alpha, correction, min_effect)
    report.skipped = skipped
    return report


def _rows(sample: Any) -> int:
    return sample.rows if isinstance(sample, Profile) else len(sample)


def _column(
    name: str,
    reference: Any,
    current: Any,
    ref_profile: Profile | None,
    cur_profile: Profile | None,
) -> ColumnDrift:
    import numpy as np
    import pandas as pd

    if ref_profile is None and cur_profile is None:
        r, c = reference[name], current[name]
        if is_numeric(r) and is_numeric(c):
            return numeric_from_values(
                name,
                r.to_numpy(dtype="float64", na_value=np.nan),
                c.to_numpy(dtype="float64", na_value=np.nan),
            )
        if is_numeric(r):  # a numeric column turned into something else: count what parses
            c = pd.to_numeric(c, errors="coerce")
            return numeric_from_values(
                name,
                r.to_numpy(dtype="float64", na_value=np.nan),
                c.to_numpy(dtype="float64", na_value=np.nan),
            )
        rs, cs = CategoricalSketch(), CategoricalSketch()
        rs.observe(r)
        cs.observe(c)
        return categorical_from_sketches(name, rs, cs)
    ref_sketch = (
        ref_profile.columns[name]
        if ref_profile is not None
        else Profile.from_frame(reference.loc[:, [name]]).columns[name]
    )
    if cur_profile is not None:
        cur_sketch = cur_profile.columns[name]
    else:
        cur_sketch = ref_sketch.empty_like()
        observe_series(cur_sketch, current[name])
    if isinstance(ref_sketch, NumericSketch) and isinstance(cur_sketch, NumericSketch):
        return numeric_from_sketches(name, ref_sketch, cur_sketch)
    if isinstance(ref_sketch, CategoricalSketch) and isinstance(cur_sketch, CategoricalSketch):
        return categorical_from_sketches(name, ref_sketch, cur_sketch)
    raise InvalidArgumentError(
        f"column '{name}' is numeric on one side and categorical on the other", field=name
    )
