"""Engines, write transactions and migrations for the metadata database.

One code path for SQLite and PostgreSQL. SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE`
for write transactions, so several processes can write to one file at once: a deferred
transaction that later upgrades to a write lock fails with SQLITE_BUSY at once instead of waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import StoreUnavailableError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection, Engine

# The newest migration in stores/migrations/versions. A test checks it against Alembic's head,
# so opening an up-to-date database never has to import Alembic.
HEAD_REVISION = "0013"
_MIGRATIONS = Path(__file__).parent / "migrations"


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """An INSERT of this connection's dialect (PostgreSQL's or SQLite's), which both offer
    `on_conflict_do_nothing` / `on_conflict_do_update` for upserts."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(table)


def redact(url: str) -> str:
    """A database URL without its password, fit for error messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


class Database:
    """A lazily opened metadata database. The constructor does no I/O."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """Opened and not disposed (a background heartbeat must not reopen a closed store)."""
        return self._engine is not None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    engine = self._create_engine()
                    self._migrate(engine)
                    self._engine = engine
        return self._engine

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on error."""
        with self._errors(), self.engine.connect() as conn:
            conn = conn.execution_options(shipyard_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self._errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        from sqlalchemy.exc import InterfaceError, OperationalError

        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailableError(
                f"metadata database {redact(self.url)} is unavailable: "
                f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}",
                public="the metadata database is unavailable",
            ) from exc

    def _create_engine(self) -> Engine:
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url

        url = make_url(self.url)
        kwargs: dict[str, Any] = {}
        if url.get_backend_name() == "sqlite":
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        engine = create_engine(url, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
        return engine

    def _migrate(self, engine: Engine) -> None:
        with self._errors():
            if _current_revision(engine) == HEAD_REVISION:
                return
            with _migration_lock(engine) as conn:
                if _current_revision(engine) == HEAD_REVISION:
                    return
                from alembic import command
                from alembic.config import Config

                cfg = Config()
                cfg.set_main_option("script_location", str(_MIGRATIONS))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")


def _current_revision(engine: Engine) -> str | None:
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    with engine.connect() as conn:
        try:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        except DatabaseError:
            return None
    return str(row[0]) if row else None


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """Only one process migrates at a time: a file lock for SQLite, an advisory lock else."""
    from sqlalchemy import text

    if engine.dialect.name == "sqlite":
        db_path = engine.url.database or ""
        lock_path = Path(db_path + ".migrate.lock") if db_path not in ("", ":memory:") else None
        with contextlib.ExitStack() as stack:
            if lock_path is not None:
                fh = stack.enter_context(open(lock_path, "a+"))
                fcntl.flock(fh, fcntl.LOCK_EX)
            with engine.connect() as conn:
                yield conn
                conn.commit()
        return
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(7420139)"))
            conn.commit()
        try:
            yield conn
            conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(7420139)"))
                conn.commit()


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module; _sqlite_on_begin emits BEGIN.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("shipyard_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
