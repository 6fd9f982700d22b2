"""Writing a session's new and changed rows with plain Core statements, without the ORM flush.

The ORM's unit of work costs milliseconds of CPU per flush (dependency sorting, per-object
bookkeeping, RETURNING of generated keys). A sale writes a handful of simple rows: plain
INSERTs (one executemany per table and column set) and UPDATEs by primary key do the same
writes in the same order (tables in foreign-key order, as the ORM does) for far less. The
objects written leave the session (expunged): they keep their values in memory for the
answer, and the session then has nothing left to flush.

Anything this does not model (deletions, inheritance, version counters, collections set on a
new object, mapper or flush events, composite keys) makes it fall back to the ORM's flush.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Integer, Table, bindparam, inspect, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import ColumnProperty, InstanceState, Mapper
from sqlalchemy.orm.interfaces import MANYTOONE

import core.db.models  # noqa: F401  (every table on Base.metadata)
from core.db.base import Base

_EVENTS = ("before_insert", "after_insert", "before_update", "after_update")


def _plain(mapper: Mapper[Any]) -> bool:
    return (mapper.inherits is None and mapper.version_id_col is None
            and isinstance(mapper.local_table, Table) and len(mapper.primary_key) == 1
            and not any(getattr(mapper.dispatch, name) for name in _EVENTS))


def _insert_row(state: InstanceState[Any]) -> dict[str, Any] | None:
    mapper, values = state.mapper, state.dict
    row: dict[str, Any] = {}
    for prop in mapper.column_attrs:
        if prop.key not in values or len(prop.columns) != 1:
            continue
        column, value = prop.columns[0], values[prop.key]
        if value is None and (column.default is not None or column.server_default is not None):
            continue  # as the ORM does: None leaves the column to its default
        row[column.key] = value
    for rel in mapper.relationships:
        target = values.get(rel.key)
        if target is None:
            continue
        if rel.direction is not MANYTOONE:
            return None
        target_mapper = inspect(target).mapper
        for local, remote in rel.local_remote_pairs:
            value = getattr(target, target_mapper.get_property_by_column(remote).key)
            if value is None:
                return None  # a key the database generates: the ORM knows the order
            row[str(local.key)] = value
    pk = mapper.primary_key[0]
    if row.get(str(pk.key)) is None:
        row.pop(str(pk.key), None)
        if pk.autoincrement not in (True, "auto") or not isinstance(pk.type, Integer):
            return None
    return row


def _update_row(state: InstanceState[Any]) -> dict[str, Any] | None:
    mapper, values = state.mapper, state.dict
    row: dict[str, Any] = {}
    for key in state.committed_state:
        prop = mapper.attrs[key]
        if not isinstance(prop, ColumnProperty) or len(prop.columns) != 1:
            return None
        row[prop.columns[0].key] = values.get(key)
    row["_pk"] = mapper.primary_key_from_instance(state.obj())[0]
    return row


Row = dict[str, Any]
Item = tuple[InstanceState[Any] | None, Row]


async def write_pending(session: AsyncSession, extra: dict[Table, list[Row]] | None = None
                        ) -> None:
    """Write the session's pending inserts and updates with Core statements (see above);
    `extra`: more rows to insert in the same go (the outbox's events)."""
    sync = session.sync_session
    inserts: dict[Table, list[Item]] = {t: [(None, r) for r in rows]
                                        for t, rows in (extra or {}).items() if rows}
    updates: dict[Table, list[Item]] = {}
    plain = not (sync.deleted or sync.dispatch.before_flush or sync.dispatch.after_flush)
    for obj in sync.new if plain else ():
        state = inspect(obj)
        row = _insert_row(state) if _plain(state.mapper) else None
        if row is None:
            plain = False
            break
        inserts.setdefault(state.mapper.local_table, []).append((state, row))
    for obj in sync.dirty if plain else ():
        state = inspect(obj)
        if not state.committed_state:
            continue
        row = _update_row(state) if _plain(state.mapper) else None
        if row is None:
            plain = False
            break
        updates.setdefault(state.mapper.local_table, []).append((state, row))
    if not plain:
        await session.flush()
        inserts, updates = {t: [(None, r) for r in rows]
                            for t, rows in (extra or {}).items() if rows}, {}
    if not inserts and not updates:
        return
    conn = await session.connection()
    raw = await driver_in_transaction(conn)
    if raw is None or not await _write_at_once(raw, conn, inserts, updates):
        for table in sorted_tables():
            for rows in _by_columns(inserts.get(table, [])):
                await _insert(conn, raw, table, rows)
            for rows in _by_columns(updates.get(table, [])):
                await _update(conn, raw, table, rows)
    # No relationship here cascades "expunge" (the default cascade is save-update, merge), so
    # the written objects leave the session in one go, without Session.expunge's cascade walk.
    sync._expunge_states([state for group in (*inserts.values(), *updates.values())
                          for state, _ in group if state is not None])


async def driver_in_transaction(conn: AsyncConnection, *, begin: bool = False) -> Any:
    """The asyncpg connection when inside a transaction on PostgreSQL, else None.

    SQLAlchemy's asyncpg adapter sends BEGIN with the first statement; `begin=True` has it
    send it now when the first statement is one run straight on asyncpg (the adapter's own
    start: the isolation level it was given, and it commits or rolls back as usual).
    """
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "asyncpg":
        return None
    adapted: Any = (await conn.get_raw_connection()).dbapi_connection
    driver = adapted.driver_connection if adapted is not None else None
    if driver is None:
        return None
    if (begin and not driver.is_in_transaction() and conn.in_transaction()
            and getattr(adapted, "_transaction", 0) is None
            and adapted.isolation_level != "autocommit"):
        await adapted._start_transaction()
    return driver if driver.is_in_transaction() else None


_DEFAULTS: dict[tuple[Table, frozenset[str]], dict[str, Any] | None] = {}


def _with_defaults(table: Table, rows: list[Row]) -> list[Row] | None:
    """Rows with the columns' scalar Python defaults filled in; None if a default is not scalar."""
    key = (table, frozenset(rows[0]))
    if key not in _DEFAULTS:
        missing = [c for c in table.c if c.key not in rows[0] and c.default is not None]
        _DEFAULTS[key] = ({str(c.key): c.default.arg for c in missing}  # type: ignore[union-attr]
                          if all(getattr(c.default, "is_scalar", False) for c in missing)
                          else None)
    defaults = _DEFAULTS[key]
    if defaults is None:
        return None
    return [{**row, **defaults} for row in rows] if defaults else rows


def _insert_stmt(table: Table) -> Any:
    return table.insert().inline()


def _update_stmt(table: Table) -> Any:
    pk = table.primary_key.columns.values()[0]
    return update(table).where(pk == bindparam("_pk"))


async def _insert(conn: AsyncConnection, raw: Any, table: Table, rows: list[Row]) -> None:
    full = _with_defaults(table, rows) if raw is not None else None
    if full is None:
        await conn.execute(table.insert(), rows)
        return
    await _run(raw, conn, ("insert", table, tuple(sorted(full[0]))), full)


async def _update(conn: AsyncConnection, raw: Any, table: Table, rows: list[Row]) -> None:
    if raw is None or _on_update(table):
        await conn.execute(_update_stmt(table), rows)
        return
    await _run(raw, conn, ("update", table, tuple(sorted(rows[0]))), rows)


Key = tuple[str, Table, tuple[str, ...]]  # (kind, table, keys)
Compiled = tuple[str, list[str], list[Any]]  # SQL, parameter names in order, bind processors
_COMPILED: dict[Key, Compiled] = {}
_ON_UPDATE: dict[Table, bool] = {}  # table -> has a column with an onupdate (never changes)


def _on_update(table: Table) -> bool:
    found = _ON_UPDATE.get(table)
    if found is None:
        found = _ON_UPDATE[table] = any(c.onupdate is not None for c in table.c)
    return found


def _compiled(conn: AsyncConnection, key: Key) -> Compiled:
    """The statement of `key`, compiled once (its kind and table make it)."""
    compiled = _COMPILED.get(key)
    if compiled is None:
        stmt = _insert_stmt(key[1]) if key[0] == "insert" else _update_stmt(key[1])
        compiled = _COMPILED[key] = driver_form(
            stmt.compile(dialect=conn.dialect, column_keys=list(key[2])))
    return compiled


def driver_form(done: Any) -> Compiled:
    """A compiled statement as asyncpg takes it: SQL, parameter names in order, processors."""
    names = list(done.positiontup or ())
    return done.string, names, [done._bind_processors.get(n) for n in names]


def _args(compiled: Compiled, rows: list[Row]) -> list[list[Any]]:
    _, names, procs = compiled
    return [[row[n] if p is None else p(row[n]) for n, p in zip(names, procs, strict=True)]
            for row in rows]


async def _run(raw: Any, conn: AsyncConnection, key: Key, rows: list[Row]) -> None:
    """Straight to asyncpg: the SQL and bind processing SQLAlchemy compiles, without the rest."""
    compiled = _compiled(conn, key)
    args = _args(compiled, rows)
    if len(args) == 1:
        await call_driver(raw.execute, compiled[0], *args[0])
    else:
        await call_driver(raw.executemany, compiled[0], args)


async def call_driver(method: Any, sql: str, *args: Any) -> Any:
    """An asyncpg call, its errors raised as SQLAlchemy's (callers catch IntegrityError)."""
    from asyncpg import IntegrityConstraintViolationError, PostgresError

    try:
        return await method(sql, *args)
    except IntegrityConstraintViolationError as exc:
        raise IntegrityError(sql, None, exc) from exc
    except PostgresError as exc:
        raise DBAPIError(sql, None, exc) from exc


MAX_PARAMETERS = 30_000  # PostgreSQL takes at most 32767 in one statement
_PLACEHOLDER = re.compile(r"\$(\d+)")
# the statements' keys and row counts -> the one statement that does them all
_COMBINED: dict[tuple[tuple[Key, int], ...], str] = {}


async def _write_at_once(raw: Any, conn: AsyncConnection, inserts: dict[Table, list[Item]],
                         updates: dict[Table, list[Item]]) -> bool:
    """Every insert and update in one statement, one round trip: each a data-modifying WITH
    of `WITH w0 AS (INSERT ...), w1 AS (UPDATE ...) SELECT 1`. PostgreSQL runs them all and
    checks foreign keys at the end of the statement, so their order does not matter (no row
    is both inserted and updated here). False, having written nothing, when this does not fit."""
    parts: list[tuple[Key, Compiled, list[Row]]] = []
    for table in sorted_tables():
        for rows in _by_columns(inserts.get(table, [])):
            full = _with_defaults(table, rows)
            if full is None:
                return False
            key: Key = ("insert", table, tuple(sorted(full[0])))
            parts.append((key, _compiled(conn, key), full))
        for rows in _by_columns(updates.get(table, [])):
            if _on_update(table):
                return False
            key = ("update", table, tuple(sorted(rows[0])))
            parts.append((key, _compiled(conn, key), rows))
    if len(parts) < 2:
        return False  # one statement already (executemany is one round trip)
    if sum(len(c[1]) * len(rows) for _, c, rows in parts) > MAX_PARAMETERS:
        return False
    shape = tuple((key, len(rows)) for key, _, rows in parts)
    sql = _COMBINED.get(shape)
    if sql is None:
        sql = _combined_sql([(c, len(rows)) for _, c, rows in parts])
        if sql is None:
            return False
        if len(_COMBINED) > 1000:
            _COMBINED.clear()
        _COMBINED[shape] = sql
    args = [value for _, compiled, rows in parts for row in _args(compiled, rows) for value in row]
    await call_driver(raw.execute, sql, *args)
    return True


def _placeholders(sql: str) -> int:
    numbers = [int(m[1]) for m in _PLACEHOLDER.finditer(sql)]
    return max(numbers) if len(set(numbers)) == len(numbers) else -1


def _renumbered(sql: str, offset: int) -> str:
    return _PLACEHOLDER.sub(lambda m: f"${int(m[1]) + offset}", sql)


def _combined_sql(parts: list[tuple[Compiled, int]]) -> str | None:
    """Rows inserted into one table in one INSERT, in their order (generated keys follow it:
    the outbox is read in that order); each UPDATE its own."""
    if any(_placeholders(sql) != len(names) for (sql, names, _), _ in parts):
        return None  # a parameter used twice: numbering them apart is not this simple
    ctes: list[str] = []
    offset = 0
    for (sql, names, _), count in parts:
        if sql.startswith("INSERT INTO "):
            head, _, values = sql.rpartition(" VALUES ")
            if not (values.startswith("(") and values.endswith(")")):
                return None
            rows = []
            for _ in range(count):
                rows.append(_renumbered(values, offset))
                offset += len(names)
            ctes.append(f"w{len(ctes)} AS ({head} VALUES {', '.join(rows)})")
            continue
        for _ in range(count):
            ctes.append(f"w{len(ctes)} AS ({_renumbered(sql, offset)})")
            offset += len(names)
    return "WITH " + ", ".join(ctes) + " SELECT 1"


_SORTED: list[Table] = []


def sorted_tables() -> list[Table]:
    """Every table, referenced tables first (computed once: the models never change)."""
    if not _SORTED:
        _SORTED.extend(Base.metadata.sorted_tables)
    return _SORTED


def _by_columns(items: list[Item]) -> list[list[Row]]:
    """Rows with the same columns together: one executemany each."""
    groups: dict[frozenset[str], list[Row]] = {}
    for _, row in items:
        groups.setdefault(frozenset(row), []).append(row)
    return list(groups.values())
