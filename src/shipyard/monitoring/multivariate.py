"""Multivariate drift, flagged as such: a domain classifier. A model is trained to tell
reference rows from current rows; if it can (held-out ROC AUC clearly above 0.5), the joint
distribution moved — even when every column on its own looks unchanged (a correlation that
flipped, say). The p-value comes from the Mann-Whitney U test that the AUC equals 0.5 on the
held-out half, so it is a proper test, not a threshold on the AUC."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd

SAMPLE = 5_000  # rows per side: enough power, seconds of CPU at most


@dataclass
class MultivariateDrift:
    test: str
    auc: float
    p_value: float
    drifted: bool
    alpha: float
    rows_per_side: int
    top_features: list[tuple[str, float]]
    kind: str = "multivariate (domain classifier)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def domain_classifier(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: list[str] | None = None,
    alpha: float = 0.05,
    seed: int = 0,
) -> MultivariateDrift:
    import numpy as np
    import pandas as pd
    from scipy.stats import mannwhitneyu
    from sklearn.ensemble import HistGradientBoostingClassifier

    cols = columns or [c for c in reference.columns if c in current.columns]
    if not cols:
        raise InvalidArgumentError("no shared column for the domain classifier", field="columns")
    rng = np.random.default_rng(seed)
    n = min(len(reference), len(current), SAMPLE)
    if n < 50:
        raise InvalidArgumentError("the domain classifier needs at least 50 rows on each side")
    ref = reference[cols].iloc[rng.choice(len(reference), n, replace=False)]
    cur = current[cols].iloc[rng.choice(len(current), n, replace=False)]
    both = pd.concat([ref, cur], ignore_index=True)
    for c in cols:  # categories as codes, consistently across the two samples
        if not pd.api.types.is_numeric_dtype(both[c]):
            both[c] = both[c].astype("category").cat.codes
    y = np.r_[np.zeros(n), np.ones(n)]
    order = rng.permutation(2 * n)
    train, test = order[:n], order[n:]
    clf = HistGradientBoostingClassifier(max_iter=60, random_state=seed)
    clf.fit(both.iloc[train], y[train])
    scores = clf.predict_proba(both.iloc[test])[:, 1]
    pos, neg = scores[y[test] == 1], scores[y[test] == 0]
    u = mannwhitneyu(pos, neg, alternative="greater")
    auc = float(u.statistic / (len(pos) * len(neg)))
    from sklearn.inspection import permutation_importance

    imp = permutation_importance(
        clf, both.iloc[test], y[test], n_repeats=2, random_state=seed, scoring="roc_auc"
    )
    top = sorted(zip(cols, imp.importances_mean.tolist(), strict=True), key=lambda t: -t[1])[:5]
    p = float(u.pvalue)
    return MultivariateDrift(
        "domain_classifier_auc", auc, p, p < alpha, alpha, n, [(c, round(v, 4)) for c, v in top]
    )
