from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.sketches import Profile
from shipyard.tracking.datasets import content_digest, fingerprint, profile


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=1000), "c": rng.choice(["a", "b", "c"], size=1000)})


def test_digest_is_stable_and_sensitive() -> None:
    df = frame()
    assert content_digest(df) == content_digest(df.copy())
    changed = df.copy()
    changed.loc[5, "x"] += 1e-9
    assert content_digest(changed) != content_digest(df)
    assert content_digest(df.rename(columns={"x": "y"})) != content_digest(df)
    assert content_digest(df.set_index(np.arange(1000) + 7)) == content_digest(df)


def test_the_logged_profile_is_a_readable_sketch() -> None:
    df = frame()
    df.loc[:9, "x"] = np.nan
    p = profile(df)
    x = p["columns"]["x"]
    assert x["type"] == "numeric" and x["missing"] == 10 and x["count"] == 990
    assert sum(x["counts"]) == 990
    assert x["min"] == pytest.approx(df["x"].min())
    assert x["mean"] == pytest.approx(df["x"].mean())
    assert p["columns"]["c"]["counts"] == df["c"].value_counts().to_dict()
    back = Profile.from_dict(p)
    assert back.rows == 1000 and set(back.columns) == {"x", "c"}


def test_fingerprint_of_an_array() -> None:
    rec = fingerprint(np.ones((4, 2)), name="train")
    assert rec.rows == 4
    assert set(rec.schema) == {"f0", "f1"}
    with pytest.raises(InvalidArgumentError):
        fingerprint(np.ones((2, 2)), name="")
