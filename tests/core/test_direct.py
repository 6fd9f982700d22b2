"""Statements without a session (core.db.direct) write and read what the ORM would, on SQLite
and PostgreSQL: values, JSON, the statement's own values, errors, atomicity."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, StatementError

from core.db.base import table_of
from core.db.models import InboundUpdate

_T = table_of(InboundUpdate)
_COLUMNS = ("bot_id", "key", "payload", "status", "attempts", "received_at", "expires_at")
INSERT = insert(_T).values({name: bindparam(name) for name in _COLUMNS}).returning(_T.c.id)
PLAIN_INSERT = insert(_T).values({name: bindparam(name) for name in _COLUMNS})
BY_KEY = select(_T.c.id, _T.c.payload, _T.c.status, _T.c.last_error, _T.c.received_at).where(
    _T.c.bot_id == bindparam("bot_id"), _T.c.key == bindparam("key"))
# A statement giving values itself, one of them None, and leaving two to the caller.
FAILED = (update(_T).where(_T.c.id == bindparam("_id"))
          .values(status="failed", last_error=None, processed_at=bindparam("now")))
BY_STATUSES = select(_T.c.id).where(_T.c.status.in_(("new", "retry")))
BY_STATUSES_OK = select(_T.c.id).where((_T.c.status == "new") | (_T.c.status == "retry"))


@pytest.fixture
async def bot_id(core, merchant_id) -> str:
    from core.services.bots import add_bot

    return (await add_bot(core.ctx, merchant_id, "telegram", "123:secret-token", username="b")).id


def _row(core, bot_id: str, key: str, payload: dict) -> dict:
    now = core.ctx.now()
    return {"bot_id": bot_id, "key": key, "payload": payload, "status": "new", "attempts": 0,
            "received_at": now, "expires_at": now + timedelta(hours=1)}


async def test_what_is_written_directly_reads_back_as_the_orm_sees_it(core, bot_id):
    payload = {"update_id": 7, "text": "Привет", "nested": {"a": [1, 2]}}
    async with core.ctx.db.direct(write=True) as db:
        [(row_id,)] = await db.rows(INSERT, _row(core, bot_id, "7", payload))
    async with core.ctx.db.direct() as db:
        [(found_id, found_payload, status, error, received)] = await db.rows(
            BY_KEY, {"bot_id": bot_id, "key": "7"})
    assert (found_id, found_payload, status, error) == (row_id, payload, "new", None)
    assert received == core.ctx.now() and received.tzinfo is not None
    async with core.ctx.db.read() as session:  # and a session sees the same committed row
        stored = await session.get(InboundUpdate, row_id)
        assert stored is not None and stored.payload == payload


async def test_the_statements_own_values_are_sent_and_the_callers_are_required(core, bot_id):
    async with core.ctx.db.direct(write=True) as db:
        [(row_id,)] = await db.rows(INSERT, _row(core, bot_id, "1", {}))
    async with core.ctx.db.direct(write=True) as db:
        await db.run(update(_T).where(_T.c.id == row_id).values(last_error="boom"), {})
    async with core.ctx.db.direct(write=True) as db:
        await db.run(FAILED, {"_id": row_id, "now": core.ctx.now()})
    async with core.ctx.db.direct() as db:
        [(_, _, status, error, _)] = await db.rows(BY_KEY, {"bot_id": bot_id, "key": "1"})
    assert (status, error) == ("failed", None)  # None given by the statement, not "missing"
    # A value the statement leaves to the caller and the caller forgot: refused, nothing written
    # (PostgreSQL: ours, naming it; SQLite: SQLAlchemy's, naming it too).
    with pytest.raises((ValueError, StatementError), match="now"):
        async with core.ctx.db.direct(write=True) as db:
            await db.run(FAILED, {"_id": row_id})


async def test_several_parameter_sets_write_every_row(core, bot_id):
    async with core.ctx.db.direct(write=True) as db:
        await db.run(PLAIN_INSERT, [_row(core, bot_id, str(n), {"n": n}) for n in range(5)])
    async with core.ctx.db.direct() as db:
        found = [await db.rows(BY_KEY, {"bot_id": bot_id, "key": str(n)}) for n in range(5)]
    assert [rows[0][1] for rows in found] == [{"n": n} for n in range(5)]


async def test_a_duplicate_is_sqlalchemys_integrity_error_and_an_atomic_group_keeps_nothing(
        core, bot_id):
    async with core.ctx.db.direct(write=True) as db:
        await db.run(PLAIN_INSERT, _row(core, bot_id, "dup", {}))
    with pytest.raises(IntegrityError):
        async with core.ctx.db.direct(write=True, atomic=True) as db:
            await db.run(PLAIN_INSERT, _row(core, bot_id, "first", {}))
            await db.run(PLAIN_INSERT, _row(core, bot_id, "dup", {}))  # breaks the group
    async with core.ctx.db.direct() as db:
        assert await db.rows(BY_KEY, {"bot_id": bot_id, "key": "first"}) == []
    # the connection went back clean: the next use works
    async with core.ctx.db.direct(write=True) as db:
        await db.run(PLAIN_INSERT, _row(core, bot_id, "after", {}))
    async with core.ctx.db.direct() as db:
        assert len(await db.rows(BY_KEY, {"bot_id": bot_id, "key": "after"})) == 1


async def test_an_in_list_is_refused_with_a_clear_error(core):
    with pytest.raises(ValueError, match="IN list"):
        async with core.ctx.db.direct() as db:
            await db.rows(BY_STATUSES, {})


async def test_a_column_left_to_its_python_default_is_refused_not_written_as_null(core, bot_id):
    # status and attempts have Python-side defaults: only the ORM computes them per run
    short = insert(_T).values({name: bindparam(name) for name in
                               ("bot_id", "key", "payload", "received_at", "expires_at")})
    row = {k: v for k, v in _row(core, bot_id, "d", {}).items() if k not in ("status", "attempts")}
    with pytest.raises(ValueError, match="default"):
        async with core.ctx.db.direct(write=True) as db:
            await db.run(short, row)
    async with core.ctx.db.direct() as db:
        assert await db.rows(BY_KEY, {"bot_id": bot_id, "key": "d"}) == []


async def test_an_atomic_group_commits_even_when_not_marked_as_writing(core, bot_id):
    async with core.ctx.db.direct(atomic=True) as db:
        await db.run(PLAIN_INSERT, _row(core, bot_id, "a", {}))
    async with core.ctx.db.direct() as db:
        assert len(await db.rows(BY_KEY, {"bot_id": bot_id, "key": "a"})) == 1


async def test_a_chat_lock_outside_an_atomic_group_is_refused(core):
    from core.services.outgoing_claim import lock_chat

    if core.ctx.db.is_sqlite:  # one writer at a time: SQLite takes no chat lock at all
        async with core.ctx.db.direct() as db:
            assert await lock_chat(db, "bot", "chat", sqlite=True)
        return
    async with core.ctx.db.direct() as db:  # the lock would end with its one statement
        with pytest.raises(ValueError, match="atomic"):
            await lock_chat(db, "bot", "chat", sqlite=False)
    async with core.ctx.db.direct(write=True, atomic=True) as db:
        assert await lock_chat(db, "bot", "chat", sqlite=False)


async def test_closing_waits_briefly_for_a_held_connection_then_refuses_new_work(
        core, monkeypatch):
    """A shutdown is not held up for ever by a task stuck holding a connection: it waits
    CLOSE_GRACE, then cuts the connection; and nothing opens a new pool behind the closed one."""
    import asyncio
    import time

    from core.db import direct_pool
    from core.db.engine import Database

    if core.ctx.db.is_sqlite:
        pytest.skip("the pool of direct statements exists on PostgreSQL only")
    monkeypatch.setattr(direct_pool, "CLOSE_GRACE", 0.5)
    db = Database(core.ctx.db.url)
    held, closed = asyncio.Event(), asyncio.Event()

    async def stuck() -> None:
        async with db.direct() as statements:
            await statements.rows(BY_STATUSES_OK, {})
            held.set()
            await closed.wait()
            await statements.rows(BY_STATUSES_OK, {})  # on a connection cut meanwhile

    task = asyncio.create_task(stuck())
    await held.wait()
    started = time.monotonic()
    async with asyncio.timeout(5):
        await db.close()
    assert time.monotonic() - started >= 0.45  # it did wait for the held connection
    closed.set()
    [outcome] = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, Exception)  # the stuck task's connection is gone
    with pytest.raises(RuntimeError, match="closed"):
        async with db.direct() as statements:
            await statements.rows(BY_STATUSES_OK, {})
