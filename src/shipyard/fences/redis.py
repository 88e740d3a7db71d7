"""redis-py below its client: a connection made by the pool but owned by one thread
(`ConnectionPool.make_connection`), written to and read from directly
(`Connection.send_command`, `send_packed_command`, `pack_commands`, `read_response`,
`disconnect`).

A feature lookup is one small command on the request path. `stores/online.py` gives each
thread a connection of its own, so a lookup takes no pool lock and skips the client's
per-command bookkeeping; several commands go out in one write. Without these names
(`check()` false) lookups go through the client (`execute_command`, or a pipeline without a
transaction for several): the same answers and the same errors."""

from __future__ import annotations

from typing import Any

from shipyard.fences import missing, verdict

_usable: bool | None = None
FALLBACK = "online-store lookups go through the client and its pool"
CONNECTION = ("send_command", "send_packed_command", "pack_commands", "read_response", "disconnect")


def check() -> bool:
    """Whether `own_connection` may be used; logs one line if not."""
    global _usable
    try:
        import redis
        import redis.connection
    except ImportError:
        _usable = True
        return True
    gone = [f"ConnectionPool.{n}" for n in missing(redis.ConnectionPool, ["make_connection"])]
    gone += [f"Connection.{n}" for n in missing(redis.connection.Connection, CONNECTION)]
    _usable = verdict("redis", gone, FALLBACK)
    return _usable


def usable() -> bool:
    """`check()`'s answer, checking on the first call."""
    return check() if _usable is None else _usable


def own_connection(client: Any) -> Any:
    """A new connection of `client`'s pool that the pool does not hand out to anyone else."""
    return client.connection_pool.make_connection()


def lookup(conn: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send `commands` on `conn` in one write and read their answers (one round trip)."""
    if len(commands) == 1:
        conn.send_command(*commands[0])
    else:
        conn.send_packed_command(conn.pack_commands(commands))
    return [conn.read_response() for _ in commands]
