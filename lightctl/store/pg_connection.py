"""One PostgreSQL connection shared by a store's coroutines, one transaction at a time.

The state database's write rate is modest (alarm changes, operator actions, command results), so a
single connection behind a lock is enough and keeps the server's connection count at one per
instance; psycopg_pool would add a dependency for throughput nobody needs here.

A connection that died while idle (server restart, failover) is only noticed when used: every unit
of work is retried on a fresh connection if the connection broke before COMMIT was sent, because
the server rolled that transaction back. A break during COMMIT is ambiguous and is raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

T = TypeVar("T")
Cursor = AsyncCursor[tuple[Any, ...]]

log = logging.getLogger(__name__)

ATTEMPTS = 3

# Applied unless the DSN says otherwise: fail a dead server's connect in bounded time, and let TCP
# keepalives notice a server that vanished without closing the socket.
_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "application_name": "lightctl",
}


class PgConnection:
    def __init__(self, dsn: str) -> None:
        given = conninfo_to_dict(dsn)  # raises ProgrammingError on a malformed DSN, before any I/O
        self._conninfo = make_conninfo(dsn, **{k: v for k, v in _DEFAULTS.items() if k not in given})
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def with_connection(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `fn(connection)`, in autocommit mode, with the connection to itself (migrations,
        which manage their own transactions). Connects if need be, so a wrong DSN fails here."""
        async with self._lock:
            return await fn(await self._connection())

    async def _connection(self) -> AsyncConnection:
        if self._closed:
            raise RuntimeError("the state database is closed")
        if self._conn is None or self._conn.closed:
            # autocommit: transactions are explicit (BEGIN ... COMMIT in `run`).
            self._conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        return self._conn

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                pass

    async def run(self, fn: Callable[[Cursor], Awaitable[T]], *, snapshot: bool = False) -> T:
        """Run `fn(cursor)` inside BEGIN ... COMMIT (READ COMMITTED); roll back if it raises.

        snapshot: a read-only transaction whose statements all see one snapshot (REPEATABLE READ), so
        that a page and its total agree while other instances write.
        """
        begin = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY" if snapshot else "BEGIN"
        async with self._lock:
            for attempt in range(1, ATTEMPTS + 1):
                conn = await self._connection()
                committing = False
                try:
                    async with conn.cursor() as cur:
                        await cur.execute(begin)
                        result = await fn(cur)
                        committing = True
                        await cur.execute("COMMIT")
                    return result
                except psycopg.OperationalError as exc:
                    if conn.broken or conn.closed:
                        await self._discard()
                        if committing or attempt == ATTEMPTS:
                            raise
                        log.warning("state database: connection lost (%s); reconnecting", exc)
                        continue
                    await self._rollback(conn)
                    # A deadlock or serialization failure rolled back the whole transaction: redo it.
                    if (
                        isinstance(exc, (pg_errors.SerializationFailure, pg_errors.DeadlockDetected))
                        and attempt < ATTEMPTS
                    ):
                        continue
                    raise
                except BaseException:
                    await self._rollback(conn)
                    raise
        raise AssertionError("unreachable")

    async def _rollback(self, conn: AsyncConnection) -> None:
        if conn.broken or conn.closed:
            await self._discard()
            return
        try:
            await conn.execute("ROLLBACK")
        except psycopg.Error:
            await self._discard()

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            await self._discard()
