"""The drift report as one self-contained HTML page (no script, no network: inline SVG charts,
so it opens offline and stays in the hundreds of kB) and as JSON.

Per column: the reference and current distributions overlaid (numeric: the reference's
quantile bins regrouped to at most 40 bars, drawn as densities over the value axis;
categorical: the most frequent categories), the test, statistic, p-value and effect size.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import TYPE_CHECKING, Any

from shipyard.sketches import CategoricalSketch, NumericSketch

if TYPE_CHECKING:
    from shipyard.monitoring.drift import DriftReport
    from shipyard.monitoring.quality import QualityReport
    from shipyard.sketches import Profile, Sketch

WIDTH, HEIGHT, PAD = 360, 120, 4
MAX_BARS = 40
MAX_CATEGORIES = 20


def _numeric_series(
    ref: NumericSketch, cur: NumericSketch
) -> tuple[list[str], list[float], list[float]]:
    """Regroup fine bins into <= MAX_BARS bars of about equal reference mass; heights are
    shares of each sample."""
    k = len(ref.counts)
    groups = max(1, min(MAX_BARS, k))
    size = -(-k // groups)
    labels, r_share, c_share = [], [], []
    r_total = max(sum(ref.counts), 1)
    c_total = max(sum(cur.counts), 1)
    edges = ref.edges
    for start in range(0, k, size):
        stop = min(start + size, k)
        lo = "-inf" if start == 0 else f"{edges[start - 1]:.4g}"
        hi = "+inf" if stop - 1 >= len(edges) else f"{edges[stop - 1]:.4g}"
        labels.append(f"({lo}, {hi}]")
        r_share.append(sum(ref.counts[start:stop]) / r_total)
        c_share.append(sum(cur.counts[start:stop]) / c_total)
    return labels, r_share, c_share


def _categorical_series(
    ref: CategoricalSketch, cur: CategoricalSketch
) -> tuple[list[str], list[float], list[float]]:
    merged = {
        k: ref.counts.get(k, 0) + cur.counts.get(k, 0) for k in set(ref.counts) | set(cur.counts)
    }
    top = sorted(merged, key=lambda k: -merged[k])[:MAX_CATEGORIES]
    r_total = max(ref.count, 1)
    c_total = max(cur.count, 1)
    rest_r = 1 - sum(ref.counts.get(k, 0) for k in top) / r_total
    rest_c = 1 - sum(cur.counts.get(k, 0) for k in top) / c_total
    labels = [*top, *(["(other)"] if rest_r > 1e-12 or rest_c > 1e-12 else [])]
    r = [ref.counts.get(k, 0) / r_total for k in top]
    c = [cur.counts.get(k, 0) / c_total for k in top]
    if len(labels) > len(top):
        r.append(max(rest_r, 0.0))
        c.append(max(rest_c, 0.0))
    return labels, r, c


def chart(ref: Sketch, cur: Sketch) -> str:
    """Two overlaid bar series as an inline SVG (reference grey, current coloured)."""
    if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
        labels, r, c = _numeric_series(ref, cur)
    elif isinstance(ref, CategoricalSketch) and isinstance(cur, CategoricalSketch):
        labels, r, c = _categorical_series(ref, cur)
    else:
        return ""
    n = max(len(labels), 1)
    top = max([*r, *c, 1e-12])
    bar = (WIDTH - 2 * PAD) / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img">'
    ]
    for i, (label, a, b) in enumerate(zip(labels, r, c, strict=True)):
        x = PAD + i * bar
        for value, cls, inset in ((a, "ref", 0.0), (b, "cur", bar * 0.25)):
            h = (HEIGHT - 2 * PAD) * value / top
            parts.append(
                f'<rect class="{cls}" x="{x + inset:.1f}" y="{HEIGHT - PAD - h:.1f}" '
                f'width="{max(bar * 0.75 - 0.5, 0.5):.1f}" height="{h:.1f}">'
                f"<title>{html.escape(label)}: reference {a:.3%}, current {b:.3%}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def render_html(
    report: DriftReport,
    quality: QualityReport | None,
    reference: Profile,
    current: Profile,
    *,
    title: str,
    source: dict[str, Any],
) -> str:
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
    )
