"""SQLite through aiosqlite with one trip to its thread per statement.

aiosqlite runs every call on its own thread: the event loop queues the call, the thread runs
it, and hands the result back through the loop's self-pipe. SQLAlchemy's adapter
(`sqlalchemy.dialects.sqlite.aiosqlite`) makes four such trips per statement: open a cursor,
execute, fetch the rows, close the cursor. Each trip is a queue put, two thread switches for
the GIL and a wake-up of the loop, about a quarter of a millisecond of a small server's CPU; a
sale's twelve statements made SQLite's sale cost three times PostgreSQL's.

Here a statement is one function run on aiosqlite's thread: cursor, execute, the rows, the
row count and last row id, close. Everything else (the connection, commit, rollback, errors,
the pool) is SQLAlchemy's aiosqlite dialect as it is: `module=` hands the engine this
DB-API module (`sqlite_dbapi()`), whose connections make these cursors.

It relies on the adapter's internals of SQLAlchemy 2.1 (`_connection`, `_execute_mutex`,
`_rows`, `_cursor_cls`) and aiosqlite's `_execute` and `_conn`, as pinned in constraints.txt;
tests/core/test_sqlite_driver.py checks them on every run.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

Outcome = tuple[Any, list[Any], int, int | None]  # description, rows, rowcount, lastrowid
_NOTHING: tuple[Any, int, int | None] = (None, -1, None)


def execute_one(conn: sqlite3.Connection, operation: str, parameters: Any) -> Outcome:
    """On aiosqlite's thread: the whole statement, its rows fetched."""
    cursor = conn.cursor()
    try:
        cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def execute_many(conn: sqlite3.Connection, operation: str, parameters: Sequence[Any]) -> Outcome:
    cursor = conn.cursor()
    try:
        cursor.executemany(operation, parameters)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A DB-API cursor whose statements each take one trip to aiosqlite's thread."""

    __slots__ = ("_outcome", "_arraysize")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # No aiosqlite cursor is opened (that is a trip of its own): each statement opens
        # and closes a sqlite3 cursor on the thread.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._outcome = _NOTHING  # description, rowcount, lastrowid of the last statement
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._outcome[0]

    @property
    def rowcount(self) -> int:
        return self._outcome[1]

    @property
    def lastrowid(self) -> Any:
        return self._outcome[2]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    def setinputsizes(self, *inputsizes: Any) -> None:
        pass  # sqlite3 takes no sizes

    async def _run(self, function: Any, operation: Any, parameters: Any) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        self._outcome, self._rows = _NOTHING, collections.deque()  # as sqlite3: a failure leaves none
        async with self._adapt_connection._execute_mutex:
            description, rows, rowcount, lastrowid = await connection._execute(  # type: ignore[no-untyped-call]
                function, connection._conn, operation, parameters)
        self._outcome, self._rows = (description, rowcount, lastrowid), collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(execute_one, operation, parameters)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._run(execute_many, operation, seq_of_parameters)

    async def _async_soft_close(self) -> None:
        return  # closed already, its description kept

    def close(self) -> None:
        self._rows.clear()

    def nextset(self) -> None:
        raise NotImplementedError("one result per statement")


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)


def sqlite_dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DB-API module to give `create_async_engine(..., module=...)` for sqlite+aiosqlite."""
    return _DBAPI(aiosqlite, sqlite3)

