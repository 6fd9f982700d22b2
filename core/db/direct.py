"""Short statements without an ORM session: the hot paths' one- and two-statement transactions.

An AsyncSession costs about 0.3 ms of CPU to open, begin, commit and close, on top of its
statements; a "show my card" runs seven such transactions, each a statement or two of Core SQL
built once. `Database.direct()` runs them on a bare connection instead:

- on PostgreSQL, an asyncpg connection from a small pool of its own (core/db/direct_pool.py),
  the statement's SQL and bind processing compiled by SQLAlchemy once (as core/db/fastload.py
  does inside a session), JSON coded as SQLAlchemy's asyncpg dialect codes it; a single
  statement runs in its own implicit transaction, `atomic=True` wraps several in one;
- on SQLite, an aiosqlite connection of its own (core/db/direct_sqlite.py): a read is one trip
  to the driver's thread, a write two (BEGIN IMMEDIATE with the first statement, under the write
  lock, as a unit of work takes them; COMMIT); an SQLAlchemy Core connection for `:memory:`.

Values come back as the ORM would see them. Statements must be built once (module constants):
their compiled form is kept by identity. Errors are SQLAlchemy's (IntegrityError and the rest).
Nothing here knows any table: services keep their SQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db.direct_pool import Connections, Lease
from core.db.pending import call_driver, driver_form

Params = Mapping[str, Any]
# statement id -> the statement, SQL, bind names in order, values the statement itself gives
# (_GIVEN for a bind it leaves to the caller), bind processors, result processors
Plan = tuple[Any, str, list[str], dict[str, Any], list[Any], list[Any]]
_GIVEN = object()  # a value the caller must give
_PLANS: dict[tuple[int, str], Plan] = {}


def plan(dialect: Dialect, stmt: Any) -> Plan:
    """The statement as asyncpg takes it, compiled once per (statement, dialect)."""
    key = (id(stmt), dialect.name)
    found = _PLANS.get(key)
    if found is None or found[0] is not stmt:
        compiled = stmt.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("an IN list is rendered per run: write it as OR of equalities")
        if compiled.insert_prefetch or compiled.update_prefetch:  # Python-side defaults
            raise ValueError("a column's Python default is computed per run: give its value")
        sql, names, binds = driver_form(compiled)
        results = [column.type._cached_result_processor(dialect, None)
                   for column in stmt.exported_columns]
        fixed = {name: _GIVEN if compiled.binds[name].required else value
                 for name, value in compiled.params.items()}
        found = _PLANS[key] = (stmt, sql, names, fixed, binds, results)
    return found


def bind(found: Plan, params: Params) -> list[Any]:
    """The driver's positional arguments for `params` (plus what the statement fixes)."""
    _, _, names, fixed, binds, _ = found
    missing = [n for n in names if n not in params and fixed[n] is _GIVEN]
    if missing:
        raise ValueError(f"no value for {', '.join(missing)}")
    values = [params[n] if n in params else fixed[n] for n in names]
    return [v if p is None else p(v) for v, p in zip(values, binds, strict=True)]


def rows_of(found: Plan, records: Sequence[Any]) -> Sequence[Sequence[Any]]:
    """The driver's records with the result processors applied (as the ORM would see them)."""
    results = found[5]
    if not any(results):
        return records
    return [[value if p is None or value is None else p(value)
             for value, p in zip(record, results, strict=True)] for record in records]


class Statements(Protocol):
    """One connection's statements (see the module's docstring)."""

    atomic: bool  # its statements commit together (a transaction-scoped lock holds till then)

    async def rows(self, stmt: Any, params: Params) -> Sequence[Sequence[Any]]:
        """A SELECT's (or a RETURNING's) rows."""

    async def run(self, stmt: Any, params: Params | Sequence[Params]) -> None:
        """An INSERT/UPDATE/DELETE, once or for each of a list of parameter sets."""


class _OnAsyncpg:
    def __init__(self, conn: Any, dialect: Dialect, atomic: bool) -> None:
        self.conn = conn
        self.dialect = dialect
        self.atomic = atomic

    async def rows(self, stmt: Any, params: Params) -> Sequence[Sequence[Any]]:
        found = plan(self.dialect, stmt)
        return rows_of(found, await call_driver(self.conn.fetch, found[1], *bind(found, params)))

    async def run(self, stmt: Any, params: Params | Sequence[Params]) -> None:
        found = plan(self.dialect, stmt)
        if isinstance(params, Mapping) or len(params) == 1:
            one = params if isinstance(params, Mapping) else params[0]
            await call_driver(self.conn.execute, found[1], *bind(found, one))
        elif params:  # asyncpg's executemany: one round trip, all or nothing
            await call_driver(self.conn.executemany, found[1], [bind(found, p) for p in params])


class _OnCore:
    def __init__(self, conn: AsyncConnection, atomic: bool) -> None:
        self.conn = conn
        self.atomic = atomic

    async def rows(self, stmt: Any, params: Params) -> Sequence[Sequence[Any]]:
        plan(self.conn.dialect, stmt)  # refused here as on PostgreSQL (cached: checked once)
        return (await self.conn.execute(stmt, dict(params))).all()

    async def run(self, stmt: Any, params: Params | Sequence[Params]) -> None:
        plan(self.conn.dialect, stmt)
        if isinstance(params, Mapping):
            await self.conn.execute(stmt, dict(params))
        elif params:
            await self.conn.execute(stmt, [dict(p) for p in params])


async def _json_codecs(conn: Any) -> None:
    """JSON and JSONB as SQLAlchemy's asyncpg dialect codes them (text in, parsed out)."""
    await conn.set_type_codec("json", encoder=str.encode, schema="pg_catalog", format="binary",
                              decoder=lambda data: json.loads(data.decode()))
    await conn.set_type_codec("jsonb", encoder=lambda text: b"\x01" + text.encode(),
                              decoder=lambda data: json.loads(data[1:].decode()),
                              schema="pg_catalog", format="binary")


class DirectPool:
    """The connections behind `Database.direct()` on PostgreSQL (core/db/direct_pool.py),
    opened as the engine would open them, with JSON coded as its dialect codes it."""

    def __init__(self, engine: AsyncEngine, size: int) -> None:
        self.engine = engine
        self.connections = Connections(self._connect, size)
        self._options: dict[str, Any] | None = None

    async def _connect(self) -> Any:
        import asyncpg

        if self._options is None:
            _args, options = self.engine.dialect.create_connect_args(self.engine.url)
            options = dict(options)
            options["statement_cache_size"] = options.pop("prepared_statement_cache_size", 100)
            for name in ("async_creator_fn", "prepared_statement_name_func"):
                options.pop(name, None)
            self._options = options
        conn = await asyncpg.connect(**self._options)
        try:
            await _json_codecs(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    def statements(self, *, atomic: bool) -> AbstractAsyncContextManager[Statements]:
        return _Lease(self.connections, atomic, self.engine.dialect)

    async def close(self) -> None:
        """Refuse new work; connections in use get CLOSE_GRACE to come back, then are cut."""
        await self.connections.close()


class _Lease(Lease):
    __slots__ = ("dialect",)

    def __init__(self, pool: Connections, atomic: bool, dialect: Dialect) -> None:
        super().__init__(pool, atomic)
        self.dialect = dialect

    async def __aenter__(self) -> Statements:
        return _OnAsyncpg(await super().__aenter__(), self.dialect, self.atomic)


@asynccontextmanager
async def on_core(engine: AsyncEngine, *, begin: bool) -> AsyncIterator[Statements]:
    """Statements on an SQLAlchemy Core connection; `begin`: committed at the end."""
    if begin:
        async with engine.begin() as conn:
            yield _OnCore(conn, True)
    else:
        async with engine.connect() as conn:
            yield _OnCore(conn, False)
