"""Migration 0010 on SQLite and PostgreSQL: materialization marks become per online store;
marks from before keep their values under the empty store (not used for incremental runs)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from shipyard.stores import database


def _config(conn: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(database._MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def test_marks_move_to_the_per_store_table_and_back(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_config(conn), "0009")
            conn.execute(
                sa.text(
                    "INSERT INTO feature_materializations "
                    "(view, version, materialized_until, rows, updated_at) "
                    "VALUES ('driver_stats', 1, 1000, 3, 5)"
                )
            )
        with engine.begin() as conn:
            command.upgrade(_config(conn), "0010")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM online_materializations")).mappings().all()
            assert [dict(r) for r in rows] == [
                {
                    "store": "",
                    "view": "driver_stats",
                    "version": 1,
                    "materialized_until": 1000,
                    "rows": 3,
                    "updated_at": 5,
                }
            ]
            assert "feature_materializations" not in sa.inspect(conn).get_table_names()
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO online_materializations VALUES "
                    "('redis:redis://h:6379/0#shipyard', 'driver_stats', 1, 2000, 4, 6)"
                )
            )
            command.downgrade(_config(conn), "0009")
        with engine.connect() as conn:
            back = conn.execute(sa.text("SELECT * FROM feature_materializations")).mappings().all()
            # the earliest mark survives: no store skips what it lacks
            assert [(r["view"], r["version"], r["materialized_until"]) for r in back] == [
                ("driver_stats", 1, 1000)
            ]
    finally:
        engine.dispose()
