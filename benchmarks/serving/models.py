"""The two models every server in the benchmark serves, trained the same way in every virtualenv
(each venv imports this file; scikit-learn is deterministic with the seeds below)."""

from __future__ import annotations

from typing import Any

MODELS = ("logreg", "rf")


def load_data() -> tuple[Any, Any]:
    """scikit-learn's breast-cancer data: 569 rows, 30 float features, as a DataFrame."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


def train(name: str, X: Any, y: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logreg":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=0))
    elif name == "rf":
        model = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0)
    else:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    return model.fit(X, y)


def check_same(name: str, model: Any, X: Any, expected: list[int]) -> None:
    """Refuse to go on if this venv's model predicts differently from the reference one."""
    got = [int(v) for v in model.predict(X)]
    if got != expected:
        diff = sum(a != b for a, b in zip(got, expected, strict=True))
        raise SystemExit(f"{name}: this venv's model differs from the reference on {diff} rows")
