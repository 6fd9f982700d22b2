"""Loading a hot path's rows into the session without the ORM's query machinery.

An ORM select costs a fraction of a millisecond of CPU before and after its round trip
(compile state, result metadata, the loading of each row). The sale reads two things this
way on every call: the customer and their open lots. Here such a select is a plain Core
select whose leading columns are one table's columns (plus any extra columns after them);
on PostgreSQL it runs straight on asyncpg with the SQL and bind processing SQLAlchemy compiled
once, and the rows become objects of the session the way the ORM's own loader attaches them:
persistent, clean, in the identity map, their changes tracked and written as any loaded
object's are. (Session.add of a detached object would do the same through a cascade walk that
costs more than the ORM query saved.)

Pending changes are flushed first, as before any ORM query (autoflush). An object already in
the session is refreshed in place (`set_committed_value`), as `populate_existing` would; one
with changes not flushed (autoflush off) is refused: refreshing it would lose them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, inspect
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from core.db.pending import call_driver, driver_form, driver_in_transaction

T = TypeVar("T")
AnySelect = Select[*tuple[Any, ...]]

# (statement, dialect name) -> the statement, SQL, bind names in order, their values given in
# the statement itself, bind processors, result processors
Plan = tuple[AnySelect, str, list[str], dict[str, Any], list[Any], list[Any]]
_PLANS: dict[tuple[int, str], Plan] = {}
_KEYS: dict[type, tuple[list[str], int]] = {}  # model -> its attribute keys by column, pk index


def _keys(model: type) -> tuple[list[str], int]:
    """The model's attribute keys in its table's column order, and where the primary key is."""
    found = _KEYS.get(model)
    if found is None:
        mapper: Mapper[Any] = inspect(model)
        table = mapper.local_table
        keys = [mapper.get_property_by_column(column).key for column in table.c]
        pk = [c.name for c in table.c].index(mapper.primary_key[0].name)
        found = _KEYS[model] = (keys, pk)
    return found


def _plan(conn: AsyncConnection, stmt: AnySelect) -> Plan:
    key = (id(stmt), conn.dialect.name)
    plan = _PLANS.get(key)
    if plan is None or plan[0] is not stmt:
        compiled = stmt.compile(dialect=conn.dialect)
        sql, names, binds = driver_form(compiled)
        results = [column.type._cached_result_processor(conn.dialect, None)
                   for column in stmt.selected_columns]
        plan = _PLANS[key] = (stmt, sql, names, dict(compiled.params), binds,
                              results)
    return plan


async def fetch_rows(session: AsyncSession, stmt: AnySelect, params: dict[str, Any]
                     ) -> Sequence[Sequence[Any]]:
    """The statement's rows, values as the ORM would see them. `stmt` must be built once
    (a module-level constant): its compiled form is kept by identity."""
    sync = session.sync_session
    if sync.autoflush and (sync.new or sync.dirty or sync.deleted):
        await session.flush()  # as an ORM query would: it sees the session's own changes
    conn = await session.connection()
    raw = await driver_in_transaction(conn, begin=True)
    if raw is None:
        rows: Sequence[Sequence[Any]] = (await session.execute(stmt, params)).all()
        return rows
    _, sql, names, fixed, binds, results = _plan(conn, stmt)
    missing = [n for n in names if n not in params and fixed[n] is None]
    if missing:
        raise ValueError(f"no value for {', '.join(missing)}")
    values = [params[n] if n in params else fixed[n] for n in names]
    args = [v if p is None else p(v) for v, p in zip(values, binds, strict=True)]
    records: list[Any] = await call_driver(raw.fetch, sql, *args)
    if not any(results):
        return records
    return [[value if p is None or value is None else p(value)
             for value, p in zip(record, results, strict=True)] for record in records]


def as_objects(session: AsyncSession, model: type[T], rows: Sequence[Sequence[Any]]) -> list[T]:
    """Rows whose leading columns are `model`'s table columns, as objects of the session."""
    keys, pk = _keys(model)
    width = len(keys)
    sync = session.sync_session
    mapper = inspect(model)
    new_instance = mapper.class_manager.new_instance
    out: list[T] = []
    for row in rows:
        identity = mapper.identity_key_from_primary_key([row[pk]])
        existing = sync.identity_map.get(identity)
        if existing is not None:
            state = instance_state(existing)
            if state.modified or state._deleted:
                raise InvalidRequestError(f"{model.__name__} {row[pk]} has unsaved changes")
            for key, value in zip(keys, row[:width], strict=True):
                set_committed_value(existing, key, value)
            out.append(existing)
            continue
        # As the ORM's loader attaches a row it loads (orm/loading.py, _instance): a new
        # instance, its identity, the session's identity map. No loader or persistence
        # events are mapped here (pending.py falls back to the ORM if any are).
        obj = new_instance()
        state = instance_state(obj)
        values = state.dict
        for key, value in zip(keys, row[:width], strict=True):
            values[key] = value
        state.key = identity
        state.identity_token = None
        state.session_id = sync.hash_key
        sync.identity_map._add_unpresent(state, identity)
        out.append(obj)
    return out


async def load(session: AsyncSession, model: type[T], stmt: AnySelect,
               params: dict[str, Any]) -> list[T]:
    """The objects of a select of `model`'s table columns (see above)."""
    return as_objects(session, model, await fetch_rows(session, stmt, params))
