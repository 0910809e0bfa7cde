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
import time
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

from services.db.wal_checkpoints import WAL_SIZE_LIMIT_BYTES, WalCheckpointer

#: How long a SQLite call waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Waiting for another process's write lock: first pause, and the longest.
_LOCK_POLL_MIN_S = 0.0001
_LOCK_POLL_MAX_S = 0.005
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
        self._checkpoints: WalCheckpointer | None = None
        sqlite_file = _sqlite_file(url)
        if sqlite_file is not None:
            self._checkpoints = WalCheckpointer(sqlite_file)
            self._checkpoints.start()

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
        if self._checkpoints is not None:
            await asyncio.to_thread(self._checkpoints.stop)
            self._checkpoints = None
        await self.engine.dispose()


def _sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for anything else or in memory."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    return None if not database or database == ":memory:" else database


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
    database locked is retried in a worker thread until the lock is free (see
    ``_waiting_for_lock``). Such a call had no effect (SQLite reports the lock before
    doing anything), so the retry is safe. Write units of work begin with
    ``BEGIN IMMEDIATE`` (see the module docstring), so the lock is taken, or waited
    for, before they read anything.
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
        return await asyncio.to_thread(_waiting_for_lock, partial(fn, *args, **kwargs))

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


def _waiting_for_lock(call: Callable[[], Any]) -> Any:
    """Retry ``call`` until another process's write lock is released.

    Not SQLite's own busy handler: it sleeps 1, 2, 5, 10 ms... between tries, so a lock
    held for 1.1 ms costs its waiter 3 ms. The other process's write units are short
    (a batch of delivery records), so this polls finely at first and backs off to
    ``_LOCK_POLL_MAX_S`` for long waits; each try that finds the lock costs a few
    microseconds and does nothing (see ``_LoopThreadConnection``).
    """
    give_up = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    pause = _LOCK_POLL_MIN_S
    while True:
        time.sleep(pause)
        try:
            return call()
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or time.monotonic() >= give_up:
                raise
        pause = min(pause * 1.5, _LOCK_POLL_MAX_S)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


#: JSON columns (alert areas carry polygons of a few hundred vertices) through orjson:
#: about 9x faster to write and 3x faster to read than the standard library.
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def _create_engine(url: str, pool_size: int) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, **JSON_CODEC)
    database = _sqlite_file(url) or ":memory:"
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
        # Checkpoints run on their own thread, never inside a commit: see wal_checkpoints.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        """A write unit of work takes the write lock up front (waiting for another
        process's writer if there is one); everything else begins a plain read."""
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
