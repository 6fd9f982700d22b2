"""`Database.direct()` on SQLite (core/db/direct_sqlite.py): few trips, all or nothing, no leftovers.

Every hot path of the SQLite test pass (a card shown, a reply saved) runs through it too;
these pin the trips it exists for and what a lease must never leave behind.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from core.db.base import UTCDateTime
from core.db.engine import Database

T = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("name", String, unique=True),
          Column("at", UTCDateTime()), Column("doc", JSON))
INSERT = insert(T)  # statements are built once: direct() keeps their compiled form
ALL = select(T.c.name, T.c.at, T.c.doc).order_by(T.c.id)
SLOW = text("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000)"
            " SELECT count(*) AS n FROM c").columns(n=Integer)
AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'direct.db'}?check_same_thread=true"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    # a short busy timeout: a writer kept waiting behind another connection fails at once
    database = Database(url(tmp_path), busy_timeout_ms=200)
    async with database.engine.begin() as conn:
        await conn.run_sync(T.metadata.create_all)
    yield database
    await database.close()


def row(name: str) -> dict[str, Any]:
    return {"id": ord(name[0]) * 1000 + len(name), "name": name, "at": AT, "doc": {"card": name}}


async def names(db: Database) -> list[str]:
    async with db.direct() as statements:
        return [found[0] for found in await statements.rows(ALL, {})]


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every call run on an aiosqlite thread from now on."""
    made: list[Any] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(fn)
        return await original(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return made


async def test_a_read_is_one_trip_a_write_two_and_values_come_back_as_the_orm_sees_them(
        db: Database, trips: list[Any]) -> None:
    await names(db)  # the connection is opened (and set up) before counting
    trips.clear()
    async with db.direct(write=True) as statements:
        await statements.run(INSERT, row("a"))
    assert len(trips) == 2  # BEGIN IMMEDIATE with the insert, then COMMIT
    trips.clear()
    async with db.direct() as statements:
        found = await statements.rows(ALL, {})
    assert len(trips) == 1
    assert [tuple(r) for r in found] == [("a", AT, {"card": "a"})]
    trips.clear()
    async with db.direct(write=True) as statements:  # many rows at once: still one trip
        await statements.run(INSERT, [row("b"), row("c")])
        await statements.run(INSERT, row("d"))
    assert len(trips) == 3
    assert await names(db) == ["a", "b", "c", "d"]


async def test_a_failed_write_leaves_nothing_and_its_connection_serves_the_next(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.direct(write=True) as statements:
            await statements.run(INSERT, row("a"))
            await statements.run(INSERT, row("a"))  # the name is taken: the lease is rolled back
    with pytest.raises(ValueError, match="the caller's own"):
        async with db.direct(write=True, atomic=True) as statements:
            await statements.run(INSERT, row("b"))
            raise ValueError("the caller's own")
    assert await names(db) == []
    async with db.direct(write=True) as statements:
        await statements.run(INSERT, row("a"))
    assert await names(db) == ["a"]
    assert db._sqlite_direct is not None and len(db._sqlite_direct._idle) == 1  # the same one


async def test_a_cancelled_lease_commits_nothing_and_its_connection_is_not_lent_again(
        db: Database) -> None:
    started = asyncio.Event()

    async def cut_short() -> None:
        async with db.direct(write=True) as statements:
            await statements.run(INSERT, row("lost"))
            started.set()
            await statements.rows(SLOW, {})

    task = asyncio.create_task(cut_short())
    async with asyncio.timeout(10):
        await started.wait()
    await asyncio.sleep(0.05)  # the slow statement is running on the connection's thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert db._sqlite_direct is not None and db._sqlite_direct._idle == []
    # The statement was interrupted and its transaction closed before the write lock was let
    # go: the next writer does not meet it (it would fail after the 200 ms busy timeout).
    async with db.direct(write=True) as statements:
        await statements.run(INSERT, row("kept"))
    assert await names(db) == ["kept"]


async def test_a_writer_kept_out_by_another_process_gets_sqlalchemys_error_then_writes(
        db: Database, tmp_path: Path) -> None:
    other = Database(url(tmp_path))  # another process's connections: not behind our write lock
    try:
        async with other.direct(write=True) as statements:
            await statements.run(INSERT, row("theirs"))
            with pytest.raises(OperationalError, match="locked"):
                async with db.direct(write=True) as ours:
                    await ours.run(INSERT, row("ours"))
        async with db.direct(write=True) as ours:
            await ours.run(INSERT, row("ours"))
    finally:
        await other.close()
    assert await names(db) == ["ours", "theirs"]


def test_a_process_that_never_closes_its_database_still_exits(tmp_path: Path) -> None:
    """The connections' threads are daemons (as SQLAlchemy makes its own aiosqlite threads)."""
    script = textwrap.dedent(f"""
        import asyncio
        from sqlalchemy import Integer, text
        from core.db.engine import Database

        ONE = text("SELECT 1 AS one").columns(one=Integer)

        KEPT = []  # as an application keeps its database until the end

        async def main():
            db = Database({url(tmp_path)!r})
            KEPT.append(db)
            async with db.direct() as statements:
                await statements.rows(ONE, {{}})
            print("read", flush=True)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "read"
