"""Live evidence for a rollout, from the prediction log (shared by every replica): per variant,
requests, server errors, latency, and live quality where late labels came back; the
candidate's predictions against the stable model's; the shadow's agreement (numbers within a
tolerance, labels equal); and for A/B tests, the outcomes reported through feedback."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.policy import AbPolicy, CanaryPolicy, ShadowPolicy, policy_of

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
    # live quality per variant from late labels: {"task", "stable": {...}, "candidate": {...}}
    quality: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

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
    if isinstance(policy, ShadowPolicy) and len(other):
        pairs = stable.merge(other, on=["_request_id", "_row"], suffixes=("", "_shadow"))
        if len(pairs):
            result.agreement = agreement(
                pairs["_prediction"],
                pairs["_prediction_shadow"],
                rtol=policy.agreement_rtol,
                atol=policy.agreement_atol,
            )
    if isinstance(policy, AbPolicy):
        result.outcomes = _outcomes(settings, record.name, ok, policy.outcome_source)
    elif "_prediction" in ok.columns:
        result.quality = _quality(settings, record.name, stable, other, other_name)
    return result


def agreement(stable: pd.Series, other: pd.Series, *, rtol: float, atol: float) -> float:
    """The share of paired predictions that agree: numbers (floats) within
    `atol + rtol * |stable|` (numpy.isclose), labels (integers, booleans, text) only when
    equal — 0.4 and 0.41 are the same house price, class 3 and class 4 are not."""
    import numpy as np
    import pandas as pd

    if not len(stable):
        return 0.0
    if pd.api.types.is_float_dtype(stable) and pd.api.types.is_float_dtype(other):
        a = stable.to_numpy(dtype=np.float64)
        b = other.to_numpy(dtype=np.float64)
        return float(np.isclose(b, a, rtol=rtol, atol=atol).mean())
    return float((stable.astype(str).to_numpy() == other.astype(str).to_numpy()).mean())


def _quality(
    settings: Settings, endpoint: str, stable: pd.DataFrame, other: pd.DataFrame, name: str
) -> dict[str, Any] | None:
    """Live quality of each variant over the rows whose labels came back (a shadow's rows
    share their request ids with stable's, so both are scored on the same labels)."""
    import pandas as pd

    from shipyard.errors import InvalidArgumentError
    from shipyard.monitoring.performance import join_labels, score
    from shipyard.monitoring.sources import endpoint_labels

    labels = endpoint_labels(settings, endpoint)
    if labels.empty:
        return None
    keep = ["_request_id", "_row", "_prediction", "_model_version"]
    keep += [c for c in stable.columns if c.startswith("_proba_")]
    joined = {
        v: join_labels(df[[c for c in keep if c in df]], labels)
        for v, df in (("stable", stable), (name, other))
    }
    both = pd.concat(joined.values())
    if both.empty:
        return None
    try:
        task = score(both)["task"]
        return {"task": task, **{v: score(df, task)["overall"] for v, df in joined.items()}}
    except (InvalidArgumentError, ValueError, TypeError) as exc:  # labels unlike predictions
        return {"task": None, "error": str(exc)}


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


def _outcomes(settings: Settings, endpoint: str, ok: pd.DataFrame, source: str) -> dict[str, Any]:
    """Outcomes reported for each request (row 0), attributed to the variant that served it:
    the `outcome` of feedback, or its `label` for tests started before outcomes had a field."""
    import pandas as pd

    from shipyard.stores.predictions import PredictionLogStore

    folder, column = (
        (settings.outcomes_dir, "_outcome")
        if source == "outcome"
        else (settings.labels_dir, "_label")
    )
    reported = PredictionLogStore(folder).read(endpoint).to_pandas()
    if reported.empty:
        return {"stable": [], "candidate": []}
    first = ok[ok["_row"] == 0][["_request_id", "_variant"]]
    latest = reported.sort_values("_ts").drop_duplicates(["_request_id", "_row"], keep="last")
    joined = first.merge(latest[latest["_row"] == 0], on="_request_id")
    values = pd.to_numeric(joined[column], errors="coerce")
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
