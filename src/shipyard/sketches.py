"""Mergeable column sketches: the compact profile of a dataset or a window of live traffic.

A *reference* sketch fixes the bins (quantile edges of the training data); every live window
is counted into the same bins, so windows merge by adding counts (minute → hour → day) and a
drift test compares count vectors in O(bins) time and memory, whatever the traffic volume.

Numeric: bin counts over reference-quantile edges, count/mean/M2 (Chan's parallel update, so
mean and variance merge exactly), min, max, missing. Categorical: counts per category (capped,
the rest in "other"), missing. Both record `invalid` (values of the wrong type).

    ref = Profile.from_frame(train_df)            # the reference (stored with the dataset)
    window = ref.empty_like(); window.observe(batch_df)
    day = window_a.merged(window_b)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BINS = 128
CATEGORY_CAP = 1000
_EDGE_SAMPLE = 200_000  # reference quantiles come from a sample this large; counts are exact


class Binner:
    """Bin index of each value — `np.searchsorted(edges, values)` — in a few vectorised
    arithmetic passes instead of a binary search per value, which dominates binning large
    batches. A uniform grid of cells over [edges[0], edges[-1]] maps each value to a cell; a
    cell without an edge inside knows its bin; values in the few cells that hold an edge, and
    values outside the grid, are resolved exactly."""

    def __init__(self, edges: list[float], cells: int = 8192) -> None:
        import numpy as np

        self.edges = np.asarray(edges, dtype=np.float64)
        self.ok = self.edges.size >= 2 and self.edges[-1] > self.edges[0]
        if not self.ok:
            return
        self.lo = float(self.edges[0])
        self.cells = cells
        with np.errstate(over="ignore", divide="ignore"):
            self.scale = cells / (float(self.edges[-1]) - self.lo)
        if not np.isfinite(self.scale):  # a range too narrow for a grid: binary search only
            self.ok = False
            return
        grid = self.lo + np.arange(cells + 1) / self.scale
        grid[0], grid[-1] = self.edges[0], self.edges[-1]  # no rounding at the ends
        below = np.searchsorted(self.edges, grid[:-1], side="left")  # edges < cell start
        upto = np.searchsorted(self.edges, grid[1:], side="right")  # edges <= cell end
        self.table = below
        # "exact": no edge in the cell nor in either neighbour, so a value that rounding puts
        # one cell off still gets the right bin
        clear = below == upto
        self.exact = clear.copy()
        self.exact[1:] &= clear[:-1]
        self.exact[:-1] &= clear[1:]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        import numpy as np

        if not self.ok:
            return np.searchsorted(self.edges, values, side="left")
        with np.errstate(over="ignore"):  # far outside a narrow grid: inf, clipped below
            pos = (values - self.lo) * self.scale
        # values outside the grid land in the first or last cell, which hold the end edges
        # and so are never "exact": they are resolved below, like every cell with an edge
        np.clip(pos, 0, self.cells - 1, out=pos)
        cell = pos.astype(np.int64)
        out = self.table[cell]
        unsure = np.flatnonzero(~self.exact[cell])
        if unsure.size:
            out[unsure] = np.searchsorted(self.edges, values[unsure], side="left")
        return out


@dataclass
class NumericSketch:
    edges: list[float]  # k-1 interior edges → k bins: (-inf, e0], (e0, e1], …, (e_{k-2}, inf)
    counts: list[int]
    count: int = 0  # non-missing, valid values
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    min: float = math.inf
    max: float = -math.inf
    missing: int = 0
    invalid: int = 0
    low: float | None = None  # the reference's range; live values outside it are counted
    high: float | None = None
    below: int = 0
    above: int = 0
    kind: str = "numeric"

    @property
    def total(self) -> int:
        return self.count + self.missing + self.invalid

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0

    @classmethod
    def reference(
        cls, values: np.ndarray, bins: int = BINS, *, missing: int = 0, invalid: int = 0
    ) -> NumericSketch:
        import numpy as np

        finite = values[np.isfinite(values)]
        if finite.size:
            sample = finite
            if finite.size > _EDGE_SAMPLE:
                rng = np.random.default_rng(0)
                sample = finite[rng.integers(0, finite.size, _EDGE_SAMPLE)]
            qs = np.quantile(sample, np.linspace(0, 1, bins + 1)[1:-1])
            edges = np.unique(qs).tolist()
        else:
            edges = []
        sketch = cls(edges, [0] * (len(edges) + 1), missing=missing, invalid=invalid)
        sketch.observe(values)
        sketch.low = _finite_or_none(sketch.min)
        sketch.high = _finite_or_none(sketch.max)
        return sketch

    def _binner(self) -> Binner:
        binner = getattr(self, "_binner_cache", None)
        if binner is None:
            binner = Binner(self.edges)
            object.__setattr__(self, "_binner_cache", binner)
        return binner

    def empty_like(self) -> NumericSketch:
        return NumericSketch(list(self.edges), [0] * len(self.counts), low=self.low, high=self.high)

    def observe(self, values: np.ndarray, *, invalid: int = 0) -> None:
        """Count a batch of float values (NaN counts as missing; ±inf as invalid)."""
        import numpy as np

        values = np.asarray(values, dtype=np.float64)
        finite_mask = np.isfinite(values)
        self.invalid += invalid
        if finite_mask.all():
            finite = values
        else:
            nan = int(np.isnan(values).sum())
            self.missing += nan
            self.invalid += int(values.size - finite_mask.sum()) - nan
            finite = values[finite_mask]
        n = int(finite.size)
        if n == 0:
            return
        add = np.bincount(self._binner()(finite), minlength=len(self.counts))
        self.counts = (np.asarray(self.counts, dtype=np.int64) + add).tolist()
        mean = float(finite.mean())
        dev = finite - mean
        m2 = float(np.einsum("i,i->", dev, dev))  # not BLAS: its threads spin for nothing
        self._combine(n, mean, m2)
        self.min = min(self.min, float(finite.min()))
        self.max = max(self.max, float(finite.max()))
        if self.low is not None and self.min < self.low:
            self.below += int((finite < self.low).sum())
        if self.high is not None and self.max > self.high:
            self.above += int((finite > self.high).sum())

    def _combine(self, n: int, mean: float, m2: float) -> None:
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    def merged(self, other: NumericSketch) -> NumericSketch:
        if self.edges != other.edges:
            raise InvalidArgumentError("numeric sketches merge only over the same bin edges")
        out = NumericSketch(
            list(self.edges),
            [a + b for a, b in zip(self.counts, other.counts, strict=True)],
            self.count,
            self.mean,
            self.m2,
            min(self.min, other.min),
            max(self.max, other.max),
            self.missing + other.missing,
            self.invalid + other.invalid,
            self.low,
            self.high,
            self.below + other.below,
            self.above + other.above,
        )
        if other.count:
            if out.count:
                out._combine(other.count, other.mean, other.m2)
            else:
                out.count, out.mean, out.m2 = other.count, other.mean, other.m2
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "numeric",
            "edges": self.edges,
            "counts": self.counts,
            "count": self.count,
            "mean": self.mean,
            "m2": self.m2,
            "std": self.std,
            "min": _finite_or_none(self.min),
            "max": _finite_or_none(self.max),
            "missing": self.missing,
            "invalid": self.invalid,
            "low": self.low,
            "high": self.high,
            "below": self.below,
            "above": self.above,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericSketch:
        return cls(
            list(d["edges"]),
            list(d["counts"]),
            d["count"],
            d["mean"],
            d["m2"],
            math.inf if d["min"] is None else d["min"],
            -math.inf if d["max"] is None else d["max"],
            d["missing"],
            d.get("invalid", 0),
            d.get("low"),
            d.get("high"),
            d.get("below", 0),
            d.get("above", 0),
        )


@dataclass
class CategoricalSketch:
    counts: dict[str, int] = field(default_factory=dict)
    other: int = 0  # values beyond the category cap
    missing: int = 0
    invalid: int = 0
    cap: int = CATEGORY_CAP
    kind: str = "categorical"

    @property
    def count(self) -> int:
        return sum(self.counts.values()) + self.other

    @property
    def total(self) -> int:
        return self.count + self.missing + self.invalid

    def empty_like(self) -> CategoricalSketch:
        return CategoricalSketch(cap=self.cap)

    def observe(self, values: pd.Series) -> None:
        vc = values.value_counts(dropna=False)
        items = []
        for key, n in zip(vc.index.tolist(), vc.tolist(), strict=True):
            if key is None or (isinstance(key, float) and math.isnan(key)):
                self.missing += int(n)
            else:
                items.append((str(key), int(n)))
        self._add(items)

    def _add(self, items: Iterable[tuple[str, int]]) -> None:
        for key, n in items:
            if key in self.counts:
                self.counts[key] += int(n)
            elif len(self.counts) < self.cap:
                self.counts[key] = int(n)
            else:
                self.other += int(n)

    def merged(self, other: CategoricalSketch) -> CategoricalSketch:
        out = CategoricalSketch(
            dict(self.counts),
            self.other + other.other,
            self.missing + other.missing,
            self.invalid + other.invalid,
            self.cap,
        )
        out._add(other.counts.items())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "categorical",
            "counts": self.counts,
            "other": self.other,
            "missing": self.missing,
            "invalid": self.invalid,
            "distinct": len(self.counts),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalSketch:
        return cls(dict(d["counts"]), d.get("other", 0), d["missing"], d.get("invalid", 0))


Sketch = NumericSketch | CategoricalSketch


def is_numeric(series: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


@dataclass
class Profile:
    """One sketch per column."""

    columns: dict[str, Sketch]
    rows: int = 0

    @classmethod
    def from_frame(cls, df: pd.DataFrame, bins: int = BINS) -> Profile:
        columns: dict[str, Sketch] = {}
        for name in df.columns:
            s = df[name]
            if is_numeric(s):
                columns[str(name)] = NumericSketch.reference(
                    s.to_numpy(dtype="float64", na_value=float("nan")), bins
                )
            else:
                cat = CategoricalSketch()
                cat.observe(s)
                columns[str(name)] = cat
        return cls(columns, len(df))

    def empty_like(self) -> Profile:
        return Profile({k: v.empty_like() for k, v in self.columns.items()}, 0)

    def observe(self, df: pd.DataFrame) -> None:
        """Count a batch into this profile's bins. Columns of the reference that are missing
        from the batch count as missing; values of the wrong type count as invalid."""
        n = len(df)
        self.rows += n
        for name, sketch in self.columns.items():
            if name not in df.columns:
                sketch.missing += n
                continue
            observe_series(sketch, df[name])

    def merged(self, other: Profile) -> Profile:
        if set(self.columns) != set(other.columns):
            raise InvalidArgumentError("profiles merge only over the same columns")
        return Profile(
            {k: _merge(v, other.columns[k]) for k, v in self.columns.items()},
            self.rows + other.rows,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": {k: v.to_dict() for k, v in self.columns.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        cols: dict[str, Sketch] = {}
        for k, v in d["columns"].items():
            if v.get("type") == "numeric" and "edges" in v:
                cols[k] = NumericSketch.from_dict(v)
            elif v.get("type") == "categorical" and "counts" in v:
                cols[k] = CategoricalSketch.from_dict(v)
            else:
                raise InvalidArgumentError(f"column '{k}' has no sketch shipyard can read")
        return cls(cols, d.get("rows", 0))


def observe_series(sketch: Sketch, s: pd.Series) -> None:
    """Count one column into a sketch; text in a numeric column counts as invalid."""
    import numpy as np
    import pandas as pd

    if isinstance(sketch, CategoricalSketch):
        sketch.observe(s)
    elif is_numeric(s):
        sketch.observe(s.to_numpy(dtype="float64", na_value=np.nan))
    else:
        coerced = pd.to_numeric(s, errors="coerce")
        bad = (coerced.isna() & s.notna()).to_numpy()
        sketch.observe(
            coerced.to_numpy(dtype="float64", na_value=np.nan)[~bad], invalid=int(bad.sum())
        )


def _merge(a: Sketch, b: Sketch) -> Sketch:
    if isinstance(a, NumericSketch) and isinstance(b, NumericSketch):
        return a.merged(b)
    if isinstance(a, CategoricalSketch) and isinstance(b, CategoricalSketch):
        return a.merged(b)
    raise InvalidArgumentError("cannot merge a numeric sketch with a categorical one")


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
