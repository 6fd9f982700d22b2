"""SQLite's statements in one trip each to aiosqlite's thread (core/db/sqlite_driver.py).

Every other test on SQLite runs through this driver too; these pin what it must keep of the
DB-API: rows, row counts, last row ids, many rows at once, errors as SQLAlchemy's, a
transaction left usable after a failed statement, and the one trip per statement it exists for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from core.db.engine import Database
from core.db.sqlite_driver import OneTripCursor


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    # sqlite3 itself refuses a connection used off the thread that opened it (aiosqlite's)
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}?check_same_thread=true")
    async with database.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE,"
                                " amount INTEGER NOT NULL, data BLOB)"))
    yield database
    await database.close()


async def test_rows_counts_and_last_row_ids_come_back_as_from_sqlite3(db: Database) -> None:
    async with db.engine.begin() as conn:
        first = await conn.execute(text("INSERT INTO t (name, amount) VALUES ('a', 1)"))
        assert first.lastrowid == 1
        await conn.execute(text("INSERT INTO t (name, amount) VALUES (:n, :a)"),
                           [{"n": f"n{i}", "a": i} for i in range(500)])  # executemany
        changed = await conn.execute(text("UPDATE t SET amount = amount + 1 WHERE amount < 10"))
        assert changed.rowcount == 11  # 'a' and n0..n9
        rows = (await conn.execute(text("SELECT name, amount FROM t ORDER BY id"))).all()
    assert len(rows) == 501
    async with db.write_engine.begin() as conn:
        png = bytes(range(256)) * 40
        returned = await conn.execute(text(
            "INSERT INTO t (name, amount, data) VALUES ('blob', 7, :d) RETURNING id, data"),
            {"d": png})
        assert returned.rowcount == 1  # read after the rows, as SQLAlchemy does
        new_id, data = returned.one()
        assert new_id == 502 and data == png
        moved = await conn.execute(text(
            "UPDATE t SET amount = amount * 2 WHERE amount BETWEEN 7 AND 8 RETURNING name"))
        assert sorted(moved.scalars().all()) == ["blob", "n6", "n7"]  # n6, n7: 7 and 8 since the update
    assert tuple(rows[0]) == ("a", 2) and tuple(rows[-1]) == ("n499", 499)
    async with db.engine.connect() as conn:
        result = await conn.execute(text("SELECT name FROM t WHERE amount > 497 ORDER BY id"))
        assert [c[0] for c in result.cursor.description] == ["name"]
        assert result.scalars().all() == ["n498", "n499"]
        empty = await conn.execute(text("SELECT name FROM t WHERE amount < 0"))
        assert empty.all() == []


async def test_a_failed_statement_raises_sqlalchemys_error_and_the_transaction_goes_on(
        db: Database) -> None:
    async with db.write_engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (name, amount) VALUES ('x', 1)"))
        with pytest.raises(IntegrityError):
            await conn.execute(text("INSERT INTO t (name, amount) VALUES ('x', 2)"))
        with pytest.raises(IntegrityError):
            await conn.execute(text("INSERT INTO t (name, amount) VALUES (:n, NULL)"),
                               [{"n": "y"}, {"n": "z"}])
        with pytest.raises(OperationalError):
            await conn.execute(text("SELECT nope FROM t"))
        await conn.execute(text("INSERT INTO t (name, amount) VALUES ('w', 3)"))
    async with db.engine.connect() as conn:  # committed: the good rows, not the failed ones
        names = (await conn.execute(text("SELECT name FROM t ORDER BY name"))).scalars().all()
    assert names == ["w", "x"]


async def test_a_statement_on_a_closed_connection_is_a_disconnect(db: Database) -> None:
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        await raw.dbapi_connection._connection.close()
        with pytest.raises(OperationalError) as failed:
            await conn.execute(text("SELECT 1"))
        assert failed.value.connection_invalidated


async def test_a_statement_is_one_trip_to_the_driver_thread(db: Database) -> None:
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 0"))  # the transaction's BEGIN is behind us
        raw = await conn.get_raw_connection()
        adapted: Any = raw.dbapi_connection
        assert isinstance(adapted.cursor(), OneTripCursor)
        aiosqlite_connection = adapted._connection
        trips = 0
        original = aiosqlite_connection._execute

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal trips
            trips += 1
            return await original(fn, *args, **kwargs)

        aiosqlite_connection._execute = counted
        try:
            await conn.execute(text("SELECT 1"))
            assert trips == 1
            await conn.execute(text("INSERT INTO t (name, amount) VALUES (:n, 1)"),
                               [{"n": "p"}, {"n": "q"}])
            assert trips == 2
        finally:
            aiosqlite_connection._execute = original
