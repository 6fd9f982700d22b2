"""Customers at the till: registration, look-up by phone, card and QR, the ledger."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core.db.models import Cashier, Customer, Store
from core.services.customers import issue_qr_token, reissue_card
from tests.merchant.apicheck import call

PHONE = "+79161234567"


async def test_registration_is_idempotent_by_phone_in_any_notation(client, auth):
    status, first = await call(client, "POST", "/api/v1/customers", headers=auth,
                               json={"phone": "8 (916) 123-45-67", "name": "Анна",
                                     "birth_date": "1990-03-08", "source": "till"})
    assert status == 201 and first["phone"] == PHONE and first["birth_date"] == "1990-03-08"
    assert len(first["card_number"]) == 13
    status, again = await call(client, "POST", "/api/v1/customers", headers=auth,
                               json={"phone": "79161234567"})
    assert status == 200 and again["id"] == first["id"] and again["name"] == "Анна"


async def test_referrer_by_code_phone_or_card(client, auth, core):
    _, friend = await call(client, "POST", "/api/v1/customers", headers=auth,
                           json={"phone": PHONE})
    for i, ref in enumerate([{"code": friend["referral_code"].lower()}, {"phone": PHONE},
                             {"card": friend["card_number"]}]):
        status, body = await call(client, "POST", "/api/v1/customers", headers=auth,
                                  json={"phone": f"+7916000000{i}", "referrer": ref})
        assert status == 201
        async with core.ctx.db.read() as session:
            row = await session.get(Customer, body["id"])
        assert row.referrer_id == friend["id"]
    status, err = await call(client, "POST", "/api/v1/customers", headers=auth,
                             json={"phone": "+79160000009", "referrer": {"code": "NOPE1234"}})
    assert (status, err["error"]["code"]) == (404, "customer_not_found")


async def test_pre_printed_card_is_attached_and_cannot_be_taken_twice(client, auth):
    status, body = await call(client, "POST", "/api/v1/customers", headers=auth,
                              json={"phone": PHONE, "card": "7700123"})
    assert status == 201 and body["card_number"] == "7700123"
    status, err = await call(client, "POST", "/api/v1/customers", headers=auth,
                             json={"phone": "+79160000001", "card": "7700123"})
    assert (status, err["error"]["code"]) == (409, "card_taken")
    status, found = await call(client, "GET", "/api/v1/customers/lookup?card=7700123",
                               headers=auth)
    assert status == 200 and found["id"] == body["id"]


async def test_a_reissued_card_blocks_the_old_one(client, auth, core, merchant_id):
    _, body = await call(client, "POST", "/api/v1/customers", headers=auth, json={"phone": PHONE})
    old = body["card_number"]
    new = await reissue_card(core.ctx, merchant_id, body["id"])
    status, err = await call(client, "GET", f"/api/v1/customers/lookup?card={old}", headers=auth)
    assert (status, err["error"]["code"]) == (422, "card_blocked")
    status, err = await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r1", "customer": {"card": old}, "total": "100"})
    assert status == 422
    status, found = await call(client, "GET", f"/api/v1/customers/lookup?card={new}", headers=auth)
    assert status == 200 and found["card_number"] == new


async def test_rotating_qr_finds_the_customer_until_it_expires(client, auth, core, merchant_id,
                                                               clock):
    _, body = await call(client, "POST", "/api/v1/customers", headers=auth, json={"phone": PHONE})
    token = await issue_qr_token(core.ctx, merchant_id, body["id"])
    status, found = await call(client, "GET", f"/api/v1/customers/lookup?qr={token}", headers=auth)
    assert status == 200 and found["id"] == body["id"]
    status, found = await call(client, "GET", f"/api/v1/customers/lookup?qr={body['card_number']}",
                               headers=auth)
    assert status == 200  # the static QR carries the card number
    clock.advance_to(clock.now() + timedelta(minutes=6))
    status, _ = await call(client, "GET", f"/api/v1/customers/lookup?qr={token}", headers=auth)
    assert status == 404


async def test_ledger_pages_newest_first(client, auth, clock):
    _, body = await call(client, "POST", "/api/v1/customers", headers=auth, json={"phone": PHONE})
    for i in range(5):
        clock.advance_to(clock.now() + timedelta(hours=1))
        await call(client, "POST", f"/api/v1/customers/{body['id']}/adjustments", headers=auth,
                   json={"points": str(10 + i), "reason": f"gift {i}"})
    seen, cursor = [], None
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        status, page = await call(client, "GET", f"/api/v1/customers/{body['id']}/ledger{query}",
                                  headers=auth)
        assert status == 200
        seen += [item["points"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["14.00", "13.00", "12.00", "11.00", "10.00"]
    status, err = await call(client, "GET", f"/api/v1/customers/{body['id']}/ledger?cursor=zzz",
                             headers=auth)
    assert status == 422


async def test_negative_adjustment_cannot_overdraw(client, auth):
    _, body = await call(client, "POST", "/api/v1/customers", headers=auth, json={"phone": PHONE})
    url = f"/api/v1/customers/{body['id']}/adjustments"
    await call(client, "POST", url, headers=auth, json={"points": "10", "reason": "gift"})
    status, err = await call(client, "POST", url, headers=auth,
                             json={"points": "-11", "reason": "fix"})
    assert (status, err["error"]["code"]) == (422, "insufficient_points")
    status, entry = await call(client, "POST", url, headers=auth,
                               json={"points": "-10", "reason": "fix"})
    assert status == 201 and entry["points"] == "-10.00" and entry["reason"] == "fix"


async def test_store_and_cashier_codes_are_created_on_first_use(client, auth, core):
    for receipt in ("a", "b"):
        await call(client, "POST", "/api/v1/purchases", headers=auth, json={
            "receipt_id": receipt, "total": "100", "store_id": "msk-01", "cashier_id": "ivanova"})
    async with core.ctx.db.read() as session:
        assert list(await session.scalars(select(Store.code))) == ["msk-01"]
        assert list(await session.scalars(select(Cashier.code))) == ["ivanova"]
