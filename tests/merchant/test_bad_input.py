"""Bad input gets a clear 4xx and writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.db.models import Customer, LedgerEntry, OutboxEvent, Purchase
from core.services.apikeys import create_key, revoke_key
from core.services.merchants import NewMerchant, create_merchant
from tests.conftest import bearer
from tests.merchant.apicheck import call

PHONE = "+79161234567"


async def _counts(core) -> tuple[int, ...]:
    async with core.ctx.db.read() as session:
        return tuple([
            await session.scalar(select(func.count()).select_from(model))
            for model in (Customer, Purchase, LedgerEntry, OutboxEvent)
        ])


@pytest.fixture
async def registered(client, auth):
    status, body = await call(client, "POST", "/api/v1/customers", json={"phone": PHONE},
                              headers=auth)
    assert status == 201
    return body


@pytest.mark.parametrize("raw, status, code", [
    (b"{not json", 400, "malformed_json"),
    (b"[1, 2]", 400, "malformed_json"),
    (b"\xff\xfe", 400, "malformed_json"),
])
async def test_malformed_body(client, auth, core, registered, raw, status, code):
    before = await _counts(core)
    resp = await client.post("/api/v1/purchases", data=raw, headers=auth)
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code
    assert await _counts(core) == before


@pytest.mark.parametrize("body, field", [
    ({"receipt_id": "r", "customer": {"phone": PHONE}, "total": "abc"}, "total"),
    ({"receipt_id": "r", "customer": {"phone": PHONE}, "total": "-10.00"}, "total"),
    ({"receipt_id": "r", "customer": {"phone": PHONE}, "total": "0"}, "total"),
    ({"receipt_id": "r", "customer": {"phone": PHONE}, "total": "1e30"}, "total"),
    ({"receipt_id": "r", "customer": {"phone": PHONE}, "total": "NaN"}, "total"),
    ({"receipt_id": "r", "customer": {"phone": PHONE}, "total": "10.001"}, "total"),
    ({"receipt_id": "r", "customer": {"phone": PHONE}, "total": "100", "redeem": "-5"}, "redeem"),
    ({"receipt_id": "r", "customer": {"phone": PHONE}, "total": 100, "extra": 1}, "extra"),
    ({"receipt_id": 5, "customer": {"phone": PHONE}, "total": "100"}, "receipt_id"),
    ({"receipt_id": "r", "customer": {"phone": PHONE, "card": "1"}, "total": "100"}, "customer"),
    ({"receipt_id": "r", "total": "100", "redeem": "5"}, "(body)"),
    ({"receipt_id": "r", "customer": {"phone": PHONE}, "total": "100",
      "occurred_at": "2026-03-01T10:00:00"}, "occurred_at"),
    ({"receipt_id": "r", "customer": {"phone": PHONE}, "total": "100",
      "lines": [{"line_id": "1", "price": "100", "quantity": "0"}]}, "lines.0.quantity"),
    ({"receipt_id": "r", "customer": {"phone": PHONE}, "total": "100",
      "occurred_at": "9999-12-30T00:00:00Z"}, "occurred_at"),
    ({"receipt_id": "r", "total": "100", "occurred_at": "0001-01-01T00:00:00+05:00"},
     "occurred_at"),
])
async def test_wrong_types_and_absurd_amounts(client, auth, core, registered, body, field):
    before = await _counts(core)
    status, err = await call(client, "POST", "/api/v1/purchases", json=body, headers=auth)
    assert status == 422
    assert err["error"]["code"] == "validation_failed"
    assert any(e["field"].startswith(field) for e in err["error"]["errors"]), err
    assert await _counts(core) == before


async def test_unknown_customer_and_invalid_phone(client, auth, core, registered):
    before = await _counts(core)
    status, err = await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r", "customer": {"phone": "+79990000000"}, "total": "100"})
    assert (status, err["error"]["code"]) == (404, "customer_not_found")
    status, err = await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r", "customer": {"phone": "12"}, "total": "100"})
    assert (status, err["error"]["code"]) == (422, "invalid_phone")
    status, err = await call(client, "POST", "/api/v1/customers", headers=auth,
                             json={"phone": "not a phone"})
    assert (status, err["error"]["code"]) == (422, "invalid_phone")
    status, err = await call(client, "GET", "/api/v1/customers/cus_nope", headers=auth)
    assert (status, err["error"]["code"]) == (404, "customer_not_found")
    assert await _counts(core) == before


async def test_another_merchants_ids_are_not_found(client, auth, core, registered):
    other = await create_merchant(core.ctx, NewMerchant(name="Other", slug="other"))
    other_auth = await bearer(core, other.id, "admin")
    await call(client, "POST", "/api/v1/purchases", headers=auth,
               json={"receipt_id": "mine", "customer": {"phone": PHONE}, "total": "100"})
    before = await _counts(core)
    cid = registered["id"]
    for method, path, body in [
        ("GET", f"/api/v1/customers/{cid}", None),
        ("GET", f"/api/v1/customers/{cid}/ledger", None),
        ("POST", f"/api/v1/customers/{cid}/adjustments", {"points": "5", "reason": "x"}),
        ("POST", "/api/v1/purchases/mine/refunds", {"refund_id": "f"}),
        ("GET", f"/api/v1/customers/lookup?phone=%2B{PHONE[1:]}", None),
        ("GET", f"/api/v1/customers/lookup?card={registered['card_number']}", None),
    ]:
        status, err = await call(client, method, path, json=body, headers=other_auth)
        assert status == 404, (path, err)
    # The same phone registers separately at the other merchant: a separate customer.
    status, body = await call(client, "POST", "/api/v1/customers", json={"phone": PHONE},
                              headers=other_auth)
    assert status == 201 and body["id"] != cid
    assert await _counts(core) != before  # only that registration was written


async def test_keys_missing_wrong_revoked_or_out_of_scope(client, core, merchant_id, registered):
    sale = {"receipt_id": "r", "customer": {"phone": PHONE}, "total": "100"}
    before = await _counts(core)
    for headers in ({}, {"Authorization": "Bearer kk_wrong"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer "}):
        status, err = await call(client, "POST", "/api/v1/purchases", json=sale, headers=headers)
        assert (status, err["error"]["code"]) == (401, "unauthorized")
    key, token = await create_key(core.ctx, merchant_id, "till")
    till = {"Authorization": f"Bearer {token}"}
    status, err = await call(client, "POST", f"/api/v1/customers/{registered['id']}/adjustments",
                             json={"points": "100", "reason": "gift"}, headers=till)
    assert (status, err["error"]["code"]) == (403, "forbidden_scope")
    status, err = await call(client, "PUT", "/api/v1/program", json={"tiers": []},
                             headers=await bearer(core, merchant_id, "integration"))
    assert (status, err["error"]["code"]) == (403, "forbidden_scope")
    await revoke_key(core.ctx, merchant_id, key.id)
    status, err = await call(client, "POST", "/api/v1/purchases", json=sale, headers=till)
    assert (status, err["error"]["code"]) == (401, "unauthorized")
    assert await _counts(core) == before


async def test_redeem_over_limit_writes_nothing(client, auth, core, registered):
    before = await _counts(core)
    status, err = await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r", "customer": {"phone": PHONE}, "total": "100", "redeem": "1"})
    assert status == 422 and err["error"]["max_redeem"] == "0.00"
    assert await _counts(core) == before
    status, _ = await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r", "customer": {"phone": PHONE}, "total": "100"})
    assert status == 201  # the failed attempt did not use up the receipt id


async def test_unknown_route_and_method_are_json(client, auth):
    resp = await client.get("/api/v1/nothing-here", headers=auth)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.delete("/api/v1/program", headers=auth)
    assert resp.status in (404, 405)
    assert "error" in await resp.json()


async def test_absurd_times_and_cursors_are_422(client, auth, registered):
    cid = registered["id"]
    for path in (f"/api/v1/customers/{cid}?at=0001-01-01T00:00:00%2B05:00",
                 f"/api/v1/customers/{cid}?at=2026-01-01T00:00:00",
                 f"/api/v1/customers/{cid}/ledger?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgIngiXQ"):
        status, err = await call(client, "GET", path, headers=auth)
        assert status == 422, (path, err)
