"""Quality gates: what a model version must pass before it may get an alias or serve.

    gates.configure("churn", [
        MetricGate("roc_auc", max_drop=0.01),           # vs the champion, on the same data
        LatencyGate(p99_ms=5.0),                        # measured on the artifact as served
        FairnessGate("gender", "demographic_parity_ratio", min_ratio=0.8),
        MinSamples(500),
    ])
    report = gates.check("churn", 3, holdout_df, target="churned")   # stored with version 3
    report.passed

A model with gates refuses `set_alias` and deployments of a version whose latest report did
not pass, unless the caller overrides with a reason (audited). Metrics are scikit-learn's,
fairness ratios fairlearn's.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from shipyard.errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.config import Settings
    from shipyard.flavors import LoadedModel
    from shipyard.registry import Registry

LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})
METRICS = ("roc_auc", "accuracy", "f1", "precision", "recall", "log_loss", "rmse", "mae", "r2")
FAIRNESS = ("demographic_parity_ratio", "equalized_odds_ratio")


@dataclass(frozen=True)
class MetricGate:
    """The metric may be worse than the champion's by at most `max_drop` (and, if given,
    no worse than `min_value` in absolute terms)."""

    kind: ClassVar[str] = "metric"
    metric: str = "roc_auc"
    max_drop: float = 0.0
    min_value: float | None = None
    champion: str = "champion"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InvalidArgumentError(
                f"unknown metric {self.metric!r}; use one of: {', '.join(METRICS)}",
                field="metric",
            )
        if self.max_drop < 0:
            raise InvalidArgumentError("max_drop must not be negative", field="max_drop")


@dataclass(frozen=True)
class LatencyGate:
    """p99 latency of `rows`-row predictions of the artifact as served, under a budget.

    Measured in three rounds of `requests` calls; the verdict takes the best round, so a
    neighbour's burst of CPU on a shared machine does not fail a model that is fast enough,
    while a model that is slow in every round still fails."""

    kind: ClassVar[str] = "latency"
    p99_ms: float = 10.0
    rows: int = 1
    requests: int = 300

    def __post_init__(self) -> None:
        if self.p99_ms <= 0 or self.rows < 1 or self.requests < 20:
            raise InvalidArgumentError(
                "latency gate: p99_ms > 0, rows >= 1 and requests >= 20", field="p99_ms"
            )


@dataclass(frozen=True)
class FairnessGate:
    """Ratio (fairlearn) of the worst to the best group over a sensitive column, >= bound."""

    kind: ClassVar[str] = "fairness"
    column: str = ""
    metric: str = "demographic_parity_ratio"
    min_ratio: float = 0.8

    def __post_init__(self) -> None:
        if not self.column:
            raise InvalidArgumentError("fairness gate needs the sensitive column", field="column")
        if self.metric not in FAIRNESS:
            raise InvalidArgumentError(
                f"unknown fairness metric {self.metric!r}; use {' or '.join(FAIRNESS)}",
                field="metric",
            )
        if not 0 < self.min_ratio <= 1:
            raise InvalidArgumentError("min_ratio is in (0, 1]", field="min_ratio")


@dataclass(frozen=True)
class MinSamples:
    """At least `n` labelled evaluation rows."""

    kind: ClassVar[str] = "min_samples"
    n: int = 100

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InvalidArgumentError("min samples must be at least 1", field="n")


Gate = MetricGate | LatencyGate | FairnessGate | MinSamples
_KINDS: dict[str, type[Any]] = {
    g.kind: g for g in (MetricGate, LatencyGate, FairnessGate, MinSamples)
}


def to_dict(gate: Gate) -> dict[str, Any]:
    return {"kind": gate.kind, **asdict(gate)}


def from_dict(doc: Mapping[str, Any]) -> Gate:
    doc = dict(doc)
    kind = doc.pop("kind", None)
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise InvalidArgumentError(
            f"unknown gate kind {kind!r}; use one of: {', '.join(_KINDS)}", field="kind"
        )
    try:
        return cls(**doc)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise InvalidArgumentError(f"{kind} gate: {exc}", field="gates") from exc


@dataclass
class GateResult:
    name: str
    kind: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str = ""


@dataclass
class GateReport:
    model: str
    version: int
    champion: int | None
    rows: int
    target: str
    data_digest: str
    gates: list[GateResult]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "champion": self.champion,
            "rows": self.rows,
            "target": self.target,
            "data_digest": self.data_digest,
            "passed": self.passed,
            "gates": [asdict(g) for g in self.gates],
            "metrics": self.metrics,
            "latency_ms": self.latency_ms,
        }


def configure(
    name: str, gates: Sequence[Gate | Mapping[str, Any]], *, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Set the gates of a registered model (replacing earlier ones; [] removes them)."""
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    docs = [to_dict(g if not isinstance(g, Mapping) else from_dict(g)) for g in gates]
    Registry(open_stores(settings)).set_gates(name, docs)
    return docs


def check(
    name: str,
    version: int,
    data: pd.DataFrame,
    *,
    target: str,
    gates: Sequence[Gate | Mapping[str, Any]] | None = None,
    record: bool = True,
    trusted: bool = False,
    settings: Settings | None = None,
) -> GateReport:
    """Evaluate a version against its model's gates (or `gates`) on held-out `data`, and store
    the report with the version (unless `record=False`)."""
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    registry = Registry(open_stores(settings))
    return check_version(
        registry, name, version, data, target=target, gates=gates, record=record, trusted=trusted
    )


def check_version(
    registry: Registry,
    name: str,
    version: int,
    data: pd.DataFrame,
    *,
    target: str,
    gates: Sequence[Gate | Mapping[str, Any]] | None = None,
    record: bool = True,
    trusted: bool = False,
) -> GateReport:
    """`check` over a given registry (the stores a caller already has open)."""
    mv = registry.get_version(name, int(version))
    chosen = [
        g if not isinstance(g, Mapping) else from_dict(g)
        for g in (gates if gates is not None else registry.gates(name))
    ]
    _check_gate_inputs(name, chosen, data, target)
    model = registry.load(f"models:/{name}/{mv.version}", trusted=trusted)
    y = data[target].to_numpy()
    X = _features(model, data, target, chosen)
    candidate = evaluate(model, X, y)
    champion_version, champion_metrics = _champion(registry, name, chosen, X, y, trusted)
    results, latency = _apply_gates(chosen, model, data, X, y, candidate, champion_metrics)
    report = GateReport(
        model=name,
        version=mv.version,
        champion=champion_version,
        rows=len(data),
        target=target,
        data_digest=_digest(data),
        gates=results,
        metrics={
            "candidate": candidate,
            **{f"champion@{k}": v for k, v in champion_metrics.items()},
        },
        latency_ms=latency,
    )
    if record:
        registry.record_gate_report(name, mv.version, report.to_dict(), passed=report.passed)
    return report


def _check_gate_inputs(name: str, chosen: list[Gate], data: pd.DataFrame, target: str) -> None:
    if not chosen:
        raise InvalidArgumentError(
            f"model '{name}' has no quality gates; configure them with `shipyard gate set "
            f"{name} --metric roc_auc:0.01 …` or pass gates=",
            field="gates",
        )
    if target not in data.columns:
        raise InvalidArgumentError(
            f"target column '{target}' is not in the data (columns: "
            f"{', '.join(map(str, data.columns[:20]))})",
            field="target",
        )
    for g in chosen:
        if isinstance(g, FairnessGate) and g.column not in data.columns:
            raise InvalidArgumentError(
                f"sensitive column '{g.column}' of the fairness gate is not in the data",
                field="column",
            )


def _apply_gates(
    chosen: list[Gate],
    model: LoadedModel,
    data: pd.DataFrame,
    X: Any,
    y: np.ndarray,
    candidate: dict[str, float],
    champion_metrics: dict[str, dict[str, float]],
) -> tuple[list[GateResult], dict[str, float]]:
    """Each gate's result, in order, and the latency figures (of the last latency gate)."""
    results: list[GateResult] = []
    latency: dict[str, float] = {}
    preds = model.predict(X)
    for g in chosen:
        if isinstance(g, MetricGate):
            results.append(_metric_gate(g, candidate, champion_metrics.get(g.champion)))
        elif isinstance(g, LatencyGate):
            latency = _latency(model, X, g)
            results.append(
                GateResult(
                    f"latency p99 ({g.rows} row)",
                    g.kind,
                    latency["p99"] <= g.p99_ms,
                    latency["p99"],
                    g.p99_ms,
                    f"p50 {latency['p50']:.3f} ms over {g.requests} calls of the "
                    f"{model.backend} artifact",
                )
            )
        elif isinstance(g, FairnessGate):
            results.append(_fairness(g, y, preds, data[g.column].to_numpy()))
        elif isinstance(g, MinSamples):
            results.append(
                GateResult(
                    "evaluation samples", g.kind, len(data) >= g.n, float(len(data)), float(g.n)
                )
            )
    return results, latency


# -- pieces ------------------------------------------------------------------------------------


def _features(model: LoadedModel, data: pd.DataFrame, target: str, gates: list[Gate]) -> Any:
    names = model.signature.names
    if all(n in data.columns for n in names):
        return data[names]
    drop = {target} | {g.column for g in gates if isinstance(g, FairnessGate)}
    return data[[c for c in data.columns if c not in drop]].to_numpy()


def evaluate(model: LoadedModel, X: Any, y: np.ndarray) -> dict[str, float]:
    """The metrics gates compare (classifiers: accuracy, f1, precision, recall, roc_auc,
    log_loss; regressors: rmse, mae, r2) of `model` on features `X` and labels `y`."""
    from sklearn import metrics as m

    pred = model.predict(X)
    out: dict[str, float] = {}
    if model.has_proba:
        proba = np.asarray(model.predict_proba(X))
        classes = list(model.classes or [])
        average = "binary" if len(classes) == 2 else "macro"
        pos = classes[1] if len(classes) == 2 else None
        kw: dict[str, Any] = {"average": average, "zero_division": 0}
        if pos is not None:
            kw["pos_label"] = pos
        out["accuracy"] = float(m.accuracy_score(y, pred))
        out["f1"] = float(m.f1_score(y, pred, **kw))
        out["precision"] = float(m.precision_score(y, pred, **kw))
        out["recall"] = float(m.recall_score(y, pred, **kw))
        if len(np.unique(y)) > 1:
            if len(classes) == 2:
                out["roc_auc"] = float(m.roc_auc_score(y == pos, proba[:, 1]))
            else:
                out["roc_auc"] = float(m.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
            out["log_loss"] = float(m.log_loss(y, proba, labels=classes))
    else:
        pred = np.asarray(pred, dtype=float)
        out["rmse"] = float(np.sqrt(m.mean_squared_error(y, pred)))
        out["mae"] = float(m.mean_absolute_error(y, pred))
        out["r2"] = float(m.r2_score(y, pred))
    return out


def _champion(
    registry: Registry, name: str, gates: list[Gate], X: Any, y: np.ndarray, trusted: bool
) -> tuple[int | None, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, float]] = {}
    version = None
    for alias in sorted({g.champion for g in gates if isinstance(g, MetricGate)}):
        try:
            mv = registry.resolve(f"models:/{name}@{alias}")
        except NotFoundError:
            continue
        version = mv.version if alias == "champion" or version is None else version
        champion = registry.load(f"models:/{name}/{mv.version}", trusted=trusted)
        out[alias] = evaluate(champion, X, y)
    return version, out


def _metric_gate(
    g: MetricGate, candidate: dict[str, float], champion: dict[str, float] | None
) -> GateResult:
    value = candidate.get(g.metric)
    label = f"{g.metric} vs {g.champion}"
    if value is None:
        return GateResult(label, g.kind, False, None, None, f"{g.metric} does not apply here")
    lower = g.metric in LOWER_IS_BETTER
    ok, threshold, detail = True, None, ""
    if g.min_value is not None:
        ok = value <= g.min_value if lower else value >= g.min_value
        threshold, detail = g.min_value, f"bound {g.min_value:g}"
    if champion is None:
        return GateResult(
            label, g.kind, ok, value, threshold, (detail + "; " if detail else "") + "no champion"
        )
    best = champion[g.metric]
    bound = best + g.max_drop if lower else best - g.max_drop
    ok = ok and (value <= bound if lower else value >= bound)
    threshold = bound
    return GateResult(
        label,
        g.kind,
        ok,
        value,
        bound,
        f"champion {best:.4f}, allowed drop {g.max_drop:g}" + (f"; {detail}" if detail else ""),
    )


def _latency(model: LoadedModel, X: Any, g: LatencyGate, rounds: int = 3) -> dict[str, float]:
    batch = X.iloc[: g.rows] if hasattr(X, "iloc") else X[: g.rows]
    for _ in range(20):  # warm up
        model.predict(batch)
    best: dict[str, float] | None = None
    for _ in range(rounds):
        times = np.empty(g.requests)
        for i in range(g.requests):
            start = time.perf_counter_ns()
            model.predict(batch)
            times[i] = time.perf_counter_ns() - start
        ms = times / 1e6
        found = {
            "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)),
            "mean": float(ms.mean()),
        }
        if best is None or found["p99"] < best["p99"]:
            best = found
    assert best is not None
    return best


def _fairness(g: FairnessGate, y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> GateResult:
    from fairlearn import metrics as fm

    labels = np.unique(y)
    if len(labels) != 2:
        raise InvalidArgumentError(
            f"the {g.metric} gate needs a binary target; this one has {len(labels)} classes",
            field="metric",
        )
    pos = labels[1]
    fn = getattr(fm, g.metric)
    ratio = float(fn(y == pos, np.asarray(pred) == pos, sensitive_features=groups))
    return GateResult(
        f"{g.metric} over {g.column}",
        g.kind,
        ratio >= g.min_ratio,
        ratio,
        g.min_ratio,
        f"{len(np.unique(groups))} groups",
    )


def _digest(data: pd.DataFrame) -> str:
    import pandas as pd

    hashed = pd.util.hash_pandas_object(data, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()
