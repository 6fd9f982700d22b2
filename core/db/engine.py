"""The database: one async engine, read sessions and write units of work.

SQLite has no row locks and its Python driver starts no transaction before a
SELECT, so a write unit of work there begins with BEGIN IMMEDIATE: writers queue
up on the database lock (busy_timeout) instead of overdrawing a balance. On
PostgreSQL the services lock the customer's row with SELECT ... FOR UPDATE.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core.db.direct import DirectPool, Statements, on_core
from core.db.direct_sqlite import SqliteDirect
from core.db.sqlite_driver import sqlite_dbapi


class Database:
    """Owns the engine and hands out sessions; close() on shutdown."""

    def __init__(self, url: str, *, pool_size: int = 10, busy_timeout_ms: int = 30_000) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # PostgreSQL: connections are opened as needed and then kept, no overflow that a busy
        # minute opens and closes again (each opening is a backend start and a wait on a
        # request's path; under an uneven load they came and went many times a second).
        kwargs: dict[str, Any] = {}
        if not self.is_sqlite:
            kwargs = {"pool_size": pool_size * 2, "max_overflow": 0, "pool_recycle": 1800}
        elif ":memory:" not in url:
            kwargs = {"pool_size": pool_size, "max_overflow": pool_size * 2, "pool_timeout": 60}
        if make_url(url).get_driver_name() == "aiosqlite":
            kwargs["module"] = sqlite_dbapi()  # a statement in one trip to its thread
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _sqlite_tuning(self.engine, busy_timeout_ms)
            self.write_engine = self.engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        else:
            self.write_engine = self.engine
        # One process, one SQLite writer at a time: queue here rather than in busy_timeout
        # sleeps (which give long tails). PostgreSQL writers lock rows instead.
        self.write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(self.write_engine, expire_on_commit=False)
        asyncpg = not self.is_sqlite and self.engine.dialect.driver == "asyncpg"
        self._direct = DirectPool(self.engine, pool_size) if asyncpg else None
        self._sqlite_direct: SqliteDirect | None = None
        if self.write_lock is not None and "module" in kwargs and ":memory:" not in url:
            self._sqlite_direct = SqliteDirect(self.engine, pool_size, _pragmas(busy_timeout_ms),
                                               self.write_lock)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; whatever it holds is rolled back at the end."""
        async with self._read() as session:
            yield session

    def write_session(self) -> AsyncSession:
        return self._write()

    def direct(self, *, write: bool = False, atomic: bool = False
               ) -> AbstractAsyncContextManager[Statements]:
        """Statements without a session (core/db/direct.py), for short hot-path transactions.

        `write`: it writes (on SQLite: under the write lock, in a BEGIN IMMEDIATE transaction
        committed at the end). `atomic`: its statements commit together or not at all (on
        PostgreSQL one statement alone is its own transaction; SQLite writes always are one).
        """
        if self._direct is not None:
            return self._direct.statements(atomic=atomic)
        if self._sqlite_direct is not None:
            return self._sqlite_direct.lease(write=write, atomic=atomic)
        return self._on_core(write=write, atomic=atomic)

    @asynccontextmanager
    async def _on_core(self, *, write: bool, atomic: bool) -> AsyncIterator[Statements]:
        if write and self.write_lock is not None:
            async with self.write_lock, on_core(self.write_engine, begin=True) as statements:
                yield statements
        else:  # atomic without write still commits (a caller's slip must not lose writes)
            async with on_core(self.write_engine if write else self.engine,
                               begin=write or atomic) as statements:
                yield statements

    async def refresh_statistics(self, *tables: str) -> None:
        """Gather the planner's statistics of `tables` now (ANALYZE), after a bulk write.

        Autovacuum would, a minute or so later; meanwhile PostgreSQL plans the hot paths'
        prepared statements for the tables as they were (empty, after a first import), and a
        customer looked up by id can go through the merchant's index, reading every customer.
        Nothing on SQLite: without statistics its planner still takes the unique index of an
        equality, and ANALYZE would hold the one writer's lock while it reads whole tables.
        """
        for table in tables:
            if not table.isidentifier():
                raise ValueError(f"not a table name: {table!r}")
        if self.is_sqlite:
            return
        async with self.engine.begin() as conn:
            for table in tables:
                await conn.execute(text(f'ANALYZE "{table}"'))

    async def close(self) -> None:
        if self._direct is not None:
            await self._direct.close()
        if self._sqlite_direct is not None:
            await self._sqlite_direct.close()
        await self.engine.dispose()


def _pragmas(busy_timeout_ms: int) -> list[str]:
    """How every SQLite connection is set up (the engine's and direct()'s)."""
    return ["PRAGMA journal_mode=WAL", f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
            "PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL"]


def _sqlite_tuning(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver; "begin" below issues it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _pragmas(busy_timeout_ms):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))
