"""Data quality of a window against its reference, from the two profiles: missing-rate
changes, values outside the training range, unseen categories, values of the wrong type,
constant columns, and columns missing from (or new in) the window.

A rise in missing values is a violation: any missing value where the reference had none, or,
where the reference had some, the missing values beyond its rate plus `missing_tolerance`
(absolute, a share of the window's rows: 0.02 lets 5 % become 7 %, not 8 %)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from shipyard.sketches import CategoricalSketch, NumericSketch, Profile


@dataclass
class ColumnQuality:
    column: str
    rows: int
    missing_rate: float
    reference_missing_rate: float
    out_of_range: int = 0
    unseen_categories: int = 0
    unseen_examples: list[str] = field(default_factory=list)
    invalid: int = 0
    constant: bool = False
    missing_excess: int = 0  # missing values beyond what the reference (and tolerance) allow

    @property
    def violations(self) -> int:
        """Values in this window that break what training data looked like."""
        return self.out_of_range + self.unseen_categories + self.invalid + self.missing_excess

    @property
    def verdict(self) -> str:
        return "violation" if self.violations else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "violations": self.violations, "verdict": self.verdict}


@dataclass
class QualityReport:
    columns: dict[str, ColumnQuality]
    missing_columns: list[str]
    new_columns: list[str]

    @property
    def violations(self) -> int:
        return sum(c.violations for c in self.columns.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "violations": self.violations,
            "missing_columns": self.missing_columns,
            "new_columns": self.new_columns,
            "columns": {k: v.to_dict() for k, v in self.columns.items()},
        }


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def missing_excess(missing: int, rows: int, reference_rate: float, tolerance: float) -> int:
    """Missing values of a window beyond the reference's rate: all of them when the reference
    had none, else those above `reference_rate + tolerance` of the window's rows."""
    if missing == 0 or rows == 0:
        return 0
    if reference_rate == 0.0:
        return missing
    allowed = math.floor((reference_rate + tolerance) * rows + 1e-9)
    return max(0, missing - allowed)


def check_quality(
    reference: Profile,
    window: Profile,
    window_columns: list[str] | None = None,
    *,
    missing_tolerance: float = 0.02,
) -> QualityReport:
    """`window` must be counted into `reference`'s bins (`reference.empty_like().observe(df)`);
    `window_columns` are the columns the raw window had (for schema checks)."""
    present = set(window_columns) if window_columns is not None else set(window.columns)
    out: dict[str, ColumnQuality] = {}
    for name, ref in reference.columns.items():
        cur = window.columns.get(name)
        if cur is None or name not in present:
            continue
        q = ColumnQuality(
            name,
            cur.total,
            _rate(cur.missing, cur.total),
            _rate(ref.missing, ref.total),
            invalid=cur.invalid,
        )
        q.missing_excess = missing_excess(
            cur.missing, cur.total, q.reference_missing_rate, missing_tolerance
        )
        if isinstance(cur, NumericSketch):
            q.out_of_range = cur.below + cur.above
            q.constant = cur.count > 1 and cur.min == cur.max
        elif isinstance(cur, CategoricalSketch) and isinstance(ref, CategoricalSketch):
            unseen = [k for k in cur.counts if k not in ref.counts]
            if ref.other == 0:  # with a capped reference, a new value might be a rare old one
                q.unseen_categories = sum(cur.counts[k] for k in unseen)
                q.unseen_examples = sorted(unseen)[:10]
            q.constant = cur.count > 1 and len(cur.counts) == 1 and cur.other == 0
        out[name] = q
    missing = sorted(set(reference.columns) - present)
    new = sorted(present - set(reference.columns))
    return QualityReport(out, missing, new)
