"""The drift report's charts: a reference and a current distribution overlaid as one inline SVG
with axes (no script, no network), so the page opens offline.

Numeric columns are drawn over the reference's quantile bins, regrouped to at most 40 bars of
about equal reference mass: the bars have equal widths, so the x axis is a quantile axis and
its ticks are the bin edges themselves (every few boundaries, as readable numbers; the exact
value is in the tick's `data-value`). Categorical columns show the most frequent categories.
The y axis is the share of each sample's rows, with "nice" ticks from 0 to the tallest bar.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from shipyard.sketches import CategoricalSketch, NumericSketch, Sketch

WIDTH = 480
LEFT, RIGHT, TOP = 52, 10, 22  # room for the y tick labels, the legend above the plot
BOTTOM = {"numeric": 40, "categorical": 72}  # x tick labels (categories run slanted)
PLOT_HEIGHT = 130
MAX_BARS = 40
MAX_CATEGORIES = 20
MAX_X_TICKS = 7
COLOURS = {"ref": "#9aa3b5", "cur": "#3b6fd8"}


@dataclass
class Series:
    """Bars of two samples over the same bins: `labels[i]` names bar i; `boundaries` are the
    (index of the bar right of it, value) of the bin edges between bars (numeric only)."""

    kind: str
    labels: list[str]
    reference: list[float]
    current: list[float]
    reference_rows: int
    current_rows: int
    boundaries: list[tuple[int, float]]


def numeric_series(ref: NumericSketch, cur: NumericSketch) -> Series:
    """Regroup fine bins into <= MAX_BARS bars of about equal reference mass; heights are
    shares of each sample. Bin j of a sketch is (edges[j-1], edges[j]]."""
    k = len(ref.counts)
    size = -(-k // max(1, min(MAX_BARS, k)))
    labels: list[str] = []
    r_share: list[float] = []
    c_share: list[float] = []
    boundaries: list[tuple[int, float]] = []
    r_total = max(sum(ref.counts), 1)
    c_total = max(sum(cur.counts), 1)
    edges = ref.edges
    for start in range(0, k, size):
        stop = min(start + size, k)
        if start > 0:
            boundaries.append((len(labels), float(edges[start - 1])))
        lo = "-inf" if start == 0 else f"{edges[start - 1]:.6g}"
        hi = "+inf" if stop - 1 >= len(edges) else f"{edges[stop - 1]:.6g}"
        labels.append(f"({lo}, {hi}]")
        r_share.append(sum(ref.counts[start:stop]) / r_total)
        c_share.append(sum(cur.counts[start:stop]) / c_total)
    return Series("numeric", labels, r_share, c_share, sum(ref.counts), sum(cur.counts), boundaries)


def categorical_series(ref: CategoricalSketch, cur: CategoricalSketch) -> Series:
    merged = {
        k: ref.counts.get(k, 0) + cur.counts.get(k, 0) for k in set(ref.counts) | set(cur.counts)
    }
    top = sorted(merged, key=lambda k: (-merged[k], k))[:MAX_CATEGORIES]
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
    return Series("categorical", labels, r, c, ref.count, cur.count, [])


def distribution(ref: Sketch, cur: Sketch) -> dict[str, object] | None:
    """The bars `chart` draws, as data (the web UI draws them with Plotly): each bar's label
    and its share of each sample; None when the two sketches are of different kinds."""
    if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
        series = numeric_series(ref, cur)
    elif isinstance(ref, CategoricalSketch) and isinstance(cur, CategoricalSketch):
        series = categorical_series(ref, cur)
    else:
        return None
    return {
        "kind": series.kind,
        "labels": series.labels,
        "reference": series.reference,
        "current": series.current,
        "reference_rows": series.reference_rows,
        "current_rows": series.current_rows,
    }


def nice_ticks(top: float, most: int = 5) -> list[float]:
    """0, step, 2·step, … up to the first multiple of a 1-2-2.5-5 step that reaches `top`,
    with at most `most` steps."""
    top = max(top, 1e-9)
    raw = top / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    count = math.ceil(top / step - 1e-9)
    return [i * step for i in range(count + 1)]


def percent(value: float, step: float) -> str:
    """A share as a percentage with as few decimals as the tick step needs."""
    for decimals in range(5):
        if abs(round(step * 100, decimals) - step * 100) < 1e-9:
            return f"{value * 100:.{decimals}f}%"
    return f"{value * 100:.4g}%"


def number(value: float, digits: int) -> str:
    """`digits` significant digits, thousands grouped (12,300 rather than 1.23e+04); powers
    of ten only for the very large and the very small."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    magnitude = math.floor(math.log10(abs(value)))
    if 4 <= magnitude < 9:
        return f"{round(value, digits - 1 - magnitude):,.0f}"
    return f"{value:.{digits}g}"


def readable(values: list[float]) -> list[str]:
    """Tick labels: the fewest significant digits (3 to 6) that tell neighbours apart."""
    for digits in range(3, 7):
        texts = [number(v, digits) for v in values]
        if len(set(texts)) == len(texts):
            return texts
    return [number(v, 6) for v in values]


def chart(ref: Sketch, cur: Sketch) -> str:
    """The two samples' distributions of one column as an inline SVG with axes and a legend
    (reference grey, current blue); "" when the two sketches are of different kinds."""
    if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
        series = numeric_series(ref, cur)
    elif isinstance(ref, CategoricalSketch) and isinstance(cur, CategoricalSketch):
        series = categorical_series(ref, cur)
    else:
        return ""
    height = TOP + PLOT_HEIGHT + BOTTOM[series.kind]
    ticks = nice_ticks(max([*series.reference, *series.current, 1e-9]))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" class="chart {series.kind}" '
        f'data-y-max="{ticks[-1]!r}">',
        *_y_axis(ticks),
        *_bars(series, ticks[-1]),
        *(_x_numeric(series) if series.kind == "numeric" else _x_categorical(series)),
        *_legend(series),
        "</svg>",
    ]
    return "".join(parts)


def _y(share: float, y_max: float) -> float:
    return TOP + PLOT_HEIGHT * (1 - share / y_max)


def _y_axis(ticks: list[float]) -> list[str]:
    step = ticks[1] if len(ticks) > 1 else ticks[0] or 1.0
    out = ['<g class="axis y">']
    for t in ticks:
        y = _y(t, ticks[-1])
        out.append(
            f'<g class="tick" data-value="{t!r}">'
            f'<line x1="{LEFT - 4}" x2="{WIDTH - RIGHT}" y1="{y:.2f}" y2="{y:.2f}"/>'
            f'<text x="{LEFT - 6}" y="{y + 3.5:.2f}" text-anchor="end">{percent(t, step)}</text>'
            "</g>"
        )
    middle = TOP + PLOT_HEIGHT / 2
    out.append(
        f'<text class="label" transform="translate(11 {middle:.1f}) rotate(-90)" '
        'text-anchor="middle">share of rows</text></g>'
    )
    return out


def _bar_width(series: Series) -> float:
    return (WIDTH - LEFT - RIGHT) / max(len(series.labels), 1)


def _bars(series: Series, y_max: float) -> list[str]:
    bar = _bar_width(series)
    out = ['<g class="bars">']
    for i, (label, a, b) in enumerate(
        zip(series.labels, series.reference, series.current, strict=True)
    ):
        x = LEFT + i * bar
        tip = html.escape(f"{label}: reference {a:.3%}, current {b:.3%}")
        for value, cls, inset in ((a, "ref", 0.0), (b, "cur", bar * 0.25)):
            top = _y(value, y_max)
            out.append(
                f'<rect class="{cls}" x="{x + inset:.2f}" y="{top:.2f}" '
                f'width="{max(bar * 0.75 - 0.5, 0.5):.2f}" '
                f'height="{TOP + PLOT_HEIGHT - top:.2f}"><title>{tip}</title></rect>'
            )
    out.append("</g>")
    return out


def _baseline() -> str:
    y = TOP + PLOT_HEIGHT
    return f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'


def _x_numeric(series: Series) -> list[str]:
    """Ticks on bin edges between bars, every few boundaries so that the labels fit."""
    bar = _bar_width(series)
    every = max(1, math.ceil(len(series.boundaries) / MAX_X_TICKS))
    shown = series.boundaries[every // 2 :: every] if every > 1 else series.boundaries
    texts = readable([v for _, v in shown])
    y = TOP + PLOT_HEIGHT
    out = ['<g class="axis x">', _baseline()]
    for (index, value), text in zip(shown, texts, strict=True):
        x = LEFT + index * bar
        out.append(
            f'<g class="tick" data-value="{value!r}">'
            f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{y}" y2="{y + 4}"/>'
            f'<text x="{x:.2f}" y="{y + 15}" text-anchor="middle">{html.escape(text)}</text></g>'
        )
    out.append(
        f'<text class="label" x="{LEFT + (WIDTH - LEFT - RIGHT) / 2:.1f}" y="{y + 33}" '
        'text-anchor="middle">value (bars: reference quantile bins; ticks: bin edges)</text></g>'
    )
    return out


def _x_categorical(series: Series) -> list[str]:
    bar = _bar_width(series)
    y = TOP + PLOT_HEIGHT
    out = ['<g class="axis x">', _baseline()]
    for i, label in enumerate(series.labels):
        x = LEFT + (i + 0.5) * bar
        short = label if len(label) <= 12 else label[:11] + "…"
        out.append(
            f'<g class="tick" data-value="{html.escape(label)}">'
            f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{y}" y2="{y + 4}"/>'
            f'<text transform="translate({x + 3:.2f} {y + 10}) rotate(-40)" '
            f'text-anchor="end">{html.escape(short)}<title>{html.escape(label)}</title>'
            "</text></g>"
        )
    out.append("</g>")
    return out


def _legend(series: Series) -> list[str]:
    out = ['<g class="legend">']
    x = float(LEFT)
    for cls, name, rows in (
        ("ref", "reference", series.reference_rows),
        ("cur", "current", series.current_rows),
    ):
        text = f"{name} ({rows:,} rows)"
        out.append(
            f'<rect class="{cls}" x="{x}" y="6" width="10" height="10"/>'
            f'<text x="{x + 14}" y="15" data-series="{cls}">{text}</text>'
        )
        x += 24 + 6.5 * len(text)
    out.append("</g>")
    return out
