"""Batch scoring a model whose version names a feature service: the features are joined
point-in-time from the offline store, as for training (SQLite and PostgreSQL metadata)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.batch import score_files
from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError
from tests.integration.test_features_serving import NOW, setup_features, train


def events(n: int, seed: int, timestamp: str = "event_timestamp") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "driver_id": rng.integers(0, 40, n),
            timestamp: NOW - pd.to_timedelta(rng.integers(0, 24 * 3600, n), unit="s"),
            "amount": rng.random(n) * 100,
            "id": np.arange(n),
        }
    )


def test_batch_scoring_joins_the_feature_service_point_in_time(
    settings: Settings, tmp_path: Path
) -> None:
    store = setup_features(settings, tmp_path, default={"trips": 0, "rating": 2.5})
    model = train(store)
    data = events(700, 5)
    data.to_parquet(tmp_path / "events.parquet")
    result = score_files(
        settings, "models:/churn@champion", tmp_path / "events.parquet", tmp_path / "out", workers=1
    )
    assert result.rows == 700
    out = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "out").glob("part-*")))
    # the features training would have seen at each row's event time
    X = store.get_training_frame(data, "churn")[["trips", "rating", "per_trip"]]
    want = model.predict_proba(X.astype("float64"))[:, 1]
    assert out["id"].tolist() == data["id"].tolist()
    assert out["_proba_1"].to_numpy() == pytest.approx(want, rel=1e-4, abs=1e-6)  # float32
    assert list(out.columns[:4]) == ["driver_id", "event_timestamp", "amount", "id"]


def test_batch_scoring_takes_the_timestamp_column_and_says_when_it_is_missing(
    settings: Settings, tmp_path: Path
) -> None:
    store = setup_features(settings, tmp_path, default={"trips": 0, "rating": 2.5})
    model = train(store)
    data = events(50, 6, timestamp="ts")
    data.to_parquet(tmp_path / "events.parquet")
    with pytest.raises(InvalidArgumentError, match="event_timestamp.*--timestamp") as err:  # noqa: RUF043
        score_files(settings, "models:/churn/1", tmp_path / "events.parquet", tmp_path / "o1")
    assert err.value.details.get("field") == "timestamp" or "timestamp" in str(err.value)
    result = score_files(
        settings,
        "models:/churn/1",
        tmp_path / "events.parquet",
        tmp_path / "o2",
        workers=1,
        timestamp="ts",
    )
    assert result.rows == 50
    out = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "o2").glob("part-*")))
    frame = store.get_training_frame(data, "churn", timestamp="ts")
    want = model.predict(frame[["trips", "rating", "per_trip"]].astype("float64"))
    assert out["_prediction"].tolist() == want.tolist()
