"""Concurrent sales: a balance is never overdrawn, a receipt is registered once."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from core.db.models import Purchase, PurchaseLine
from tests.merchant.apicheck import call

PHONE = "+79161234567"


async def _customer_with(client, auth, points: str) -> str:
    _, customer = await call(client, "POST", "/api/v1/customers", json={"phone": PHONE},
                             headers=auth)
    status, _ = await call(client, "POST", f"/api/v1/customers/{customer['id']}/adjustments",
                           json={"points": points, "reason": "test balance"}, headers=auth)
    assert status == 201
    return customer["id"]


async def test_fifty_simultaneous_redemptions_never_overdraw(client, auth):
    customer_id = await _customer_with(client, auth, "1000")

    async def spend(i: int) -> int:
        status, _ = await call(client, "POST", "/api/v1/purchases", headers=auth, json={
            "receipt_id": f"r-{i}", "customer": {"phone": PHONE}, "total": "300.00",
            "redeem": "90"})
        return status

    statuses = Counter(await asyncio.gather(*(spend(i) for i in range(50))))
    # 1000 points pay for eleven 90-point redemptions (990); the twelfth would overdraw.
    # Every sale also accrues 5% of the 210.00 paid in money (10 points), spendable at once,
    # so the exact count depends on order; what never happens is a negative balance.
    assert statuses[201] + statuses[422] == 50
    _, customer = await call(client, "GET", f"/api/v1/customers/{customer_id}", headers=auth)
    available = float(customer["balance"]["available"])
    assert available >= 0
    assert available == 1000 - 90 * statuses[201] + 10 * statuses[201]
    assert statuses[201] >= 11


async def test_two_identical_sales_in_flight_make_one_purchase(client, auth, core):
    await _customer_with(client, auth, "100")
    body = {"receipt_id": "same", "customer": {"phone": PHONE}, "total": "500.00", "redeem": "50"}
    results = await asyncio.gather(*(call(client, "POST", "/api/v1/purchases", json=body,
                                          headers=auth) for _ in range(2)))
    assert sorted(status for status, _ in results) == [200, 201]
    assert results[0][1] == results[1][1]
    async with core.ctx.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(Purchase))
    assert count == 1
    _, customer = await call(client, "GET", "/api/v1/customers/" + results[0][1]["customer_id"],
                             headers=auth)
    assert customer["balance"]["available"] == "72.00"  # 100 - 50 + 22 (5% of 450.00), once


async def test_identical_anonymous_sales_in_flight_make_one_purchase(client, auth, core):
    body = {"receipt_id": "anon", "total": "500.00"}
    results = await asyncio.gather(*(call(client, "POST", "/api/v1/purchases", json=body,
                                          headers=auth) for _ in range(5)))
    assert sorted(status for status, _ in results) == [200, 200, 200, 200, 201]
    async with core.ctx.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Purchase)) == 1


async def test_concurrent_full_refunds_of_one_receipt_refund_it_once(client, auth, core):
    await call(client, "POST", "/api/v1/purchases", headers=auth,
               json={"receipt_id": "anon", "total": "1000.00"})
    results = await asyncio.gather(*(call(
        client, "POST", "/api/v1/purchases/anon/refunds", headers=auth,
        json={"refund_id": f"f{i}"}) for i in range(5)))
    assert sorted(status for status, _ in results) == [201, 422, 422, 422, 422]
    async with core.ctx.db.read() as session:
        purchase = await session.scalar(select(Purchase))
    assert purchase.refunded_minor == purchase.total_minor == 100000


async def test_parallel_partial_refunds_add_up(client, auth, core):
    await call(client, "POST", "/api/v1/customers", json={"phone": PHONE}, headers=auth)
    await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r", "customer": {"phone": PHONE}, "total": "1000.00"})
    results = await asyncio.gather(*(call(
        client, "POST", "/api/v1/purchases/r/refunds", headers=auth,
        json={"refund_id": f"f{i}", "amount": "300.00"}) for i in range(2)))
    assert [status for status, _ in results] == [201, 201]
    assert sorted(body["points_taken_back"] for _, body in results) == ["15.00", "15.00"]
    async with core.ctx.db.read() as session:
        purchase = await session.scalar(select(Purchase))
        lines = await session.scalar(select(func.sum(PurchaseLine.refunded_minor)))
    assert purchase.refunded_minor == lines == 60000
