"""Async engine and the unit of work.

SQLite allows one writer at a time. Rather than letting concurrent requests
race into "database is locked", every write unit of work in this process takes
one asyncio lock first (WAL mode keeps readers unblocked), and begins with
``BEGIN IMMEDIATE``, which takes SQLite's write lock before the first read: a
writer in another process (``serve`` runs the adapter workers in a child) is then
waited for off the event loop (see ``_LoopThreadConnection``), and no write unit
can fail half-way because another process committed after it read. PostgreSQL
needs none of this and gets none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

#: How long a SQLite call waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Execution option marking a write unit of work's connection (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "kayip_write"


class Database:
    """Owns the engine and hands out sessions; one per process."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine: AsyncEngine = _create_engine(url, pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A unit of work that commits once on success and rolls back on any error."""
        async with self._write_lock or contextlib.nullcontext():
            session = self._write_sessions()
            try:
                async with session.begin():
                    yield session
            except BaseException:
                await _close_shielded(session)
                raise
            # Committed, so the close has nothing to roll back: no I/O, nothing to
            # shield (see _close_shielded).
            await session.close()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        session = self.sessions()
        try:
            yield session
        finally:
            if self.is_sqlite:
                # SQLite calls run inline (see _LoopThreadConnection) and a rollback
                # takes no lock, so this close never waits.
                await session.close()
            else:
                await _close_shielded(session)

    async def dispose(self) -> None:
        await self.engine.dispose()


async def _close_shielded(session: AsyncSession) -> None:
    """``AsyncSession``'s own exit: the close runs in a task of its own behind
    ``asyncio.shield``, so a cancellation cannot abandon a rollback that is waiting
    for the database. That costs two trips round the event loop, during which
    anything else runs first (and, on SQLite, the write lock would stay held), so
    it is kept for closes that may do I/O: after an error, or ending a PostgreSQL
    read transaction."""
    await session.__aexit__(None, None, None)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


class _LoopThreadConnection(aiosqlite.Connection):
    """An aiosqlite connection whose sqlite3 calls run on the event loop's own thread.

    aiosqlite hands every call (cursor, execute, fetch, close, commit) to a worker
    thread and back: an insert is three hops, a small unit of work a dozen, and each
    hop is two thread wake-ups that, on a loaded two-core machine, cost more than the
    call itself (a WAL-mode INSERT or COMMIT takes tens of microseconds). So calls run
    inline. The one thing that may not run inline is waiting for a lock held by
    another process: this connection's busy timeout is 0, and a call that finds the
    database locked is retried once in a worker thread that waits the full timeout.
    Such a call had no effect (SQLite reports the lock before doing anything), so the
    retry is safe. Write units of work begin with ``BEGIN IMMEDIATE`` (see the module
    docstring), so the lock is taken, or waited for, before they read anything.
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        connection = self._connection
        if not self._running or connection is None:
            raise ValueError("Connection closed")
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        return await asyncio.to_thread(_waiting_for_lock, connection, partial(fn, *args, **kwargs))

    async def _connect(self) -> _LoopThreadConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Any:
        # No worker thread to start: see the class docstring.
        return self._connect().__await__()

    def stop(self) -> None:
        self._running = False
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _waiting_for_lock(connection: sqlite3.Connection, call: Callable[[], Any]) -> Any:
    timeout_ms = int(SQLITE_BUSY_TIMEOUT_S * 1000)
    connection.execute(f"PRAGMA busy_timeout={timeout_ms}")
    try:
        return call()
    finally:
        connection.execute("PRAGMA busy_timeout=0")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


#: JSON columns (alert areas carry polygons of a few hundred vertices) through orjson:
#: about 9x faster to write and 3x faster to read than the standard library.
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def _create_engine(url: str, pool_size: int) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, **JSON_CODEC)
    database = make_url(url).database or ":memory:"
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: the driver begins no transaction by itself; ``_begin`` does.
    connect = partial(
        sqlite3.connect, database, timeout=0, check_same_thread=False, isolation_level=None
    )

    async def connection() -> _LoopThreadConnection:
        return await _LoopThreadConnection(connect, iter_chunk_size=64)._connect()

    engine = create_async_engine(url, async_creator=connection, **JSON_CODEC)

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        """A write unit of work takes the write lock up front (waiting for another
        process's writer if there is one); everything else begins a plain read."""
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
