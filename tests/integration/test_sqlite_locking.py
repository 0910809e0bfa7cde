"""SQLite calls run on the event loop thread, but waiting for another process's lock never does."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from services.db.engine import Database

pytestmark = pytest.mark.asyncio


async def _database(path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{path}")
    async with db.write() as session:
        await session.execute(text("CREATE TABLE t (x INTEGER)"))
    return db


async def test_a_write_waits_off_the_loop_while_another_connection_holds_the_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    db = await _database(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (1)")

        async def write() -> None:
            async with db.write() as session:
                await session.execute(text("INSERT INTO t VALUES (2)"))

        writer = asyncio.create_task(write())
        ticks = 0
        for _ in range(5):  # the loop keeps running while the writer waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 5
        assert not writer.done(), "the write must wait for the lock, not fail"
        other.execute("COMMIT")
        await asyncio.wait_for(writer, 10)
        async with db.read() as session:
            values = sorted((await session.scalars(text("SELECT x FROM t"))).all())
        assert values == [1, 2]
    finally:
        other.close()
        await db.dispose()


async def test_a_read_is_not_blocked_by_another_connections_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    db = await _database(path)
    async with db.write() as session:
        await session.execute(text("INSERT INTO t VALUES (1)"))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (2)")
        async with db.read() as session:  # WAL: readers see the last commit, without waiting
            assert (await session.scalars(text("SELECT x FROM t"))).all() == [1]
        other.execute("ROLLBACK")
    finally:
        other.close()
        await db.dispose()


async def test_a_write_unit_is_isolated_from_another_processes_writer(tmp_path: Path) -> None:
    """Two processes write one file (``serve`` with its adapter child). What a write
    unit read must still hold when it writes: another process's writer waits until the
    unit commits (BEGIN IMMEDIATE), instead of committing in between."""
    path = tmp_path / "two_writers.db"
    first = await _database(path)
    second = Database(f"sqlite+aiosqlite:///{path}")  # its own connections and lock
    read_done = asyncio.Event()
    seen: list[int] = []
    try:

        async def read_wait_write() -> None:
            async with first.write() as session:
                count = text("SELECT count(*) FROM t")
                seen.append((await session.scalars(count)).one())
                read_done.set()
                await asyncio.sleep(0.2)  # the other writer starts meanwhile
                seen.append((await session.scalars(count)).one())
                await session.execute(text("INSERT INTO t VALUES (:x)"), {"x": 10 + seen[-1]})

        async def other_writer() -> None:
            await read_done.wait()
            async with second.write() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))

        await asyncio.wait_for(asyncio.gather(read_wait_write(), other_writer()), 20)
        async with second.read() as session:
            values = sorted((await session.scalars(text("SELECT x FROM t"))).all())
        assert seen == [0, 0], "another process committed inside the unit of work"
        assert values == [1, 10]
    finally:
        await first.dispose()
        await second.dispose()


async def test_commits_never_checkpoint_a_thread_does(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint would copy and sync the log inside whichever commit
    crosses 1,000 pages, on the event loop; here commits only append to the log and the
    checkpointer thread moves it into the database file."""
    path = tmp_path / "checkpoints.db"
    db = await _database(path)
    try:
        async with db.read() as session:
            auto = (await session.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one()
        assert auto == 0
        async with db.write() as session:
            await session.execute(text("CREATE TABLE blobs (payload TEXT)"))
        size_before = path.stat().st_size
        for _ in range(60):  # 3.6 MB: past 1,000 pages, where a commit would checkpoint
            async with db.write() as session:
                await session.execute(
                    text("INSERT INTO blobs VALUES (:p)"), [{"p": "x" * 6000}] * 10
                )
        for _ in range(50):  # the thread's next turn (every 0.5 s)
            if path.stat().st_size > size_before + 3_000_000:
                break
            await asyncio.sleep(0.05)
        assert path.stat().st_size > size_before + 3_000_000
    finally:
        await db.dispose()
