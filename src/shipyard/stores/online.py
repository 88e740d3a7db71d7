"""Online feature stores: the latest feature values per entity, one record per entity key per
feature view version, read in one round trip for any number of entities.

A record is an opaque blob (the feature store packs the event time and values into it) plus
its event time in milliseconds, which decides conflicts: a write never replaces a newer record,
so a late materialization cannot undo a fresher push. `write` is all-or-nothing: if it fails,
every record keeps its previous value.

    SqliteOnlineStore(path)    the default: one WAL-mode SQLite file (under $SHIPYARD_HOME)
    RedisOnlineStore(url)      when SHIPYARD_REDIS_URL is set: one hash per view version

Constructors do no I/O; redis is imported only by the Redis adapter.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shipyard.errors import MissingDependencyError, StoreUnavailableError
from shipyard.fences import redis as redis_fence

if TYPE_CHECKING:
    from shipyard.config import Settings

Record = tuple[str, int, bytes]  # (entity key, event time ms, packed values: UTF-8 JSON)


class OnlineStore(Protocol):
    kind: str

    def read(self, table: str, keys: Sequence[str]) -> list[bytes | None]:
        """The blob of each key (None where there is none), in the order of `keys`."""
        ...

    def read_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[bytes | None]]:
        """`read` for several tables in one round trip."""
        ...

    def write(self, table: str, records: Iterable[Record]) -> int:
        """Store records atomically, newer-wins; returns how many replaced or added a value."""
        ...

    def drop(self, table: str) -> None: ...

    def count(self, table: str) -> int: ...

    def close(self) -> None: ...


def open_online_store(settings: Settings, *, timeout: float | None = None) -> OnlineStore:
    """Redis when `SHIPYARD_REDIS_URL` is set, else the SQLite file under `$SHIPYARD_HOME`."""
    if settings.redis_url:
        return RedisOnlineStore(settings.redis_url, timeout=timeout)
    return SqliteOnlineStore(Path(settings.home) / "online.db")


class SqliteOnlineStore:
    """One WAL-mode SQLite table keyed by (view version, entity key); a connection per thread,
    so reads from many threads never wait on a lock in Python."""

    kind = "sqlite"
    _CHUNK = 500  # parameters per IN (...) query

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._sql: dict[int, str] = {}

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS online_features ("
                    "tbl TEXT NOT NULL, key TEXT NOT NULL, ts INTEGER NOT NULL, "
                    "value BLOB NOT NULL, PRIMARY KEY (tbl, key)) WITHOUT ROWID"
                )
            except sqlite3.Error as exc:
                raise StoreUnavailableError(
                    f"cannot open online store {self.path}: {exc}",
                    public="the online feature store is unavailable",
                ) from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _select(self, n: int) -> str:
        sql = self._sql.get(n)
        if sql is None:
            if n == 1:
                sql = "SELECT key, value FROM online_features WHERE tbl = ? AND key = ?"
            else:
                marks = ",".join("?" * n)
                sql = f"SELECT key, value FROM online_features WHERE tbl = ? AND key IN ({marks})"
            self._sql[n] = sql
        return sql

    def read(self, table: str, keys: Sequence[str]) -> list[bytes | None]:
        conn = self._conn()
        if len(keys) == 1:
            row = conn.execute(self._select(1), (table, keys[0])).fetchone()
            return [row[1] if row else None]
        found: dict[str, bytes] = {}
        for i in range(0, len(keys), self._CHUNK):
            chunk = keys[i : i + self._CHUNK]
            found.update(conn.execute(self._select(len(chunk)), (table, *chunk)).fetchall())
        return [found.get(k) for k in keys]

    def read_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[bytes | None]]:
        return [self.read(table, keys) for table, keys in requests]

    def write(self, table: str, records: Iterable[Record]) -> int:
        conn = self._conn()
        before = conn.total_changes
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO online_features (tbl, key, ts, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tbl, key) DO UPDATE SET ts = excluded.ts, value = excluded.value "
                "WHERE excluded.ts >= online_features.ts",
                ((table, key, ts, value) for key, ts, value in records),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return conn.total_changes - before

    def drop(self, table: str) -> None:
        self._conn().execute("DELETE FROM online_features WHERE tbl = ?", (table,))

    def count(self, table: str) -> int:
        row = (
            self._conn()
            .execute("SELECT count(*) FROM online_features WHERE tbl = ?", (table,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


# Newer-wins upsert into the values hash KEYS[1] and the event-time hash KEYS[2]. ARGV[1] is
# one JSON array [key, ts, value, key, ts, value, ...]: one argument to pack instead of three
# per record, and three Redis calls per chunk (HMGET, HSET, HSET) instead of three per record.
# Within a chunk the newest record of a key wins (the later one on a tie), as if the records
# were written one by one. A script runs atomically; all scripts of one write run in one
# MULTI/EXEC.
_UPSERT = """
local recs = cjson.decode(ARGV[1])
local best, order = {}, {}
for i = 1, #recs, 3 do
  local key, ts = recs[i], tonumber(recs[i + 1])
  local b = best[key]
  if not b then
    order[#order + 1] = key
    best[key] = {ts, recs[i + 1], recs[i + 2]}
  elseif ts >= b[1] then
    best[key] = {ts, recs[i + 1], recs[i + 2]}
  end
end
local cur = redis.call('HMGET', KEYS[2], unpack(order))
local vals, tss = {}, {}
for j = 1, #order do
  local key = order[j]
  local b = best[key]
  if (not cur[j]) or tonumber(cur[j]) <= b[1] then
    vals[#vals + 1] = key
    vals[#vals + 1] = b[3]
    tss[#tss + 1] = key
    tss[#tss + 1] = b[2]
  end
end
if #vals > 0 then
  redis.call('HSET', KEYS[1], unpack(vals))
  redis.call('HSET', KEYS[2], unpack(tss))
end
return #vals / 2
"""


class RedisOnlineStore:
    """One hash per view version (`shipyard:{table}:v`), so any number of entities is one
    HMGET; a second hash holds event times for newer-wins writes. Both keys share a hash tag,
    so they live on one Redis Cluster slot."""

    kind = "redis"
    _CHUNK = 1000  # records per script call

    def __init__(self, url: str, *, timeout: float | None = None, prefix: str = "shipyard") -> None:
        self.url = url
        self.timeout = timeout
        self.prefix = prefix
        self._client: Any = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._conns: list[Any] = []
        # lookups on each thread's own connection unless redis-py lacks what that needs
        # (checked once per process, when the first store is made: model load, not a request)
        self._direct = redis_fence.usable()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        import redis
                    except ImportError as exc:
                        raise MissingDependencyError(
                            "SHIPYARD_REDIS_URL is set but redis is not installed: "
                            "pip install 'shipyard[redis]'"
                        ) from exc
                    self._client = redis.Redis.from_url(
                        self.url,
                        socket_timeout=self.timeout,
                        socket_connect_timeout=self.timeout,
                    )
        return self._client

    def _keys(self, table: str) -> tuple[str, str]:
        return f"{self.prefix}:{{{table}}}:v", f"{self.prefix}:{{{table}}}:ts"

    def _errors(self, exc: Exception) -> Exception:
        if isinstance(exc, MissingDependencyError):  # no redis to ask about its errors
            return exc
        import redis

        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return StoreUnavailableError(
                f"online store (redis) is unavailable: {exc}",
                public="the online feature store is unavailable",
            )
        return exc

    def _conn(self) -> Any:
        """This thread's own connection (fences/redis.py): a lookup takes no pool lock and
        skips the client's per-command machinery, a sizeable share of a one-command lookup;
        safe because a connection is never shared between threads."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = redis_fence.own_connection(self.client)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _lookup(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send `commands` in one write and read their answers: one round trip."""
        if not self._direct:
            return self._lookup_through_client(commands)
        conn = self._conn()
        try:
            return redis_fence.lookup(conn, commands)
        except Exception as exc:
            conn.disconnect()  # a half-read answer must not be read by the next lookup
            err = self._errors(exc)
            if err is exc:
                raise
            raise err from exc
        except BaseException:
            conn.disconnect()
            raise

    def _lookup_through_client(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The public path (fences/redis.py's check failed): the client's own commands."""
        try:
            if len(commands) == 1:
                return [self.client.execute_command(*commands[0])]
            pipe = self.client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute())
        except Exception as exc:
            err = self._errors(exc)
            if err is exc:
                raise
            raise err from exc

    def read(self, table: str, keys: Sequence[str]) -> list[bytes | None]:
        values_key = self._keys(table)[0]
        if len(keys) == 1:
            return [self._lookup([("HGET", values_key, keys[0])])[0]]
        return list(self._lookup([("HMGET", values_key, *keys)])[0])

    def read_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[bytes | None]]:
        if len(requests) == 1:
            return [self.read(*requests[0])]
        answers = self._lookup([("HMGET", self._keys(t)[0], *keys) for t, keys in requests])
        return [list(a) for a in answers]

    def write(self, table: str, records: Iterable[Record]) -> int:
        from orjson import dumps

        keys = self._keys(table)
        try:
            pipe = self.client.pipeline(transaction=True)
            args: list[Any] = []
            for key, ts, value in records:  # a failure here sends nothing at all
                args += (key, str(ts), value.decode())
                if len(args) >= 3 * self._CHUNK:
                    pipe.eval(_UPSERT, 2, *keys, dumps(args))
                    args = []
            if args:
                pipe.eval(_UPSERT, 2, *keys, dumps(args))
            return int(sum(pipe.execute()))
        except Exception as exc:
            raise self._errors(exc) from exc

    def drop(self, table: str) -> None:
        try:
            self.client.delete(*self._keys(table))
        except Exception as exc:
            raise self._errors(exc) from exc

    def count(self, table: str) -> int:
        try:
            return int(self.client.hlen(self._keys(table)[0]))
        except Exception as exc:
            raise self._errors(exc) from exc

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.disconnect()
            self._conns.clear()
        self._local = threading.local()
        if self._client is not None:
            self._client.close()
            self._client = None
