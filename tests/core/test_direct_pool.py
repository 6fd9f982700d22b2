"""The pool behind `direct()` on PostgreSQL (core.db.direct_pool): connections are kept and
reused, bounded, handed to the first one waiting, and a connection that may be dirty is never
lent again. Real asyncpg connections to the test server; skipped without one."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import literal_column, select, text
from sqlalchemy.exc import DBAPIError

from core.db import direct_pool
from core.db.direct_pool import Connections

PID = select(literal_column("pg_backend_pid()").label("pid"))
SLEEP = select(literal_column("pg_sleep(5)").label("slept"))
BAD = select(literal_column("1 / 0").label("never"))


@pytest.fixture
def pool(core) -> Connections:
    if core.ctx.db.is_sqlite:
        pytest.skip("the pool of direct statements exists on PostgreSQL only")
    found = core.ctx.db._direct
    assert found is not None
    return found.connections


async def _pid(core) -> int:
    async with core.ctx.db.direct() as db:
        [(pid,)] = await db.rows(PID, {})
    return int(pid)


async def test_one_lease_after_another_uses_the_same_connection(core, pool):
    first = await _pid(core)
    assert [await _pid(core) for _ in range(3)] == [first] * 3
    assert pool.open_count == 1


async def test_a_database_error_leaves_the_connection_in_the_pool(core, pool):
    first = await _pid(core)
    with pytest.raises(DBAPIError, match="division by zero"):
        async with core.ctx.db.direct() as db:
            await db.rows(BAD, {})
    with pytest.raises(DBAPIError):
        async with core.ctx.db.direct(atomic=True) as db:  # rolled back, then lent again
            await db.rows(PID, {})
            await db.rows(BAD, {})
    assert await _pid(core) == first


async def test_a_lease_cancelled_mid_statement_closes_its_connection(core, pool):
    first = await _pid(core)

    async def sleeper() -> None:
        async with core.ctx.db.direct() as db:
            await db.rows(SLEEP, {})

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0.3)  # in pg_sleep now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _pid(core) != first  # a new connection, which works
    assert pool.open_count == 1


async def test_a_connection_the_server_cut_while_idle_is_replaced(core, pool):
    first = await _pid(core)
    async with core.ctx.db.engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
    for _ in range(50):  # until the client has seen the connection close
        await asyncio.sleep(0.02)
        if all(c.is_closed() for c in pool._idle):
            break
    assert await _pid(core) != first


async def test_no_more_than_size_connections_and_the_first_waiting_is_served_first(core, pool):
    pool.size = 2
    order: list[str] = []
    release, both_held = asyncio.Event(), asyncio.Event()

    async def hold(name: str) -> None:
        async with core.ctx.db.direct() as db:
            await db.rows(PID, {})
            order.append(name)
            if len(order) == 2:
                both_held.set()
            await release.wait()

    holders = [asyncio.create_task(hold(n)) for n in ("a", "b")]
    await both_held.wait()

    async def later(name: str) -> None:
        async with core.ctx.db.direct() as db:
            order.append(name)  # in the order the connections were handed over
            await db.rows(PID, {})

    waiting = [asyncio.create_task(later(n)) for n in ("c", "d")]
    await asyncio.sleep(0.1)
    assert order == ["a", "b"] and pool.open_count == 2  # c and d wait, nothing more opened
    release.set()
    await asyncio.gather(*holders, *waiting)
    assert order == ["a", "b", "c", "d"] and pool.open_count == 2


async def test_waiting_too_long_for_a_connection_fails_and_leaves_the_line(core, pool, monkeypatch):
    monkeypatch.setattr(direct_pool, "ACQUIRE_TIMEOUT", 0.2)
    pool.size = 1
    async with core.ctx.db.direct() as db:
        await db.rows(PID, {})
        with pytest.raises(TimeoutError):
            async with core.ctx.db.direct() as other:
                await other.rows(PID, {})
        assert not pool._waiters
    await _pid(core)  # the one connection is free again


async def test_a_connection_opened_in_place_of_a_cut_one_serves_the_one_waiting(core, pool):
    pool.size = 1
    started = asyncio.Event()

    async def sleeper() -> None:
        async with core.ctx.db.direct() as db:
            started.set()
            await db.rows(SLEEP, {})

    task = asyncio.create_task(sleeper())
    await started.wait()
    waiter = asyncio.create_task(_pid(core))  # waits: the only connection is in use
    await asyncio.sleep(0.2)
    assert not waiter.done()
    task.cancel()  # its connection is closed, not handed on; the waiter opens one
    async with asyncio.timeout(5):
        assert await waiter > 0
    assert pool.open_count == 1
