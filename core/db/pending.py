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
    raw = await _driver(conn)
    for table in _tables():
        for rows in _by_columns(inserts.get(table, [])):
            await _insert(conn, raw, table, rows)
        for rows in _by_columns(updates.get(table, [])):
            await _update(conn, raw, table, rows)
    for group in (*inserts.values(), *updates.values()):
        for state, _ in group:
            if state is not None:
                sync.expunge(state.obj())


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection when inside a transaction on PostgreSQL, else None."""
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "asyncpg":
        return None
    driver = (await conn.get_raw_connection()).driver_connection
    return driver if driver is not None and driver.is_in_transaction() else None


def _with_defaults(table: Table, rows: list[Row]) -> list[Row] | None:
    """Rows with the columns' scalar Python defaults filled in; None if a default is not scalar."""
    missing = [c for c in table.c if c.key not in rows[0] and c.default is not None]
    if not missing:
        return rows
    if not all(getattr(c.default, "is_scalar", False) for c in missing):
        return None
    return [{**row, **{c.key: c.default.arg for c in missing}} for row in rows]  # type: ignore[union-attr]


async def _insert(conn: AsyncConnection, raw: Any, table: Table, rows: list[Row]) -> None:
    full = _with_defaults(table, rows) if raw is not None else None
    if full is None:
        await conn.execute(table.insert(), rows)
        return
    await _run(raw, conn, ("insert", table, tuple(sorted(full[0]))), table.insert().inline(), full)


async def _update(conn: AsyncConnection, raw: Any, table: Table, rows: list[Row]) -> None:
    pk = table.primary_key.columns.values()[0]
    stmt = update(table).where(pk == bindparam("_pk"))
    if raw is None or any(c.onupdate is not None for c in table.c):
        await conn.execute(stmt, rows)
        return
    await _run(raw, conn, ("update", table, tuple(sorted(rows[0]))), stmt, rows)


# (kind, table, keys) -> (SQL, parameter names in order, their bind processors)
_COMPILED: dict[tuple[str, Table, tuple[str, ...]], tuple[str, list[str], list[Any]]] = {}


async def _run(raw: Any, conn: AsyncConnection, key: tuple[str, Table, tuple[str, ...]],
               stmt: Any, rows: list[Row]) -> None:
    """Straight to asyncpg: the SQL and bind processing SQLAlchemy compiles, without the rest."""
    compiled = _COMPILED.get(key)
    if compiled is None:
        done = stmt.compile(dialect=conn.dialect, column_keys=list(key[2]))
        names = list(done.positiontup or ())
        procs = [done._bind_processors.get(n) for n in names]
        compiled = _COMPILED[key] = (done.string, names, procs)
    sql, names, procs = compiled
    args = [[row[n] if p is None else p(row[n]) for n, p in zip(names, procs, strict=True)]
            for row in rows]
    from asyncpg import IntegrityConstraintViolationError, PostgresError

    try:
        if len(args) == 1:
            await raw.execute(sql, *args[0])
        else:
            await raw.executemany(sql, args)
    except IntegrityConstraintViolationError as exc:
        raise IntegrityError(sql, None, exc) from exc
    except PostgresError as exc:
        raise DBAPIError(sql, None, exc) from exc


_SORTED: list[Table] = []


def _tables() -> list[Table]:
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
