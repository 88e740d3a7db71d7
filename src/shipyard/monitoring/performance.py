"""Live model quality from late labels: logged predictions joined with the labels that came
back for them (by request_id and row), scored per model version.

Classification: accuracy, F1 (binary: the positive class is the larger label; otherwise
macro-averaged) and ROC AUC when probabilities were logged (binary). Regression: MAE, RMSE.

A row whose prediction or label is missing is not scored, and said so (`unscored`, `reason`);
a metric that cannot be computed is None with the reason, never NaN.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd

Task = Literal["auto", "classification", "regression"]
METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1", "auc"),
    "regression": ("mae", "rmse"),
}


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Predictions that have a label; the latest label wins when one was sent twice."""
    if labels.empty or predictions.empty:
        return predictions.iloc[0:0].assign(_label=[])
    latest = labels.sort_values("_ts").drop_duplicates(["_request_id", "_row"], keep="last")
    latest = latest.rename(columns={"_ts": "_label_ts"})
    return predictions.merge(latest, on=["_request_id", "_row"], how="inner")


def _task(joined: pd.DataFrame, task: Task) -> str:
    import pandas as pd

    if task != "auto":
        return task
    if any(c.startswith("_proba_") for c in joined.columns):
        return "classification"
    pred = joined["_prediction"].dropna()  # a classifier's null answer must not make it regression
    if not pd.api.types.is_float_dtype(pred):
        return "classification"
    return (
        "classification" if pred.nunique() <= 20 and (pred == pred.round()).all() else "regression"
    )


def score(joined: pd.DataFrame, task: Task = "auto") -> dict[str, Any]:
    """Metrics over all labelled rows and per model version."""
    if joined.empty:
        return {"labelled_rows": 0, "task": task, "overall": {}, "by_version": {}}
    kind = _task(joined, task)
    out: dict[str, Any] = {
        "labelled_rows": len(joined),
        "task": kind,
        "overall": _metrics(joined, kind),
        "by_version": {},
    }
    for version, group in joined.groupby("_model_version", sort=True):
        out["by_version"][str(version)] = _metrics(group, kind)
    return out


def _metrics(df: pd.DataFrame, kind: str) -> dict[str, Any]:
    """The task's metrics over the rows that have both a prediction and a label."""
    import pandas as pd

    unusable = (pd.isna(df["_prediction"]) | pd.isna(df["_label"])).to_numpy()
    skipped = int(unusable.sum())
    if not skipped:
        return _scored(df, kind)
    n = len(df)
    why = f"{skipped} of {n} labelled rows have no prediction or no label"
    if skipped == n:
        return {"n": n, **dict.fromkeys(METRICS[kind]), "scored": 0, "unscored": n, "reason": why}
    return {
        **_scored(df[~unusable], kind),
        "n": n,
        "scored": n - skipped,
        "unscored": skipped,
        "reason": f"{why}: not scored",
    }


def _scored(df: pd.DataFrame, kind: str) -> dict[str, float | int | None]:
    import numpy as np
    from sklearn import metrics as skm

    y_pred = df["_prediction"].to_numpy()
    y_true = df["_label"].to_numpy()
    if kind == "regression":
        try:
            t = y_true.astype(np.float64)
            p = y_pred.astype(np.float64)
        except ValueError as exc:
            raise InvalidArgumentError("regression labels must be numbers") from exc
        err = p - t
        return {
            "n": len(df),
            "mae": float(np.abs(err).mean()),
            "rmse": float(math.sqrt((err**2).mean())),
        }
    t, p = _comparable(y_true, y_pred)
    classes = sorted(set(t.tolist()) | set(p.tolist()))
    binary = len(classes) <= 2
    result: dict[str, float | int | None] = {
        "n": len(df),
        "accuracy": float(skm.accuracy_score(t, p)),
        "f1": float(
            skm.f1_score(
                t,
                p,
                average="binary" if binary and len(classes) == 2 else "macro",
                pos_label=classes[-1] if binary and len(classes) == 2 else 1,
                zero_division=0,
            )
        ),
        "auc": None,
    }
    positive = f"_proba_{_label_text(classes[-1])}"
    if binary and positive in df.columns:
        # over the rows logged with probabilities (requests that did not ask have none)
        scores = df[positive].to_numpy(dtype=np.float64)
        has = ~np.isnan(scores)
        truth = t[has] == classes[-1]
        if truth.any() and not truth.all():
            result["auc"] = float(skm.roc_auc_score(truth, scores[has]))
    return result


def _label_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _comparable(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Labels and predictions as one type: numbers when both are numbers, text otherwise."""
    import numpy as np

    try:
        return y_true.astype(np.float64), y_pred.astype(np.float64)
    except (ValueError, TypeError):
        return (
            np.array([_label_text(v) for v in y_true]),
            np.array([_label_text(v) for v in y_pred]),
        )


NO_LABELS = (
    "no label was sent back for this endpoint (POST /endpoints/{endpoint}/feedback, or "
    "shipyard monitor labels FILE --endpoint {endpoint})"
)


def live_accuracy(
    predictions: pd.DataFrame, labels: pd.DataFrame, task: Task = "auto", *, endpoint: str = ""
) -> dict[str, Any]:
    """`score` over the predictions that got a label, saying why whatever cannot be computed
    cannot be: `not_computable` maps "all" (nothing to score) or a metric name to the reason.
    Rows skipped for a missing prediction or label are said so by `score` (`reason`)."""
    joined = join_labels(predictions, labels)
    empty: dict[str, Any] = {"labelled_rows": 0, "task": task, "overall": {}, "by_version": {}}
    base = {"predictions": len(predictions)}
    if labels.empty:
        return {**base, **empty, "not_computable": {"all": NO_LABELS.format(endpoint=endpoint)}}
    if joined.empty:
        reason = f"{len(labels)} label(s) were sent back, none for a prediction in this window"
        return {**base, **empty, "not_computable": {"all": reason}}
    doc = score(joined, task)
    reasons: dict[str, str] = {}
    for metrics in (doc["overall"], *doc["by_version"].values()):
        for key in METRICS[doc["task"]]:
            value = metrics.get(key)
            if isinstance(value, float) and math.isnan(value):  # never a bare NaN
                metrics[key] = value = None
            if value is None and key not in reasons:
                reasons[key] = _why_not(metrics, key)
    return {**base, **doc, "not_computable": reasons}


AUC_NEEDS = (
    "AUC needs a binary task, class probabilities logged with the predictions and labels of "
    "both classes"
)


def _why_not(metrics: dict[str, Any], key: str) -> str:
    """Why metric `key` is None: no row could be scored, or the metric needs what is missing."""
    if metrics.get("reason") and metrics.get("unscored") == metrics.get("n"):
        return str(metrics["reason"])
    return AUC_NEEDS if key == "auc" else f"{key} is undefined on these rows"


def accuracy_over_time(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    start_ms: int,
    end_ms: int,
    buckets: int = 24,
    task: Task = "auto",
    endpoint: str = "",
) -> dict[str, Any]:
    """Live quality in `buckets` equal intervals of [start_ms, end_ms), per model version: the
    predictions made in each interval that got a label back, scored (accuracy for classes,
    MAE for numbers). An interval without labelled rows has no point; `not_computable` says
    why there is no series at all."""
    if buckets < 1:
        raise InvalidArgumentError("buckets must be at least 1", field="buckets")
    width = max(1, -(-(end_ms - start_ms) // buckets))
    doc: dict[str, Any] = {"start_ms": start_ms, "end_ms": end_ms, "bucket_ms": width}
    joined = join_labels(predictions, labels)
    if labels.empty:
        return {**doc, "versions": {}, "not_computable": NO_LABELS.format(endpoint=endpoint)}
    if joined.empty:
        reason = f"{len(labels)} label(s) were sent back, none for a prediction in this window"
        return {**doc, "versions": {}, "not_computable": reason}
    kind = _task(joined, task)
    metric = "accuracy" if kind == "classification" else "mae"
    slot = ((joined["_ts"] - start_ms) // width).clip(0, buckets - 1).astype("int64")
    versions: dict[str, list[dict[str, Any]]] = {}
    for key, group in joined.groupby([joined["_model_version"], slot], sort=True):
        version, index = key  # type: ignore[misc]
        index = int(str(index))
        value = _metrics(group, kind).get(metric)
        if isinstance(value, float) and math.isnan(value):
            value = None
        versions.setdefault(str(version), []).append(
            {"t": start_ms + index * width, "n": len(group), "value": value}
        )
    return {**doc, "task": kind, "metric": metric, "versions": versions, "not_computable": None}
