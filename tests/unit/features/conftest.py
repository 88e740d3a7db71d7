from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config import Settings


@pytest.fixture
def fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A feature store on a fresh SQLite metadata DB and SQLite online store."""
    from shipyard.features import FeatureStore

    settings = Settings(home=tmp_path / "home", user="tester")
    return FeatureStore(settings)
