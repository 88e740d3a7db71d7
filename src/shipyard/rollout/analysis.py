"""Live evidence for a rollout, from the prediction log (shared by every replica): per variant,
requests, server errors, latency; the candidate's predictions against the stable model's; the
shadow's agreement; and for A/B tests, the outcomes reported through feedback."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.policy import CanaryPolicy, policy_of

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.config import Settings
    from shipyard.stores.records import EndpointRecord


# What a model answered or failed at itself: 200, 500 (it raised), 504 (too slow). Not a
# caller's bad input (4xx), a client gone (499) or a full queue (503): a caller can send as
# many of those as it likes, to the variant its routing key picks, so counting them would let
# it roll a candidate back, or make the stable model look faster than it is.
_MODEL_ATTEMPTS = (200, 500, 504)
_MODEL_FAILURES = (500, 504)


@dataclass
class VariantStats:
    requests: int = 0  # the requests the model was asked to answer (valid ones)
    errors: int = 0  # its own failures (500, 504), never the callers' bad input
    error_rate: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    rows: int = 0


@dataclass
class Analysis:
    since_ms: int
    variants: dict[str, VariantStats] = field(default_factory=dict)
    prediction_test: dict[str, Any] | None = None
    agreement: float | None = None
    outcomes: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stats(df: pd.DataFrame) -> VariantStats:
    requests = df.drop_duplicates("_request_id")
    requests = requests[requests["_status"].isin(_MODEL_ATTEMPTS)]
    n = len(requests)
    errors = int(requests["_status"].isin(_MODEL_FAILURES).sum())
    return VariantStats(
        requests=n,
        errors=errors,
        error_rate=errors / n if n else 0.0,
        p50_ms=float(requests["_latency_ms"].quantile(0.5)) if n else None,
        p99_ms=float(requests["_latency_ms"].quantile(0.99)) if n else None,
        rows=int((df["_status"] == 200).sum()),
    )


def analyze(settings: Settings, record: EndpointRecord, *, now_ms: int | None = None) -> Analysis:
    from shipyard.stores.predictions import PredictionLogStore

    policy = policy_of(record)
    since = (
        policy.step_started_ms
        if isinstance(policy, CanaryPolicy)
        else getattr(policy, "started_ms", 0)  # a single policy has no rollout to analyse
    )
    table = PredictionLogStore(settings.predictions_dir).read(
        record.name, start_ms=since, end_ms=now_ms
    )
    result = Analysis(since)
    if table.num_rows == 0 or "_variant" not in table.column_names:
        return result
    df = table.to_pandas()
    for variant, group in df.groupby("_variant"):
        result.variants[str(variant)] = _stats(group)
    ok = df[df["_status"] == 200]
    stable = ok[ok["_variant"] == "stable"]
    other_name = "shadow" if record.policy == "shadow" else "candidate"
    other = ok[ok["_variant"] == other_name]
    if len(stable) >= 20 and len(other) >= 20 and "_prediction" in ok.columns:
        result.prediction_test = _prediction_test(stable, other)
    if record.policy == "shadow" and len(other):
        pairs = stable.merge(other, on=["_request_id", "_row"], suffixes=("", "_shadow"))
        if len(pairs):
            result.agreement = float(
                (pairs["_prediction"].astype(str) == pairs["_prediction_shadow"].astype(str)).mean()
            )
    if record.policy == "ab":
        result.outcomes = _outcomes(settings, record.name, ok)
    return result


def _prediction_test(stable: pd.DataFrame, other: pd.DataFrame) -> dict[str, Any]:
    from shipyard.monitoring.drift import detect_drift

    report = detect_drift(stable[["_prediction"]], other[["_prediction"]], correction="none")
    col = report.columns["_prediction"]
    return {
        "test": col.test,
        "statistic": col.statistic,
        "p_value": col.p_value,
        "effect_size": col.effect_size,
        "effect_metric": col.effect_metric,
    }


def _outcomes(settings: Settings, endpoint: str, ok: pd.DataFrame) -> dict[str, Any]:
    """Outcomes reported for each request (row 0), attributed to the variant that served it."""
    import pandas as pd

    from shipyard.stores.predictions import PredictionLogStore

    labels = PredictionLogStore(settings.labels_dir).read(endpoint).to_pandas()
    if labels.empty:
        return {"stable": [], "candidate": []}
    first = ok[ok["_row"] == 0][["_request_id", "_variant"]]
    latest = labels.sort_values("_ts").drop_duplicates(["_request_id", "_row"], keep="last")
    joined = first.merge(latest[latest["_row"] == 0], on="_request_id")
    values = pd.to_numeric(joined["_label"], errors="coerce")
    joined = joined.assign(_value=values).dropna(subset=["_value"])
    return {
        v: joined.loc[joined["_variant"] == v, "_value"].tolist() for v in ("stable", "candidate")
    }


def ab_test(stable: list[float], candidate: list[float]) -> dict[str, Any]:
    """Two-proportion z-test when every outcome is 0 or 1, Welch's t-test otherwise."""
    import numpy as np
    from scipy import stats

    a, b = np.asarray(stable, dtype=float), np.asarray(candidate, dtype=float)
    binary = bool(np.isin(np.r_[a, b], (0.0, 1.0)).all())
    if binary:
        p1, p2 = a.mean(), b.mean()
        pooled = (a.sum() + b.sum()) / (len(a) + len(b))
        se = math.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b)))
        z = (p2 - p1) / se if se > 0 else 0.0
        p = float(2 * stats.norm.sf(abs(z)))
        return {
            "test": "two_proportion_z",
            "statistic": float(z),
            "p_value": p,
            "stable_mean": float(p1),
            "candidate_mean": float(p2),
            "lift": float(p2 - p1),
            "n_stable": len(a),
            "n_candidate": len(b),
        }
    t = stats.ttest_ind(b, a, equal_var=False)
    return {
        "test": "welch_t",
        "statistic": float(t.statistic),
        "p_value": float(t.pvalue),
        "stable_mean": float(a.mean()),
        "candidate_mean": float(b.mean()),
        "lift": float(b.mean() - a.mean()),
        "n_stable": len(a),
        "n_candidate": len(b),
    }
