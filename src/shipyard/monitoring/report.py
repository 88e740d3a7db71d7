"""The drift report as one self-contained HTML page (no script, no network: inline SVG charts
with axes, so it opens offline and stays in the hundreds of kB) and as JSON.

Per column: the reference and current distributions overlaid (see monitoring.charts), the
test, statistic, p-value and effect size. For the whole sample: the multivariate (domain
classifier) verdict, or why it was not computed. For an endpoint: live accuracy from the labels
sent back, or why it cannot be computed.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring.charts import chart

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.monitoring.drift import DriftReport
    from shipyard.monitoring.quality import QualityReport
    from shipyard.sketches import Profile

__all__ = ["chart", "multivariate_section", "render_html"]

PROFILE_ONLY = (
    "the reference is the training data's profile, not its rows; pass --reference FILE "
    "to compare whole rows"
)


def multivariate_section(
    reference: pd.DataFrame | None,
    current: pd.DataFrame,
    columns: list[str],
    alpha: float,
) -> dict[str, Any]:
    """The domain classifier's result as a dict (`computed: true`), or `computed: false` and
    the reason (no reference rows, too few rows) — never left out in silence."""
    from shipyard.monitoring.multivariate import domain_classifier

    if reference is None:
        return {"computed": False, "reason": PROFILE_ONLY}
    try:
        result = domain_classifier(reference, current, columns=columns, alpha=alpha)
    except InvalidArgumentError as exc:
        return {"computed": False, "reason": exc.message}
    return {"computed": True, **result.to_dict()}


def render_html(
    report: DriftReport,
    quality: QualityReport | None,
    reference: Profile,
    current: Profile,
    *,
    title: str,
    source: dict[str, Any],
    multivariate: dict[str, Any] | None = None,
    accuracy: dict[str, Any] | None = None,
) -> str:
    """The page. `multivariate` is `multivariate_section`'s dict; `accuracy` (endpoints only)
    is `performance.live_accuracy`'s."""
    from jinja2 import Environment, select_autoescape

    env = Environment(autoescape=select_autoescape(default=True))
    template = env.from_string(
        resources.files("shipyard.monitoring").joinpath("templates/report.html.j2").read_text()
    )
    rows: list[dict[str, Any]] = []
    for name, col in report.columns.items():
        q = quality.columns.get(name) if quality else None
        rows.append(
            {
                "name": name,
                "col": col.to_dict(),
                "quality": q.to_dict() if q else None,
                "svg": chart(reference.columns[name], current.columns[name])
                if name in reference.columns and name in current.columns
                else "",
            }
        )
    rows.sort(key=lambda r: (not r["col"]["drifted"], r["col"]["p_adjusted"] or 1.0))
    return template.render(
        title=title,
        report=report.to_dict(),
        rows=rows,
        source=source,
        quality=quality.to_dict() if quality else None,
        multivariate=multivariate,
        accuracy=accuracy,
        accuracy_headline=accuracy_headline(accuracy),
        metric_names=METRIC_NAMES,
    )


METRIC_NAMES = ("accuracy", "f1", "auc", "mae", "rmse")


def accuracy_headline(accuracy: dict[str, Any] | None) -> str:
    """One phrase for the summary: the headline metric over the labelled rows, or that it
    cannot be computed."""
    if accuracy is None:
        return ""
    overall = accuracy.get("overall") or {}
    key = "mae" if "mae" in overall else "accuracy"
    name = "live MAE" if key == "mae" else "live accuracy"
    value = overall.get(key)
    if "all" in accuracy.get("not_computable", {}) or value is None:
        return f"{name}: not computable"
    return f"{name} {value:.4g} over {accuracy['labelled_rows']} labelled rows"
