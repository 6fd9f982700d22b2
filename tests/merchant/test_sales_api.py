"""Sales through the REST API, as a cash register sees them."""

from __future__ import annotations

from typing import Any

from tests.merchant.apicheck import call

PHONE = "+79161234567"


async def register(client: Any, auth: dict[str, str], phone: str = PHONE) -> dict[str, Any]:
    status, body = await call(client, "POST", "/api/v1/customers", json={"phone": phone},
                              headers=auth)
    assert status in (200, 201)
    return body


async def sale(client: Any, auth: dict[str, str], receipt: str, total: str, **extra: Any
               ) -> tuple[int, dict[str, Any]]:
    body = {"receipt_id": receipt, "customer": {"phone": PHONE}, "total": total, **extra}
    return await call(client, "POST", "/api/v1/purchases", json=body, headers=auth)


async def test_default_program_accrues_five_percent_whole_points(client, auth):
    await register(client, auth)
    status, body = await sale(client, auth, "r-1", "1259.90")
    assert status == 201
    assert body["accrued"] == "62.00"  # 5% of 1259.90 = 62.995, whole points rounded down
    assert body["balance"]["available"] == "62.00"
    assert body["tier"]["id"] == "base"


async def test_redeem_is_capped_at_thirty_percent_and_by_the_balance(client, auth):
    await register(client, auth)
    await sale(client, auth, "r-1", "2000.00")  # +100
    status, preview = await call(client, "POST", "/api/v1/purchases/preview", headers=auth,
                                 json={"receipt_id": "p", "customer": {"phone": PHONE},
                                       "total": "200.00"})
    assert status == 200
    assert preview["max_redeem"] == "60.00"
    status, err = await sale(client, auth, "r-2", "200.00", redeem="61")
    assert status == 422
    assert err["error"]["code"] == "redeem_exceeds_limit"
    assert err["error"]["max_redeem"] == "60.00"
    status, body = await sale(client, auth, "r-3", "200.00", redeem="60")
    assert status == 201
    assert body["discount"] == "60.00"
    assert body["accrued"] == "7.00"  # 5% of the 140.00 paid in money
    assert body["balance"]["available"] == "47.00"


async def test_repeated_sale_gets_the_first_answer_and_another_body_conflicts(client, auth):
    await register(client, auth)
    first = await sale(client, auth, "r-1", "500.00")
    again = await sale(client, auth, "r-1", "500.00")
    assert first[0] == 201 and again[0] == 200
    assert again[1] == first[1]
    status, err = await sale(client, auth, "r-1", "501.00")
    assert status == 409
    assert err["error"]["code"] == "receipt_conflict"
    _, customer = await call(client, "GET", "/api/v1/customers/lookup?phone=" + PHONE[1:],
                             headers=auth)
    assert customer["balance"]["available"] == "25.00"


async def test_lines_get_their_share_of_discount_and_accrual(client, auth):
    await register(client, auth)
    await call(client, "POST", f"/api/v1/customers/{(await register(client, auth))['id']}"
               "/adjustments", json={"points": "100", "reason": "welcome"}, headers=auth)
    lines = [
        {"line_id": "1", "sku": "LATTE", "price": "150.00", "quantity": "2"},
        {"line_id": "2", "sku": "CAKE", "price": "100.00", "quantity": "1"},
    ]
    status, body = await sale(client, auth, "r-1", "400.00", lines=lines, redeem="100")
    assert status == 201
    by_line = {x["line_id"]: x for x in body["lines"]}
    assert by_line["1"]["discount"] == "75.00" and by_line["2"]["discount"] == "25.00"
    assert body["accrued"] == "15.00"
    assert sum(float(x["accrued"]) for x in body["lines"]) == 15.0


async def test_total_must_match_the_lines(client, auth):
    await register(client, auth)
    status, err = await sale(client, auth, "r-1", "999.00",
                             lines=[{"line_id": "1", "price": "100.00", "quantity": "1"}])
    assert status == 422
    assert err["error"]["code"] == "total_mismatch"


async def test_anonymous_sale_is_recorded_without_points(client, auth):
    status, body = await call(client, "POST", "/api/v1/purchases", headers=auth,
                              json={"receipt_id": "anon-1", "total": "300.00",
                                    "store_id": "shop-1", "cashier_id": "ivan"})
    assert status == 201
    assert body["customer_id"] is None and body["accrued"] == "0.00"
    assert body["balance"] is None


async def test_preview_writes_nothing(client, auth):
    await register(client, auth)
    await call(client, "POST", "/api/v1/purchases/preview", headers=auth,
               json={"receipt_id": "x", "customer": {"phone": PHONE}, "total": "1000.00"})
    _, customer = await call(client, "GET", "/api/v1/customers/lookup?phone=%2B79161234567",
                             headers=auth)
    assert customer["balance"]["available"] == "0.00"
    status, body = await sale(client, auth, "x", "1000.00")
    assert status == 201  # the receipt id was not taken by the preview
