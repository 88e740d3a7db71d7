"""Sketches merge exactly, bin exactly, and count what live data does wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import InvalidArgumentError
from shipyard.sketches import Binner, CategoricalSketch, NumericSketch, Profile


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=300),
    st.lists(st.floats(-1e7, 1e7, allow_nan=False, allow_infinity=False), max_size=300),
)
def test_binner_equals_searchsorted(reference: list[float], values: list[float]) -> None:
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, 33)[1:-1])).tolist()
    v = np.asarray(values + edges, dtype=np.float64)
    assert np.array_equal(Binner(edges)(v), np.searchsorted(np.asarray(edges), v, side="left"))


def test_windows_merge_into_the_profile_of_their_union() -> None:
    rng = np.random.default_rng(3)
    ref = NumericSketch.reference(rng.normal(size=5000))
    data = rng.normal(0.3, 2, size=3000)
    parts = [ref.empty_like() for _ in range(3)]
    for part, chunk in zip(parts, np.array_split(data, 3), strict=True):
        part.observe(chunk)
    whole = ref.empty_like()
    whole.observe(data)
    merged = parts[0].merged(parts[1]).merged(parts[2])
    assert merged.counts == whole.counts
    assert merged.count == whole.count == 3000
    assert merged.mean == pytest.approx(data.mean())
    assert merged.std == pytest.approx(data.std(ddof=1))
    assert (merged.min, merged.max) == (data.min(), data.max())
    assert merged.below + merged.above == whole.below + whole.above > 0


def test_sketch_counts_missing_invalid_and_out_of_range() -> None:
    ref = Profile.from_frame(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", None]}))
    assert ref.columns["c"].missing == 1
    window = ref.empty_like()
    window.observe(pd.DataFrame({"x": ["5", "oops", None, "2"], "c": ["z", "a", "a", "a"]}))
    x, c = window.columns["x"], window.columns["c"]
    assert isinstance(x, NumericSketch) and isinstance(c, CategoricalSketch)
    assert (x.count, x.invalid, x.missing, x.above) == (2, 1, 1, 1)
    assert c.counts == {"a": 3, "z": 1}
    assert Profile.from_dict(window.to_dict()).to_dict() == window.to_dict()


def test_merging_mismatched_sketches_is_refused() -> None:
    a = NumericSketch.reference(np.arange(10.0))
    b = NumericSketch.reference(np.arange(10.0) * 2)
    with pytest.raises(InvalidArgumentError, match="same bin edges"):
        a.merged(b)


def test_category_cap_sends_the_rest_to_other() -> None:
    s = CategoricalSketch(cap=3)
    s.observe(pd.Series(list("abcdeab")))
    assert len(s.counts) == 3 and s.other == 2 and s.count == 7
