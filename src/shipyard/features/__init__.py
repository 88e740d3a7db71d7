"""Feature store: definitions, point-in-time-correct offline store, online store.

    from shipyard.features import Entity, FeatureService, FeatureStore, FeatureView, Source

    driver = Entity("driver", join_keys=["driver_id"])
    stats = FeatureView("driver_stats", entity=driver, source=Source.parquet("data/stats"),
                        features={"trips": "long", "rating": "double"}, ttl=timedelta(days=2))
    store = FeatureStore()
    store.apply([driver, stats, FeatureService("churn", features=[stats])])
    train = store.get_training_frame(events, features="churn")

Names resolve lazily, so importing this package loads neither pandas nor DuckDB.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "Entity": "shipyard.features.definitions",
    "Source": "shipyard.features.definitions",
    "FeatureView": "shipyard.features.definitions",
    "OnDemandView": "shipyard.features.definitions",
    "FeatureService": "shipyard.features.definitions",
    "on_demand": "shipyard.features.definitions",
    "FeatureStore": "shipyard.features.store",
    "load_definitions": "shipyard.features.repo",
}

__all__ = [
    "Entity",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "OnDemandView",
    "Source",
    "load_definitions",
    "on_demand",
]

if TYPE_CHECKING:
    from shipyard.features.definitions import (
        Entity,
        FeatureService,
        FeatureView,
        OnDemandView,
        Source,
        on_demand,
    )
    from shipyard.features.repo import load_definitions
    from shipyard.features.store import FeatureStore


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.features' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
