"""Refunds: points follow the money back, the balance never goes negative, a debt is shown."""

from __future__ import annotations

from datetime import timedelta

from core.db.models import Customer
from core.services.ledger import CustomerLedger
from tests.conftest import START
from tests.merchant.apicheck import call

PHONE = "+79161234567"


async def _setup(client, auth, points: str | None = None) -> str:
    _, customer = await call(client, "POST", "/api/v1/customers", json={"phone": PHONE},
                             headers=auth)
    if points:
        await call(client, "POST", f"/api/v1/customers/{customer['id']}/adjustments",
                   json={"points": points, "reason": "start"}, headers=auth)
    return customer["id"]


async def _sale(client, auth, receipt: str, total: str, **extra):
    status, body = await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": receipt, "customer": {"phone": PHONE}, "total": total, **extra})
    assert status == 201, body
    return body


async def _refund(client, auth, receipt: str, body: dict):
    return await call(client, "POST", f"/api/v1/purchases/{receipt}/refunds", json=body,
                      headers=auth)


async def _balance(client, auth, cid: str) -> dict:
    _, customer = await call(client, "GET", f"/api/v1/customers/{cid}", headers=auth)
    return customer["balance"]


async def test_full_refund_restores_the_balance_before_the_sale(client, auth):
    cid = await _setup(client, auth, "100")
    await _sale(client, auth, "r1", "1000.00", redeem="100")  # pays 100 with points, +45
    assert (await _balance(client, auth, cid))["available"] == "45.00"
    status, body = await _refund(client, auth, "r1", {"refund_id": "f1"})
    assert status == 201
    assert body["points_returned"] == "100.00" and body["points_taken_back"] == "45.00"
    assert body["debt"] == "0.00"
    assert (await _balance(client, auth, cid))["available"] == "100.00"


async def test_partial_refunds_by_amount_add_up_to_the_full_one(client, auth):
    cid = await _setup(client, auth)
    await _sale(client, auth, "r1", "999.00")  # +49
    taken = 0.0
    for i, amount in enumerate(["333.00", "333.00", "333.00"]):
        status, body = await _refund(client, auth, "r1", {"refund_id": f"f{i}", "amount": amount})
        assert status == 201
        taken += float(body["points_taken_back"])
    assert taken == 49.0
    assert (await _balance(client, auth, cid))["available"] == "0.00"
    status, err = await _refund(client, auth, "r1", {"refund_id": "f9", "amount": "0.01"})
    assert (status, err["error"]["code"]) == (422, "refund_exceeds_purchase")


async def test_refund_by_line_takes_back_that_lines_accrual(client, auth):
    cid = await _setup(client, auth)
    await _sale(client, auth, "r1", "1000.00", lines=[
        {"line_id": "coffee", "price": "200.00", "quantity": "2"},
        {"line_id": "beans", "price": "600.00", "quantity": "1"}])  # 20 + 30 points
    status, body = await _refund(client, auth, "r1", {"refund_id": "f1",
                                                      "lines": [{"line_id": "beans"}]})
    assert status == 201 and body["amount"] == "600.00" and body["points_taken_back"] == "30.00"
    status, body = await _refund(client, auth, "r1", {"refund_id": "f2", "lines": [
        {"line_id": "coffee", "quantity": "1"}]})
    assert body["amount"] == "200.00" and body["points_taken_back"] == "10.00"
    assert (await _balance(client, auth, cid))["available"] == "10.00"
    status, err = await _refund(client, auth, "r1", {"refund_id": "f3",
                                                     "lines": [{"line_id": "beans"}]})
    assert (status, err["error"]["code"]) == (422, "refund_exceeds_purchase")
    status, err = await _refund(client, auth, "r1", {"refund_id": "f4",
                                                     "lines": [{"line_id": "tea"}]})
    assert status == 404


async def test_points_already_spent_become_a_debt_netted_against_future_accruals(client, auth):
    cid = await _setup(client, auth)
    await _sale(client, auth, "r1", "1000.00")  # +50
    await _sale(client, auth, "r2", "100.00", redeem="30")  # -30, +3 → 23
    status, body = await _refund(client, auth, "r1", {"refund_id": "f1"})
    assert body["points_taken_back"] == "50.00" and body["debt"] == "27.00"
    balance = await _balance(client, auth, cid)
    assert balance == {**balance, "available": "0.00", "debt": "27.00"}
    body = await _sale(client, auth, "r3", "1000.00")  # +50, of which 27 repay the debt
    assert body["balance"]["available"] == "23.00" and body["balance"]["debt"] == "0.00"
    _, page = await call(client, "GET", f"/api/v1/customers/{cid}/ledger", headers=auth)
    kinds = [item["kind"] for item in page["items"]]
    assert "debt_settlement" in kinds and "refund_clawback" in kinds


async def test_refund_is_idempotent_by_refund_id(client, auth):
    await _setup(client, auth)
    await _sale(client, auth, "r1", "1000.00")
    first = await _refund(client, auth, "r1", {"refund_id": "f1", "amount": "100.00"})
    again = await _refund(client, auth, "r1", {"refund_id": "f1", "amount": "100.00"})
    assert first[0] == 201 and again == (200, first[1])
    status, err = await _refund(client, auth, "r1", {"refund_id": "f1", "amount": "200.00"})
    assert (status, err["error"]["code"]) == (409, "refund_conflict")


async def test_refund_takes_back_referral_rewards_at_every_level(client, auth, core, merchant_id):
    """Rewards other customers got for a purchase (step 2 writes them) follow the refund."""
    cid = await _setup(client, auth)
    _, friend = await call(client, "POST", "/api/v1/customers", headers=auth,
                           json={"phone": "+79161112233", "referrer": {"phone": PHONE}})
    _, friend2 = await call(client, "POST", "/api/v1/customers", headers=auth,
                            json={"phone": "+79161112244", "referrer": {"phone": "+79161112233"}})
    sale = await _sale(client, auth, "r1", "1000.00")
    # Referral rewards for this purchase at levels 1 and 2, as the rules engine will write them.
    now = START
    async with core.ctx.uow() as uow:
        for customer_id, level, points in ((friend["id"], 1, 4000), (friend2["id"], 2, 1000)):
            customer = await uow.session.get(Customer, customer_id)
            ledger = await CustomerLedger(uow.session, customer, now).load()
            ledger.credit("referral", points, now, lifetime_days=365, mechanic="referral",
                          purchase_id=sale["purchase_id"], referral_level=level)
            ledger.refresh_figures(now)
        await uow.commit()
    await _refund(client, auth, "r1", {"refund_id": "f1", "amount": "500.00"})
    assert (await _balance(client, auth, friend["id"]))["available"] == "20.00"
    assert (await _balance(client, auth, friend2["id"]))["available"] == "5.00"
    assert (await _balance(client, auth, cid))["available"] == "25.00"
    await _refund(client, auth, "r1", {"refund_id": "f2"})
    assert (await _balance(client, auth, friend["id"]))["available"] == "0.00"
    assert (await _balance(client, auth, friend2["id"]))["available"] == "0.00"
    _, page = await call(client, "GET", f"/api/v1/customers/{friend2['id']}/ledger",
                         headers=auth)
    assert {(i["kind"], i["referral_level"]) for i in page["items"]} >= {
        ("refund_clawback", 2), ("referral", 2)}


async def test_refund_lowers_lifetime_spend_and_the_tier(client, auth):
    await _setup(client, auth)
    program = {"tiers": [
        {"id": "base", "name": "Base", "accrual_percent": "5"},
        {"id": "gold", "name": "Gold", "accrual_percent": "10",
         "threshold": "5000"}]}
    status, _ = await call(client, "PUT", "/api/v1/program", json=program, headers=auth)
    assert status == 200
    body = await _sale(client, auth, "r1", "6000.00")
    assert body["tier"]["id"] == "gold" and body["accrued"] == "300.00"  # tier before the sale
    body = await _sale(client, auth, "r2", "1000.00")
    assert body["accrued"] == "100.00"
    await _refund(client, auth, "r1", {"refund_id": "f1"})
    _, customer = await call(client, "GET", f"/api/v1/customers/lookup?phone=%2B{PHONE[1:]}",
                             headers=auth)
    assert customer["tier"]["id"] == "base"
    assert customer["tier"]["next"] == {"name": "Gold", "remaining_spend": "4000.00",
                                        "remaining_purchases": None}


async def test_refund_of_an_old_receipt_uses_the_refund_time(client, auth, clock):
    cid = await _setup(client, auth)
    await _sale(client, auth, "r1", "1000.00")
    clock.advance_to(START + timedelta(days=30))
    status, body = await _refund(client, auth, "r1", {"refund_id": "f1"})
    assert status == 201 and body["balance"]["available"] == "0.00"
    assert (await _balance(client, auth, cid))["available"] == "0.00"


async def test_refund_after_the_points_expired(client, auth, clock):
    """Points spent on the sale come back usable; points that expired unspent are no debt."""
    cid = await _setup(client, auth, "100")
    await call(client, "PUT", "/api/v1/program", headers=auth, json={
        "lifetime_days": 30, "tiers": [{"id": "base", "name": "B", "accrual_percent": "5"}]})
    await _sale(client, auth, "r1", "1000.00", redeem="100")  # the 100 had 365 days; +45 for 30
    clock.advance_to(START + timedelta(days=400))
    assert (await _balance(client, auth, cid))["available"] == "0.00"
    status, body = await _refund(client, auth, "r1", {"refund_id": "f1"})
    assert status == 201
    assert body["points_returned"] == "100.00" and body["points_taken_back"] == "0.00"
    assert body["debt"] == "0.00"
    balance = await _balance(client, auth, cid)
    assert balance["available"] == "100.00" and balance["debt"] == "0.00"


async def test_a_refund_cannot_predate_its_sale(client, auth):
    await _setup(client, auth)
    await _sale(client, auth, "r1", "1000.00")
    status, err = await _refund(client, auth, "r1", {
        "refund_id": "f1", "occurred_at": (START - timedelta(hours=1)).isoformat()})
    assert status == 422 and err["error"]["field"] == "occurred_at"


async def test_refund_by_quantity_rounds_like_the_sale(client, auth):
    await _setup(client, auth)
    await _sale(client, auth, "r1", "1.55", lines=[
        {"line_id": "w", "price": "1.03", "quantity": "1.5"}])
    status, body = await _refund(client, auth, "r1", {"refund_id": "f1", "lines": [
        {"line_id": "w", "quantity": "1.5"}]})
    assert status == 201 and body["amount"] == "1.55"
