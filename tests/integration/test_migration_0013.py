"""Migration 0013 on SQLite and PostgreSQL: a run's params, tags and latest metrics keep every
row and key through the upgrade (on SQLite the tables are rebuilt `WITHOUT ROWID`; PostgreSQL
is unchanged) and through the downgrade."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from tests.integration.test_migration_0010 import _config

_ROWS = {
    "params": "SELECT run_id, key, value FROM params ORDER BY key",
    "run_tags": "SELECT run_id, key, value FROM run_tags ORDER BY key",
    "latest_metrics": "SELECT run_id, key, value, step FROM latest_metrics ORDER BY key",
}


def _rows(conn: sa.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {table: [tuple(r) for r in conn.execute(sa.text(sql))] for table, sql in _ROWS.items()}


def _without_rowid(conn: sa.Connection) -> set[str]:
    if conn.dialect.name != "sqlite":
        return set()
    sql = "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
    return {n for n, text in conn.execute(sa.text(sql)) if "WITHOUT ROWID" in text}


def test_children_keep_their_rows_and_keys(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_config(conn), "0012")
            conn.execute(sa.text("INSERT INTO experiments (name, created_at) VALUES ('e', 1)"))
            conn.execute(
                sa.text(
                    'INSERT INTO runs (id, experiment_id, name, status, start_time, "user") '
                    "SELECT 'r1', id, 'r', 'FINISHED', 1, 'u' FROM experiments"
                )
            )
            for key in ("b", "a"):
                conn.execute(sa.text(f"INSERT INTO params VALUES ('r1', '{key}', 'v{key}')"))
                conn.execute(sa.text(f"INSERT INTO run_tags VALUES ('r1', '{key}', 't{key}')"))
            conn.execute(
                sa.text(
                    "INSERT INTO latest_metrics VALUES "
                    "('r1', 'auc', 0.30000000000000004, 3, 7), ('r1', 'nan', NULL, 0, 7)"
                )
            )
            before = _rows(conn)
        with engine.begin() as conn:
            command.upgrade(_config(conn), "0013")
        with engine.connect() as conn:
            assert _rows(conn) == before
            if conn.dialect.name == "sqlite":
                assert _without_rowid(conn) == set(_ROWS)
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("latest_metrics")}
            assert "ix_latest_metrics_key_value" in indexes
        with engine.begin() as conn:
            # the primary key still holds: a second ('r1', 'a') param is refused
            try:
                conn.execute(sa.text("INSERT INTO params VALUES ('r1', 'a', 'again')"))
            except sa.exc.IntegrityError:
                pass
            else:
                raise AssertionError("a duplicate (run_id, key) param was stored")
        with engine.begin() as conn:
            command.downgrade(_config(conn), "0012")
        with engine.connect() as conn:
            assert _rows(conn) == before
            assert _without_rowid(conn) == set()
    finally:
        engine.dispose()
