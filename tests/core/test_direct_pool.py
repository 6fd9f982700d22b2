"""The pool behind `direct()` on PostgreSQL (core.db.direct_pool): connections are kept and
reused, bounded, handed to the first one waiting, and a connection that may be dirty is never
lent again. First its rules on hand-written fake connections (every run), then on real
asyncpg connections to the test server (skipped without one)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import literal_column, select, text
from sqlalchemy.exc import DBAPIError

from core.db import direct_pool
from core.db.direct_pool import Connections, Lease

PID = select(literal_column("pg_backend_pid()").label("pid"))
SLEEP = select(literal_column("pg_sleep(5)").label("slept"))
BAD = select(literal_column("1 / 0").label("never"))


class FakeConnection:
    """What the pool asks of an asyncpg connection, and what it did to it."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = self.terminated = self.in_transaction = False

    def is_closed(self) -> bool:
        return self.closed

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    def terminate(self) -> None:
        self.closed = self.terminated = True

    async def close(self) -> None:
        self.closed = True


class Opener:
    """The pool's `connect`: numbered fake connections; `fail` makes the next ones fail."""

    def __init__(self) -> None:
        self.opened: list[FakeConnection] = []
        self.fail = 0

    async def __call__(self) -> FakeConnection:
        await asyncio.sleep(0)
        if self.fail:
            self.fail -= 1
            raise OSError("connection refused")
        self.opened.append(FakeConnection(len(self.opened)))
        return self.opened[-1]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def _one_lent_one_waiting() -> tuple[Opener, Connections, FakeConnection, asyncio.Task]:
    """A pool of one whose connection is lent, and a second lease waiting for it."""
    opener = Opener()
    pool = Connections(opener, 1)
    conn = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await _settle()
    return opener, pool, conn, waiting


async def test_connections_given_back_are_lent_again_and_never_more_than_size():
    opener = Opener()
    pool = Connections(opener, 2)
    first, second = await pool.acquire(), await pool.acquire()
    third = asyncio.create_task(pool.acquire())
    fourth = asyncio.create_task(pool.acquire())
    await _settle()
    assert not third.done() and len(opener.opened) == 2
    pool.release(first, clean=True)
    assert await third is first  # handed over, first come first served
    assert pool.open_count == 2  # and counted as lent: nothing more is opened
    fifth = asyncio.create_task(pool.acquire())
    await _settle()
    assert not fifth.done() and len(opener.opened) == 2
    pool.release(second, clean=True)
    pool.release(first, clean=True)
    assert (await fourth, await fifth) == (second, first)
    assert len(opener.opened) == 2


async def test_a_dirty_connection_is_closed_and_its_slot_goes_to_the_first_waiting():
    opener, pool, conn, waiting = await _one_lent_one_waiting()
    pool.release(conn, clean=False)  # say, cancelled mid-statement
    newcomer = asyncio.create_task(pool.acquire())  # arrives after: must not take the slot
    replacement = await waiting
    assert conn.terminated and replacement is opener.opened[1]
    await _settle()
    assert not newcomer.done() and pool.open_count == 1
    pool.release(replacement, clean=True)
    assert await newcomer is replacement


async def test_a_connection_in_a_transaction_is_never_lent_again():
    opener = Opener()
    pool = Connections(opener, 1)
    conn = await pool.acquire()
    conn.in_transaction = True  # a commit cut short
    pool.release(conn, clean=True)
    assert conn.terminated and await pool.acquire() is opener.opened[1]


async def test_a_waiter_cancelled_as_a_connection_reaches_it_passes_it_on():
    opener = Opener()
    pool = Connections(opener, 1)
    conn = await pool.acquire()
    cancelled = asyncio.create_task(pool.acquire())
    after = asyncio.create_task(pool.acquire())
    await _settle()
    pool.release(conn, clean=True)  # handed to `cancelled`, which has not run yet ...
    cancelled.cancel()  # ... and is cancelled before it does
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await after is conn and pool.open_count == 1


async def test_a_failed_connect_lets_the_next_in_line_try():
    opener, pool, conn, waiting = await _one_lent_one_waiting()
    opener.fail = 1
    pool.release(conn, clean=False)
    with pytest.raises(OSError):
        await waiting
    assert pool.open_count == 0
    assert await pool.acquire() is opener.opened[1]  # the database is back


async def test_a_connection_idle_too_long_is_closed_not_lent(monkeypatch):
    opener = Opener()
    pool = Connections(opener, 2)
    conn = await pool.acquire()
    pool.release(conn, clean=True)
    assert await pool.acquire() is conn
    pool.release(conn, clean=True)
    monkeypatch.setattr(direct_pool, "MAX_IDLE", -1.0)
    assert await pool.acquire() is opener.opened[1] and conn.terminated


async def test_errors_of_the_callers_own_keep_the_connection_cancellations_do_not():
    opener = Opener()
    pool = Connections(opener, 1)

    class NotFound(Exception):
        pass

    with pytest.raises(NotFound):
        async with Lease(pool, atomic=False):
            raise NotFound
    assert await pool.acquire() is opener.opened[0]
    pool.release(opener.opened[0], clean=True)
    for cut in (asyncio.CancelledError, TimeoutError, ConnectionResetError):
        with pytest.raises(cut):
            async with Lease(pool, atomic=False):
                raise cut
    assert [c.terminated for c in opener.opened] == [True, True, True]  # each cut one closed
    assert await pool.acquire() is opener.opened[3] and pool.open_count == 1


async def test_closing_waits_for_a_handed_over_lease_and_refuses_new_ones(monkeypatch):
    monkeypatch.setattr(direct_pool, "CLOSE_GRACE", 5.0)
    opener, pool, conn, waiting = await _one_lent_one_waiting()
    pool.release(conn, clean=True)
    assert await waiting is conn
    closing = asyncio.create_task(pool.close())
    await _settle()
    assert not closing.done()  # the lease handed over is still out
    with pytest.raises(RuntimeError, match="closed"):
        await pool.acquire()
    pool.release(conn, clean=True)
    await closing
    assert conn.closed


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
    for _ in range(250):  # until the client has seen the connection close
        if all(conn.is_closed() for conn, _ in pool._idle):
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the client never saw the server close the idle connection")
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
    assert sorted(order) == ["a", "b"] and pool.open_count == 2  # c, d wait; no more opened
    assert len(pool._waiters) == 2
    release.set()
    await asyncio.gather(*holders, *waiting)
    assert order[2:] == ["c", "d"] and pool.open_count == 2


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
