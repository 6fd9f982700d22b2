"""The outbox: events exist only with their transaction; each consumer sees each event once."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.errors import RedeemExceedsLimit
from core.services.customers import CustomerRef, RegisterCustomer, register_customer
from core.services.outbox import BATCH, BUSY_LINGER_SECONDS, Outbox
from core.services.purchases import register_sale
from core.services.sales_input import SaleInput

PHONE = "+79161234567"


def _collector(seen: list) -> object:
    async def handle(event) -> None:
        seen.append((event.id, event.type))

    return handle


async def test_each_consumer_sees_every_event_once_in_order(core, merchant_id):
    ctx = core.ctx
    first, second = [], []
    outbox = Outbox(ctx)
    outbox.register("notifications", _collector(first))
    await register_customer(ctx, merchant_id, RegisterCustomer(phone=PHONE))
    await register_sale(ctx, merchant_id, SaleInput("r1", 100_000, CustomerRef(phone=PHONE)))
    await outbox.drain()
    assert [t for _, t in first] == ["CustomerRegistered", "PointsAccrued", "PurchaseRegistered"]
    await outbox.drain()
    assert len(first) == 3  # nothing twice
    # A consumer added later (wallet, attribution) starts from the first event.
    outbox.register("wallet", _collector(second))
    await register_sale(ctx, merchant_id, SaleInput("r2", 50_000, CustomerRef(phone=PHONE)))
    await outbox.drain()
    assert [i for i, _ in second] == sorted(i for i, _ in second)
    assert len(second) == 5 and len(first) == 5
    # A new process (fresh Outbox object) resumes where each consumer stopped.
    again: list = []
    resumed = Outbox(ctx)
    resumed.register("notifications", _collector(again))
    await resumed.drain()
    assert again == []


async def test_a_rolled_back_sale_leaves_no_event(core, merchant_id):
    ctx = core.ctx
    seen: list = []
    outbox = Outbox(ctx)
    outbox.register("n", _collector(seen))
    await register_customer(ctx, merchant_id, RegisterCustomer(phone=PHONE))
    with pytest.raises(RedeemExceedsLimit):
        await register_sale(ctx, merchant_id,
                            SaleInput("r1", 100_000, CustomerRef(phone=PHONE), redeem_cp=100))
    await outbox.drain()
    assert [t for _, t in seen] == ["CustomerRegistered"]


async def test_a_failing_consumer_retries_without_holding_back_others(core, merchant_id):
    ctx = core.ctx
    good: list = []
    attempts: list = []

    async def flaky(event) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("platform down")

    outbox = Outbox(ctx)
    outbox.register("flaky", flaky)
    outbox.register("good", _collector(good))
    await register_customer(ctx, merchant_id, RegisterCustomer(phone=PHONE))
    await outbox.drain()
    assert len(good) == 1 and len(attempts) == 1
    await outbox.drain()
    assert attempts == [good[0][0], good[0][0]]  # retried the same event, once more


async def test_a_consumer_that_keeps_failing_never_holds_back_one_ahead_of_it(core, merchant_id):
    ctx = core.ctx
    ahead: list = []
    await register_customer(ctx, merchant_id, RegisterCustomer(phone=PHONE))
    first = Outbox(ctx)
    first.register("ahead", _collector(ahead))
    await first.drain()  # "ahead" stands past the first event; "broken" starts at 0 below

    async def broken(event) -> None:
        raise RuntimeError("platform down")

    outbox = Outbox(ctx)
    outbox.register("broken", broken)
    outbox.register("ahead", _collector(ahead))
    for i in range(3):
        await register_sale(ctx, merchant_id, SaleInput(f"r{i}", 10_000, CustomerRef(phone=PHONE)))
        await outbox.drain()
        # The round read from where "broken" stands (a short batch); "ahead" still gets the
        # sale's events in the same round.
        assert [t for _, t in ahead][-2:] == ["PointsAccrued", "PurchaseRegistered"]
    assert len(ahead) == 1 + 3 * 2


async def test_a_backlog_longer_than_a_batch_reaches_every_consumer_in_order(core, merchant_id):
    ctx = core.ctx
    ahead, behind = [], []
    await register_customer(ctx, merchant_id, RegisterCustomer(phone=PHONE))
    first = Outbox(ctx)
    first.register("ahead", _collector(ahead))
    await first.drain()  # "ahead" stands past the first event; "behind" is added at 0 below
    for i in range(120):  # two events each (points accrued, purchase): more than a batch in all
        await register_sale(ctx, merchant_id, SaleInput(f"r{i}", 10_000, CustomerRef(phone=PHONE)))
    outbox = Outbox(ctx)
    outbox.register("ahead", _collector(ahead))
    outbox.register("behind", _collector(behind))
    delivered = await outbox.drain()
    assert len(behind) == 1 + 120 * 2 > BATCH and len(ahead) == len(behind)
    assert delivered == 120 * 2 + len(behind)
    assert [i for i, _ in behind] == sorted(i for i, _ in behind) == [i for i, _ in ahead]
    assert await outbox.drain() == 0


async def test_a_round_another_process_overtook_records_nothing_and_stops(core, merchant_id):
    """Two processes drain the same consumer: the one that loses the race to move its
    position does not move it back, and its next round starts where the other left it."""
    ctx = core.ctx
    mine, theirs = [], []
    await register_customer(ctx, merchant_id, RegisterCustomer(phone=PHONE))
    await register_sale(ctx, merchant_id, SaleInput("r1", 100_000, CustomerRef(phone=PHONE)))
    other = Outbox(ctx)
    other.register("n", _collector(theirs))

    async def slow(event) -> None:
        if not mine:
            await other.drain()  # the other process hands everything on meanwhile
        mine.append(event.id)

    outbox = Outbox(ctx)
    outbox.register("n", slow)
    await outbox.drain()
    assert [i for i, _ in theirs] == mine  # delivered twice (at least once), but ...
    await register_sale(ctx, merchant_id, SaleInput("r2", 50_000, CustomerRef(phone=PHONE)))
    before = len(mine)
    await outbox.drain()
    assert len(mine) - before == 2  # ... only the new sale's events next time


async def test_under_a_steady_stream_a_round_gathers_the_events_of_several_kicks(core, merchant_id):
    """Each round costs a few queries whatever its size: while rounds follow each other, a kick
    waits longer for company. Every event is still handed on, once, in order."""
    ctx = core.ctx
    seen: list = []
    rounds: list[int] = []

    async def prepare(events) -> None:  # called once for each batch a round hands on
        rounds.append(len(events))

    outbox = Outbox(ctx, poll_seconds=60)
    outbox.register("n", _collector(seen), prepare=prepare)
    runner = asyncio.create_task(outbox.run())
    started = time.monotonic()
    try:
        for i in range(40):
            await register_customer(ctx, merchant_id, RegisterCustomer(phone=f"+7916{i:07d}"))
            await outbox.kick()
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        for _ in range(200):
            if len(seen) == 40:
                break
            await asyncio.sleep(0.05)
    finally:
        outbox.stop()
        await runner
    assert [t for _, t in seen] == ["CustomerRegistered"] * 40
    assert [i for i, _ in seen] == sorted(i for i, _ in seen)
    assert sum(rounds) == 40
    # A round every LINGER_SECONDS (0.05 s) would be 25 and more here.
    assert len(rounds) <= elapsed / BUSY_LINGER_SECONDS + 2, rounds
