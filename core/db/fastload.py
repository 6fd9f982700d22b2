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
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from core.db.direct import Statements, bind, plan, rows_of
from core.db.pending import call_driver, driver_in_transaction

T = TypeVar("T")
AnySelect = Select[*tuple[Any, ...]]
Reader = AsyncSession | Statements  # what the read-only helpers (balances, cards) read through

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


async def fetch_rows(source: Reader, stmt: AnySelect, params: dict[str, Any]
                     ) -> Sequence[Sequence[Any]]:
    """The statement's rows, values as the ORM would see them, read in a session or straight
    (core/db/direct.py). `stmt` must be built once (a module-level constant): its compiled form
    is kept by identity."""
    if not isinstance(source, AsyncSession):
        return await source.rows(stmt, params)
    session = source
    sync = session.sync_session
    if sync.autoflush and (sync.new or sync.dirty or sync.deleted):
        await session.flush()  # as an ORM query would: it sees the session's own changes
    conn = await session.connection()
    raw = await driver_in_transaction(conn, begin=True)
    if raw is None:
        rows: Sequence[Sequence[Any]] = (await session.execute(stmt, params)).all()
        return rows
    found = plan(conn.dialect, stmt)
    return rows_of(found, await call_driver(raw.fetch, found[1], *bind(found, params)))


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


def detached(model: type[T], row: Sequence[Any]) -> T:
    """A row whose leading columns are `model`'s table columns, as an object of no session
    (read only: for answers built from a read outside a session)."""
    keys, _ = _keys(model)
    obj: T = inspect(model).class_manager.new_instance()
    values = instance_state(obj).dict
    for key, value in zip(keys, row[:len(keys)], strict=True):
        values[key] = value
    return obj


async def load(session: AsyncSession, model: type[T], stmt: AnySelect,
               params: dict[str, Any]) -> list[T]:
    """The objects of a select of `model`'s table columns (see above)."""
    return as_objects(session, model, await fetch_rows(session, stmt, params))
