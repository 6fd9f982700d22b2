"""Program documents: validated with errors naming the field, versioned, remembered by sales."""

from __future__ import annotations

from sqlalchemy import select

from core.db.models import Purchase
from tests.merchant.apicheck import call


async def test_default_program_is_installed_with_a_new_merchant(client, auth):
    status, body = await call(client, "GET", "/api/v1/program", headers=auth)
    assert status == 200 and body["version"] == 1
    doc = body["document"]
    assert doc["lifetime_days"] == 365 and doc["activation_delay_days"] == 0
    assert doc["precision"] == 0 and doc["rounding"] == "down"
    [tier] = doc["tiers"]
    assert {k: tier[k] for k in ("id", "accrual_percent", "redeem_cap_percent", "threshold")} == {
        "id": "base", "accrual_percent": "5", "redeem_cap_percent": "30", "threshold": "0"}


async def test_invalid_documents_name_the_field(client, auth):
    cases = [
        ({"tiers": []}, "tiers"),
        ({"tiers": [{"id": "a", "name": "A", "accrual_percent": "150"}]}, "tiers.0.accrual_percent"),
        ({"tiers": [{"id": "a", "name": "A", "threshold": "10"}]}, "tiers"),
        ({"tiers": [{"id": "a", "name": "A"}], "precision": 5}, "precision"),
        ({"tiers": [{"id": "a", "name": "A"}], "bonus": 1}, "bonus"),
    ]
    for document, field in cases:
        status, err = await call(client, "PUT", "/api/v1/program", json=document, headers=auth)
        assert status == 422, document
        assert err["error"]["code"] == "invalid_program"
        assert any(e["field"].startswith(field) or field in e["message"]
                   for e in err["error"]["errors"]), err


async def test_sales_remember_the_program_version(client, auth, core):
    await call(client, "POST", "/api/v1/customers", json={"phone": "+79161234567"}, headers=auth)
    sale = {"customer": {"phone": "+79161234567"}, "total": "1000.00"}
    await call(client, "POST", "/api/v1/purchases", json={"receipt_id": "a", **sale}, headers=auth)
    status, body = await call(client, "PUT", "/api/v1/program", headers=auth, json={
        "precision": 2, "tiers": [{"id": "base", "name": "B", "accrual_percent": "3.333"}]})
    assert status == 200 and body["version"] == 2
    _, answer = await call(client, "POST", "/api/v1/purchases", json={"receipt_id": "b", **sale},
                           headers=auth)
    assert answer["accrued"] == "33.33"
    async with core.ctx.db.read() as session:
        versions = dict((await session.execute(
            select(Purchase.receipt_id, Purchase.program_version))).all())
    assert versions == {"a": 1, "b": 2}


async def test_program_schema_is_published(client):
    resp = await client.get("/api/v1/program/schema.json")
    schema = await resp.json()
    assert resp.status == 200 and "tiers" in schema["properties"]
