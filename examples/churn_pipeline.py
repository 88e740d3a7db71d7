"""Churn training pipeline: validate → split → train (two candidates) → evaluate → register →
gate → request approval.

    shipyard pipeline run examples/churn_pipeline.py                  # local
    shipyard pipeline run examples/churn_pipeline.py --param rows=20000 --executor ray
    shipyard pipeline run examples/churn_pipeline.py                  # again: every step cached

The data is generated (seeded), so the example runs offline. The contract lives next to this
file in `churn_contract.yaml`; the gates are set on the model the first time it is registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import shipyard as sy
from shipyard.pipelines import gates
from shipyard.pipelines.contracts import Suite

MODEL = "churn-pipeline"
FEATURES = ["tenure", "monthly_charges", "support_calls", "contract_months", "late_payments"]
CONTRACT = Suite.from_yaml(Path(__file__).with_name("churn_contract.yaml"))
GATES = [
    gates.MetricGate("roc_auc", max_drop=0.01),
    gates.LatencyGate(p99_ms=20.0),
    gates.FairnessGate("region", "demographic_parity_ratio", min_ratio=0.5),
    gates.MinSamples(500),
]


@sy.step
def load_customers(rows: int, seed: int = 0) -> pd.DataFrame:
    """Customers with a churn label (generated: a logistic model of the features)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "customer_id": np.arange(rows),
            "tenure": rng.integers(0, 72, rows),
            "monthly_charges": rng.gamma(4.0, 18.0, rows).round(2),
            "support_calls": rng.poisson(1.5, rows),
            "contract_months": rng.choice([1, 12, 24], rows, p=[0.5, 0.3, 0.2]),
            "late_payments": rng.poisson(0.6, rows),
            "region": rng.choice(["north", "south", "east", "west"], rows),
        }
    )
    logit = (
        -1.0
        - 0.04 * df["tenure"]
        + 0.012 * df["monthly_charges"]
        + 0.45 * df["support_calls"]
        - 0.05 * df["contract_months"]
        + 0.5 * df["late_payments"]
    )
    df["churned"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


validate = CONTRACT.step("validate")


@sy.step(outputs=2)
def split(df: pd.DataFrame, test_size: float = 0.25, seed: int = 0) -> tuple[Any, Any]:
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        df, test_size=test_size, random_state=seed, stratify=df["churned"]
    )
    return train, test


@sy.step
def train(df: pd.DataFrame, kind: str = "logreg", C: float = 1.0, seed: int = 0) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    else:
        model = RandomForestClassifier(n_estimators=60, max_depth=8, random_state=seed, n_jobs=1)
    model.fit(df[FEATURES], df["churned"])
    sy.current_step().log_params({"kind": kind})
    return model


@sy.step
def evaluate(logreg: Any, forest: Any, test: pd.DataFrame) -> dict[str, Any]:
    """AUC of both candidates on the held-out split; the better one goes on."""
    from sklearn.metrics import roc_auc_score

    auc = {
        name: float(roc_auc_score(test["churned"], m.predict_proba(test[FEATURES])[:, 1]))
        for name, m in (("logreg", logreg), ("forest", forest))
    }
    sy.current_step().log_metrics({f"auc_{k}": v for k, v in auc.items()})
    return {"best": max(auc, key=auc.get), "auc": auc}


@sy.step
def register(choice: dict[str, Any], logreg: Any, forest: Any, train_df: pd.DataFrame) -> dict:
    """Register the better candidate (with its training data as the monitoring reference)."""
    model = logreg if choice["best"] == "logreg" else forest
    registry = sy.Registry(_stores())
    mv = registry.register(
        MODEL,
        model,
        input_example=train_df[FEATURES].head(5),
        reference_data=train_df[FEATURES],
        reference_target=train_df["churned"],
        description=f"{choice['best']}, held-out AUC {choice['auc'][choice['best']]:.4f}",
        run_id=sy.current_step().run_id,
    )
    if not registry.gates(MODEL):
        gates.configure(MODEL, GATES)
    return {"name": MODEL, "version": mv.version}


@sy.step
def gate(registered: dict, test: pd.DataFrame) -> dict:
    """Check the new version against the gates (vs the champion, on the same held-out data)."""
    sy.Registry.wait_for_conversions(timeout=120)  # measure latency of the artifact as served
    report = gates.check(registered["name"], registered["version"], test, target="churned")
    sy.current_step().log_metrics({"gates_passed": float(report.passed)})
    return report.to_dict()


@sy.step
def request_approval(registered: dict, report: dict) -> dict:
    """A version that passed its gates becomes the challenger and waits for a reviewer."""
    registry = sy.Registry(_stores())
    name, version = registered["name"], registered["version"]
    if not report["passed"]:
        failed = [g["name"] for g in report["gates"] if not g["passed"]]
        return {**registered, "status": f"failed gates: {', '.join(failed)}"}
    registry.set_alias(name, "challenger", version, reason="passed its quality gates")
    if registry.stores.metadata.models.get_version(name, version).approval == "pending":
        registry.request_approval(name, version, comment="passed gates; please review")
    return {**registered, "status": "awaiting approval as challenger"}


def _stores() -> Any:
    from shipyard.stores import open_stores

    return open_stores()


@sy.Pipeline
def churn(rows: int = 8000, C: float = 1.0, test_size: float = 0.25) -> Any:
    customers = validate(load_customers(rows))
    train_df, test_df = split(customers, test_size=test_size)
    logreg = train.named("train_logreg")(train_df, kind="logreg", C=C)
    forest = train.named("train_forest")(train_df, kind="forest")
    choice = evaluate(logreg, forest, test_df)
    registered = register(choice, logreg, forest, train_df)
    return request_approval(registered, gate(registered, test_df))


if __name__ == "__main__":
    result = churn.run(progress=True)
    print(result.value)
