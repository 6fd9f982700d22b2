"""Time: activation and expiry are decided by the lots at the time asked; jobs only record."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from core.db.models import Job, LedgerEntry, OutboxEvent
from core.services.jobs import run_due
from tests.conftest import START
from tests.merchant.apicheck import call

PHONE = "+79161234567"
DELAYED = {
    "activation_delay_days": 14,
    "lifetime_days": 60,
    "tiers": [{"id": "base", "name": "Base", "accrual_percent": "10"}],
}


async def _customer(client, auth) -> str:
    _, body = await call(client, "POST", "/api/v1/customers", json={"phone": PHONE}, headers=auth)
    return body["id"]


async def _at(client, auth, cid: str, when) -> dict:
    stamp = when.isoformat().replace("+00:00", "Z")
    status, body = await call(client, "GET", f"/api/v1/customers/{cid}?at={stamp}", headers=auth)
    assert status == 200, body
    return body["balance"]


async def test_points_are_pending_until_activation_and_gone_after_expiry(client, auth, clock):
    await call(client, "PUT", "/api/v1/program", json=DELAYED, headers=auth)
    cid = await _customer(client, auth)
    status, sale = await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r1", "customer": {"phone": PHONE}, "total": "1000.00",
        "occurred_at": START.isoformat()})
    assert sale["balance"]["pending"] == "100.00" and sale["balance"]["available"] == "0.00"
    day13 = await _at(client, auth, cid, START + timedelta(days=13))
    assert (day13["available"], day13["pending"]) == ("0.00", "100.00")
    assert day13["pending_lots"] == [{"amount": "100.00", "available_at": "2026-03-15T09:00:00Z"}]
    day14 = await _at(client, auth, cid, START + timedelta(days=14))
    assert (day14["available"], day14["pending"]) == ("100.00", "0.00")
    # 60 days from the accrual, not from the activation (the seeds: «с момента начисления»)
    assert day14["expiring"] == [{"amount": "100.00", "expires_at": "2026-04-30T09:00:00Z"}]
    # No job has run: an expired lot is already worth nothing.
    after = await _at(client, auth, cid, START + timedelta(days=75))
    assert after["available"] == "0.00"
    # Pending points cannot pay; a sale dated in the future is refused.
    status, err = await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r2", "customer": {"phone": PHONE}, "total": "1000.00", "redeem": "50",
        "occurred_at": (START + timedelta(days=1)).isoformat()})
    assert status == 422 and err["error"]["field"] == "occurred_at"
    clock.advance_to(START + timedelta(days=1))
    status, err = await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r2", "customer": {"phone": PHONE}, "total": "1000.00", "redeem": "50",
        "occurred_at": (START + timedelta(days=1)).isoformat()})
    assert status == 422 and err["error"]["max_redeem"] == "0.00"


async def test_jobs_record_expiry_once_and_rerunning_changes_nothing(client, auth, core):
    cid = await _customer(client, auth)
    await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r1", "customer": {"phone": PHONE}, "total": "1000.00"})
    until = START + timedelta(days=400)
    ran = await run_due(core.ctx, until)
    assert ran > 365  # a daily sweep and a monthly tier review, replayed
    async with core.ctx.db.read() as session:
        expiries = list(await session.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "expiry")))
        events = await session.scalar(select(func.count()).where(
            OutboxEvent.type == "PointsExpired"))
        pending = await session.scalar(select(func.count()).where(Job.status == "pending",
                                                                   Job.run_at <= until))
    assert [(e.amount_cp, e.occurred_at) for e in expiries] == [(-5000, START + timedelta(days=365))]
    assert events == 1 and pending == 0
    assert await run_due(core.ctx, until) == 0
    async with core.ctx.db.read() as session:
        assert await session.scalar(select(func.count()).where(LedgerEntry.kind == "expiry")) == 1
    balance = await _at(client, auth, cid, until)
    assert balance["available"] == "0.00"
    # As of a day before expiry the balance is still whole: history is answerable.
    before = await _at(client, auth, cid, START + timedelta(days=364))
    assert before["available"] == "50.00"


async def test_activation_job_announces_points(client, auth, core):
    await call(client, "PUT", "/api/v1/program", json=DELAYED, headers=auth)
    await _customer(client, auth)
    await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r1", "customer": {"phone": PHONE}, "total": "500.00"})
    await run_due(core.ctx, START + timedelta(days=13))
    async with core.ctx.db.read() as session:
        assert await session.scalar(select(func.count()).where(
            OutboxEvent.type == "PointsActivated")) == 0
    await run_due(core.ctx, START + timedelta(days=14))
    async with core.ctx.db.read() as session:
        event = await session.scalar(select(OutboxEvent).where(
            OutboxEvent.type == "PointsActivated"))
    assert event is not None and event.payload["points"] == "50.00"


async def _earn_then_redeem(client, auth, clock) -> str:
    """A customer earns 50 points on day 0 (r1), spends 30 and earns 3 on day 10 (r2)."""
    cid = await _customer(client, auth)
    await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r1", "customer": {"phone": PHONE}, "total": "1000.00"})
    clock.advance_to(START + timedelta(days=10))
    await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r2", "customer": {"phone": PHONE}, "total": "100.00", "redeem": "30"})
    return cid


async def test_history_is_answered_as_of_a_past_time(client, auth, clock):
    cid = await _earn_then_redeem(client, auth, clock)
    assert (await _at(client, auth, cid, START + timedelta(days=5)))["available"] == "50.00"
    assert (await _at(client, auth, cid, START + timedelta(days=11)))["available"] == "23.00"


async def test_a_refund_changes_the_balance_from_its_time_on_not_before(client, auth, clock):
    """The refund gives the 30 redeemed points back to their lot and takes the 3 accrued
    back: as of a time before it, the balance is what it was then."""
    cid = await _earn_then_redeem(client, auth, clock)
    clock.advance_to(START + timedelta(days=12))
    status, body = await call(client, "POST", "/api/v1/purchases/r2/refunds", headers=auth,
                              json={"refund_id": "f1"})
    assert status == 201, body
    assert (await _at(client, auth, cid, START + timedelta(days=5)))["available"] == "50.00"
    assert (await _at(client, auth, cid, START + timedelta(days=11)))["available"] == "23.00"
    assert (await _at(client, auth, cid, START + timedelta(days=13)))["available"] == "50.00"
