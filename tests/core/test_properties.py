"""Properties of the ledger, whatever the sequence of sales, redemptions and refunds."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core.db.models import Customer, LedgerEntry
from core.errors import KartochkaError
from core.services.customers import CustomerRef, RegisterCustomer, register_customer
from core.services.figures import check_figures
from core.services.ledger import balance_of
from core.services.purchases import register_sale
from core.services.refunds import register_refund
from core.services.sales_input import RefundInput, SaleInput

PHONE = "+79161234567"
step = st.one_of(
    st.tuples(st.just("sale"), st.integers(100, 500_000), st.integers(0, 20_000)),
    st.tuples(st.just("refund"), st.integers(0, 30), st.integers(1, 100)),
)


async def play(ctx, merchant_id: str, phone: str, receipts: list[tuple[str, int]], i: int,
               step: tuple[str, int, int]) -> None:
    """A sale (total, redeem) or a refund (which receipt, what percent of it); a refused
    one (over the limit, over the receipt) writes nothing and is skipped."""
    kind, a, b = step
    try:
        if kind == "sale":
            receipt = f"{phone}-{i}"
            await register_sale(ctx, merchant_id, SaleInput(
                receipt, a, CustomerRef(phone=phone), redeem_cp=b // 100 * 100))
            receipts.append((receipt, a))
        elif kind == "refund" and receipts:
            receipt, total = receipts[a % len(receipts)]
            await register_refund(ctx, merchant_id, receipt, RefundInput(
                f"{receipt}-f{i}", amount_minor=max(1, total * b // 100)))
    except KartochkaError:
        pass


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=12))
async def test_balance_never_negative_and_the_ledger_adds_up(core, merchant_id, steps):
    ctx = core.ctx
    phone = f"+7916{abs(hash(tuple(steps))) % 10**7:07d}"
    await register_customer(ctx, merchant_id, RegisterCustomer(phone=phone))
    receipts: list[tuple[str, int]] = []
    for i, step in enumerate(steps):
        await play(ctx, merchant_id, phone, receipts, i, step)
    async with ctx.db.read() as session:
        customer = await session.scalar(select(Customer).where(Customer.phone == phone))
        balance, debt = await balance_of(session, customer.id, ctx.now())
        total = await session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_cp), 0))
                                     .where(LedgerEntry.customer_id == customer.id))
        lots = await session.scalar(select(func.coalesce(func.sum(LedgerEntry.remaining_cp), 0))
                                    .where(LedgerEntry.customer_id == customer.id))
        negative = await session.scalar(select(func.count()).where(
            LedgerEntry.customer_id == customer.id, LedgerEntry.remaining_cp < 0))
    assert balance.available_cp >= 0 and debt >= 0 and negative == 0
    assert total == lots == balance.available_cp + balance.pending_cp
    assert customer.available_cp == balance.available_cp and customer.debt_cp == debt
    assert not [m for m in await check_figures(ctx, merchant_id) if m.customer_id == customer.id]


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, 50_000), total=st.integers(100, 300_000),
       redeem=st.integers(0, 100_000))
async def test_a_full_refund_restores_the_balance_before_the_sale(core, merchant_id, start,
                                                                  total, redeem):
    from core.services.customers import adjust_points

    ctx = core.ctx
    phone = f"+7917{(start * 7 + total * 3 + redeem) % 10**7:07d}"
    created, body = await register_customer(ctx, merchant_id, RegisterCustomer(phone=phone))
    if not created:
        return
    if start >= 100:
        await adjust_points(ctx, merchant_id, body["id"], start // 100 * 100, "start")
    async with ctx.db.read() as session:
        before, _ = await balance_of(session, body["id"], ctx.now())
    receipt = f"r-{phone}"
    try:
        await register_sale(ctx, merchant_id, SaleInput(receipt, total, CustomerRef(phone=phone),
                                                        redeem_cp=redeem // 100 * 100))
    except KartochkaError:
        return
    await register_refund(ctx, merchant_id, receipt, RefundInput(f"f-{phone}"))
    async with ctx.db.read() as session:
        after, debt = await balance_of(session, body["id"], ctx.now())
    assert (after.available_cp, debt) == (before.available_cp, 0)


timed_step = st.one_of(
    st.tuples(st.just("sale"), st.integers(100, 300_000), st.integers(0, 10_000)),
    st.tuples(st.just("refund"), st.integers(0, 30), st.integers(1, 100)),
    st.tuples(st.just("wait"), st.integers(1, 40), st.just(0)),
)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(timed_step, min_size=2, max_size=10))
async def test_with_time_passing_the_figures_match_the_ledger_after_the_jobs(
        core, merchant_id, clock, steps):
    """Activation after 3 days, 20-day lifetime: whatever happens, once the jobs have run the
    cached figures equal the ledger's, the balance is never negative, and running the jobs
    again changes nothing."""
    from datetime import timedelta

    from core.services.jobs import run_due
    from core.services.programs import put_program

    ctx = core.ctx
    await put_program(ctx, merchant_id, {"activation_delay_days": 3, "lifetime_days": 20,
                                         "tiers": [{"id": "b", "name": "B"}]})
    phone = f"+7918{abs(hash(tuple(steps))) % 10**7:07d}"
    created, _ = await register_customer(ctx, merchant_id, RegisterCustomer(phone=phone))
    receipts: list[tuple[str, int]] = []
    for i, (kind, a, b) in enumerate(steps):
        if kind == "wait":
            clock.advance_to(clock.now() + timedelta(days=a))
            await run_due(ctx, clock.now())
        else:
            await play(ctx, merchant_id, phone, receipts, i, (kind, a, b))
    await run_due(ctx, clock.now())
    mine = [m for m in await check_figures(ctx, merchant_id)]
    async with ctx.db.read() as session:
        customer = await session.scalar(select(Customer).where(Customer.phone == phone))
        balance, debt = await balance_of(session, customer.id, ctx.now())
        ledger_rows = await session.scalar(select(func.count()).where(
            LedgerEntry.customer_id == customer.id))
    assert balance.available_cp >= 0 and debt >= 0
    assert not [m for m in mine if m.customer_id == customer.id], mine
    assert await run_due(ctx, clock.now()) == 0
    async with ctx.db.read() as session:
        assert await session.scalar(select(func.count()).where(
            LedgerEntry.customer_id == customer.id)) == ledger_rows
