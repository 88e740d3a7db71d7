"""Migration 0009 rewrites endpoint policies stored in the untyped shape into the validated one,
on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from shipyard.policy import CanaryPolicy, SinglePolicy, Thresholds, policy_of
from shipyard.stores import MetadataStore
from shipyard.stores import schema as t
from shipyard.stores.database import _MIGRATIONS

# as an older version wrote (or an operator edited) them: ints for weights, a setting the
# policy does not have, no thresholds nor `auto`, `require_approval` stored as false
OLD_CANARY = {
    "candidate_uri": "models:/churn/2",
    "candidate_version": 2,
    "stable_version": 1,
    "started_ms": 1000,
    "steps": [5, 50, 100],
    "step": 1,
    "weight": 50,
    "step_started_ms": 2000,
    "min_requests": 10,
    "min_seconds": 0,
    "require_approval": False,
    "note": "pushed by hand",
}
BROKEN = {"candidate_uri": "models:/churn/2", "weight": 5}  # no step list: cannot validate


def migrate_to(conn: sa.Connection, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def insert(conn: sa.Connection, name: str, policy: str, config: dict[str, Any]) -> None:
    conn.execute(
        t.endpoints.insert().values(
            name=name,
            model_uri="models:/churn@champion",
            policy=policy,
            config=config,
            generation=4,
            created_at=1,
            updated_at=1,
        )
    )


def test_old_shape_rows_are_rewritten_into_the_validated_shape(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            migrate_to(conn, "0008")
            insert(conn, "canary", "canary", OLD_CANARY)
            insert(conn, "plain", "single", {"require_approval": True, "note": 1})
            insert(conn, "broken", "canary", BROKEN)
        with engine.begin() as conn:
            migrate_to(conn, "0009")
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert version == "0009"
    finally:
        engine.dispose()

    store = MetadataStore(db_url)
    try:
        canary = store.endpoints.get("canary")
        assert canary.config == {
            **{k: v for k, v in OLD_CANARY.items() if k not in ("note", "require_approval")},
            "steps": [5.0, 50.0, 100.0],
            "weight": 50.0,
            "min_seconds": 0.0,
            "auto": False,
            "thresholds": Thresholds().model_dump(),
        }
        assert canary.generation == 4  # the same policy: replicas need not reload anything
        typed = policy_of(canary)
        assert isinstance(typed, CanaryPolicy) and (typed.step, typed.weight) == (1, 50.0)
        plain = store.endpoints.get("plain")
        assert plain.config == {"require_approval": True}
        assert policy_of(plain) == SinglePolicy(require_approval=True)
        assert store.endpoints.get("broken").config == BROKEN  # left for a person to mend
    finally:
        store.close()
