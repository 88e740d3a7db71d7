"""Migration 0011 on SQLite and PostgreSQL: runs and experiments from before are "active";
the column goes again on downgrade with the rows kept."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from tests.integration.test_migration_0010 import _config


def test_existing_runs_and_experiments_become_active(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_config(conn), "0010")
            conn.execute(sa.text("INSERT INTO experiments (name, created_at) VALUES ('e', 1)"))
            conn.execute(
                sa.text(
                    'INSERT INTO runs (id, experiment_id, name, status, start_time, "user") '
                    "SELECT 'r1', id, 'r', 'FINISHED', 1, 'u' FROM experiments"
                )
            )
        with engine.begin() as conn:
            command.upgrade(_config(conn), "0011")
        with engine.connect() as conn:
            for table in ("runs", "experiments"):
                stages = conn.execute(sa.text(f"SELECT lifecycle_stage FROM {table}")).scalars()
                assert list(stages) == ["active"]
        with engine.begin() as conn:
            command.downgrade(_config(conn), "0010")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM runs")).scalars().all() == ["r1"]
            columns = {c["name"] for c in sa.inspect(conn).get_columns("runs")}
            assert "lifecycle_stage" not in columns
    finally:
        engine.dispose()
