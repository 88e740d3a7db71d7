"""Distillation: a smaller scikit-learn student trained on the teacher's outputs over the
training rows.

A classifier's student learns the teacher's class probabilities, not its hard labels: each
row is repeated once per class with that class as its label and the teacher's probability of
it as the sample weight, so the student's log-loss is the cross-entropy to the teacher's
soft targets (and the student is a plain scikit-learn classifier, saved with skops). A
regressor's student fits the teacher's predictions.

Students (`student=`): "hgb", a shallow HistGradientBoosting (depth 3, 50 iterations);
"mlp", a small MLP (one hidden layer of 32; inputs imputed by the median and standardized).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.flavors import LoadedModel

STUDENTS = ("hgb", "mlp")
MIN_WEIGHT = 1e-4  # (row, class) pairs the teacher gives less probability are left out


def distill(
    teacher: LoadedModel, X: pd.DataFrame, *, student: str, what: str
) -> tuple[Any, dict[str, Any]]:
    """The fitted student and what it is."""
    import numpy as np
    import pandas as pd

    if student not in STUDENTS:
        raise InvalidArgumentError(
            f"unknown student {student!r}; use one of: {', '.join(STUDENTS)}", field="student"
        )
    if len(X) < 10:
        raise InvalidArgumentError(
            f"{len(X)} training row(s) are too few to distill {what} into a student",
            field="train_data",
        )
    matrix = teacher.signature.to_model_input(teacher.signature.check_frame(X))
    classifier = teacher.has_proba and teacher.classes is not None
    model = _student(student, classifier)
    if classifier:
        classes = list(teacher.classes or [])
        proba = np.asarray(teacher.predict_proba(X))
        rows, labels, weights = [], [], []
        for j, label in enumerate(classes):
            keep = proba[:, j] >= MIN_WEIGHT
            rows.append(_take(matrix, keep))
            labels.append(np.full(int(keep.sum()), label, dtype=object))
            weights.append(proba[keep, j])
        stacked = (
            pd.concat(rows, ignore_index=True)
            if isinstance(matrix, pd.DataFrame)
            else np.vstack(rows)
        )
        y = np.concatenate(labels)
        y = y.astype(np.asarray(classes).dtype) if np.asarray(classes).dtype != object else y
        _fit(model, stacked, y, np.concatenate(weights))
    else:
        _fit(model, matrix, np.asarray(teacher.predict(X), dtype=float), None)
    return model, {
        "student": student,
        "student_class": type(model).__name__,
        "train_rows": len(X),
        "targets": "teacher probabilities" if classifier else "teacher predictions",
    }


def _student(student: str, classifier: bool) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if student == "hgb":
        cls = HistGradientBoostingClassifier if classifier else HistGradientBoostingRegressor
        return cls(max_depth=3, max_iter=50, early_stopping=False, random_state=0)
    from sklearn.impute import SimpleImputer

    net = MLPClassifier if classifier else MLPRegressor
    # the imputer: a teacher that took missing values (boosted trees) keeps taking them
    return make_pipeline(
        SimpleImputer(strategy="median"),
        StandardScaler(),
        net(hidden_layer_sizes=(32,), max_iter=300, random_state=0),
    )


def _fit(model: Any, X: Any, y: Any, weights: Any) -> None:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # an MLP short of iterations is still a student
        warnings.simplefilter("ignore", ConvergenceWarning)
        if weights is None:
            model.fit(X, y)
        elif hasattr(model, "steps"):
            model.fit(X, y, **{f"{model.steps[-1][0]}__sample_weight": weights})
        else:
            model.fit(X, y, sample_weight=weights)


def _take(matrix: Any, keep: Any) -> Any:
    import numpy as np

    return matrix.iloc[np.flatnonzero(keep)] if hasattr(matrix, "iloc") else matrix[keep]
