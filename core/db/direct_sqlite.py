"""`Database.direct()` on SQLite: aiosqlite connections of its own, a statement one trip each.

Through SQLAlchemy's Core connection a one-statement lease took four or five trips to
aiosqlite's thread (BEGIN, the statement, COMMIT, the pool's ROLLBACK on return) and
SQLAlchemy's execution around each: about 1 ms of CPU, where the statement itself is a tenth
of that. "Show my card" takes five leases. Here, as on PostgreSQL (direct.py), the statement's
SQL and bind and result processing are compiled by SQLAlchemy once, and:

- a lease that only reads runs each statement as it comes, in autocommit: one trip each (and
  each its own snapshot, as a lone statement on PostgreSQL);
- a writing or atomic lease begins with its first statement, in the same trip (BEGIN
  IMMEDIATE when writing, under the database's write lock, as a unit of work writes), and
  commits at the end: one trip more;
- errors are SQLAlchemy's (IntegrityError and the rest); a failed lease is rolled back;
- a connection whose lease was cut (a cancellation, a failed commit) is interrupted and closed,
  not lent again; a writing lease's write lock is let go once that connection is closed (its
  transaction with it), so the next writer does not wait out the busy timeout behind it;
- each connection's thread is a daemon, as SQLAlchemy makes its aiosqlite threads: a process
  that ends without `Database.close()` still ends.

`:memory:` databases keep the Core path: each connection would be a database of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import aiosqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.direct import Params, bind, plan, rows_of
from core.db.sqlite_driver import Outcome, execute_many, execute_one

Setup = tuple[tuple[Any, ...], dict[str, Any], list[str]]  # connect args, kwargs, pragmas


def _begin_then(conn: sqlite3.Connection, begin: str, function: Any, sql: str, args: Any) -> Outcome:
    """On aiosqlite's thread: the transaction's BEGIN, then its first statement."""
    conn.execute(begin)
    return function(conn, sql, args)  # type: ignore[no-any-return]


def _end(conn: sqlite3.Connection, commit: bool) -> None:
    """On aiosqlite's thread: COMMIT, or ROLLBACK of whatever is open."""
    if commit:
        conn.execute("COMMIT")
    elif conn.in_transaction:
        conn.execute("ROLLBACK")


class SqliteDirect:
    """At most `size` aiosqlite connections for direct() leases, opened as the engine opens
    its own (the same file, WAL, busy timeout, foreign keys)."""

    def __init__(self, engine: AsyncEngine, size: int, pragmas: list[str],
                 write_lock: asyncio.Lock) -> None:
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs = {**kwargs, "isolation_level": None}  # autocommit: BEGIN is ours to issue
        self._setup: Setup = (tuple(args), kwargs, pragmas)
        self.dialect: Dialect = engine.dialect
        self.write_lock = write_lock
        self._slots = asyncio.Semaphore(size)
        self._idle: list[aiosqlite.Connection] = []
        self._closing: set[asyncio.Future[Any]] = set()
        self._closed = False

    async def _take(self) -> aiosqlite.Connection:
        await self._slots.acquire()
        try:
            if self._closed:
                raise RuntimeError("the database is closed")
            return self._idle.pop() if self._idle else await self._open()
        except BaseException:
            self._slots.release()
            raise

    async def _open(self) -> aiosqlite.Connection:
        args, kwargs, pragmas = self._setup
        conn = aiosqlite.connect(*args, **kwargs)
        conn._thread.daemon = True  # as SQLAlchemy's adapter does: an unclosed one blocks no exit
        await conn
        try:
            for pragma in pragmas:
                await conn.execute(pragma)
        except BaseException:
            self._drop(conn)
            raise
        return conn

    def _give(self, conn: aiosqlite.Connection, clean: bool) -> asyncio.Future[Any] | None:
        """Back to the idle ones, or closed; the closing (None: nothing to wait for)."""
        closing = None
        if clean and not self._closed:
            self._idle.append(conn)
        else:
            closing = self._drop(conn)
        self._slots.release()
        return closing

    def _drop(self, conn: aiosqlite.Connection) -> asyncio.Future[Any] | None:
        """Closed once its thread is free: a statement still running there is interrupted."""
        with contextlib.suppress(ValueError, sqlite3.Error):  # closed already
            conn._conn.interrupt()  # sqlite3's one call made for other threads
        stopping = conn.stop()
        if stopping is not None:
            self._closing.add(stopping)
            stopping.add_done_callback(self._closing.discard)
        return stopping

    def lease(self, *, write: bool, atomic: bool) -> SqliteLease:
        return SqliteLease(self, write, atomic)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=10)


class SqliteLease:
    """One direct() block: its connection, the write lock when writing, BEGIN with the first
    statement when it writes or is atomic (a plain class: see direct_pool.Lease)."""

    __slots__ = ("pool", "write", "atomic", "conn", "begun")

    def __init__(self, pool: SqliteDirect, write: bool, atomic: bool) -> None:
        self.pool = pool
        self.write = write
        self.atomic = atomic or write  # SQLite writes are always one transaction
        self.conn: aiosqlite.Connection | None = None
        self.begun = False

    async def __aenter__(self) -> SqliteLease:
        if self.write:
            await self.pool.write_lock.acquire()
        try:
            self.conn = await self.pool._take()
        except BaseException:
            if self.write:
                self.pool.write_lock.release()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self.conn is not None
        clean = exc is None or (isinstance(exc, Exception) and not isinstance(exc, TimeoutError))
        try:
            if self.begun and clean:
                await self._trip(None, _end, exc is None)
        except BaseException:
            clean = False
            raise
        finally:
            closing = self.pool._give(self.conn, clean)
            if self.write:
                if closing is None:
                    self.pool.write_lock.release()
                else:  # its transaction ends with it: the next writer would only wait on it
                    closing.add_done_callback(lambda _: self.pool.write_lock.release())

    async def _trip(self, sql: str | None, function: Any, *args: Any) -> Any:
        """`function(sqlite3 connection, *args)` on aiosqlite's thread; errors as SQLAlchemy's."""
        assert self.conn is not None
        try:
            return await self.conn._execute(function, self.conn._conn, *args)  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc

    async def _statement(self, function: Any, sql: str, args: Any) -> Outcome:
        if self.atomic and not self.begun:
            self.begun = True  # from here the end rolls back or commits whatever is open
            begin = "BEGIN IMMEDIATE" if self.write else "BEGIN"
            return await self._trip(sql, _begin_then, begin, function, sql, args)  # type: ignore[no-any-return]
        return await self._trip(sql, function, sql, args)  # type: ignore[no-any-return]

    async def rows(self, stmt: Any, params: Params) -> Sequence[Sequence[Any]]:
        found = plan(self.pool.dialect, stmt)
        outcome = await self._statement(execute_one, found[1], bind(found, params))
        return rows_of(found, outcome[1])

    async def run(self, stmt: Any, params: Params | Sequence[Params]) -> None:
        found = plan(self.pool.dialect, stmt)
        if isinstance(params, Mapping):
            await self._statement(execute_one, found[1], bind(found, params))
        elif params:
            await self._statement(execute_many, found[1], [bind(found, p) for p in params])
