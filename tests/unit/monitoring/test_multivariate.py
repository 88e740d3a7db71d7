from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.monitoring import detect_drift
from shipyard.monitoring.multivariate import domain_classifier


def correlated(n: int, rho: float, rng: np.random.Generator) -> pd.DataFrame:
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": rng.choice(list("xyz"), n)})


@pytest.mark.slow
def test_a_flipped_correlation_is_invisible_per_column_but_found_jointly() -> None:
    rng = np.random.default_rng(0)
    ref, cur = correlated(4000, 0.9, rng), correlated(4000, -0.9, rng)
    assert detect_drift(ref, cur).drifted_columns == []  # the marginals did not move
    result = domain_classifier(ref, cur)
    assert result.drifted and result.auc > 0.8 and result.p_value < 1e-6
    assert {name for name, _ in result.top_features[:2]} == {"a", "b"}


@pytest.mark.slow
def test_no_drift_no_alarm() -> None:
    rng = np.random.default_rng(1)
    result = domain_classifier(correlated(3000, 0.5, rng), correlated(3000, 0.5, rng))
    assert not result.drifted and 0.4 < result.auc < 0.6
