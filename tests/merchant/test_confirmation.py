"""Redemption confirmed by the customer (seeds 002, 003): 428, a code, the till repeats the sale."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core.db.models import OutboxEvent, Purchase
from tests.merchant.apicheck import call
from tests.merchant.test_sales_api import PHONE, register, sale


async def confirming_program(client: Any, auth: dict[str, str]) -> None:
    status, current = await call(client, "GET", "/api/v1/program", headers=auth)
    assert status == 200
    document = current["document"]
    document.setdefault("redemption", {})["confirm"] = True
    status, _ = await call(client, "PUT", "/api/v1/program", json=document, headers=auth)
    assert status == 200


async def codes_sent(core: Any) -> list[dict[str, Any]]:
    """What the customer's messenger receives (the notifications consumer unseals the same field)."""
    async with core.ctx.db.read() as session:
        events = await session.scalars(select(OutboxEvent).where(
            OutboxEvent.type == "RedemptionCodeIssued").order_by(OutboxEvent.id))
        return [{**e.payload, "code": core.ctx.secrets.decrypt(e.payload["code_sealed"])}
                for e in events]


async def purchases(core: Any) -> int:
    async with core.ctx.db.read() as session:
        return len(list(await session.scalars(select(Purchase.id))))


async def test_a_redemption_waits_for_the_customers_code(client, auth, core, clock):
    await register(client, auth)
    await confirming_program(client, auth)
    assert (await sale(client, auth, "r-1", "2000.00"))[0] == 201  # +100, nothing to confirm

    status, err = await sale(client, auth, "r-2", "200.00", redeem="50")
    assert status == 428
    assert err["error"]["code"] == "confirmation_required"
    assert await purchases(core) == 1  # the 428 did not use up the receipt
    [sent] = await codes_sent(core)
    assert sent["redeem"] == "50.00" and sent["receipt_id"] == "r-2"
    assert sent["code"] not in str(err)  # the till never sees the code

    wrong = "000000" if sent["code"] != "000000" else "111111"
    status, err = await sale(client, auth, "r-2", "200.00", redeem="50", confirmation_code=wrong)
    assert status == 422
    assert err["error"]["code"] == "confirmation_invalid"
    assert err["error"]["tries_left"] == 4

    # The code is bound to the amount: the cashier cannot raise the redemption with it.
    status, err = await sale(client, auth, "r-2", "200.00", redeem="60", confirmation_code=sent["code"])
    assert status == 422 and err["error"]["code"] == "confirmation_invalid"

    status, body = await sale(client, auth, "r-2", "200.00", redeem="50", confirmation_code=sent["code"])
    assert status == 201
    assert body["redeemed"] == "50.00"
    assert body["balance"]["available"] == "57.00"  # 100 - 50 + 5% of 150

    # The till repeats itself: the first answer again, the code left out of the comparison.
    again = await sale(client, auth, "r-2", "200.00", redeem="50", confirmation_code=sent["code"])
    assert again == (200, body)
    assert (await sale(client, auth, "r-2", "200.00", redeem="50"))[0] == 200


async def test_a_redemption_the_rules_refuse_sends_no_code(client, auth, core):
    await register(client, auth)
    await confirming_program(client, auth)
    await sale(client, auth, "r-1", "2000.00")  # +100
    status, err = await sale(client, auth, "r-2", "200.00", redeem="61")  # over the 30% cap
    assert status == 422 and err["error"]["code"] == "redeem_exceeds_limit"
    assert await codes_sent(core) == []  # the customer is not asked about a sale that can't be


async def test_five_wrong_codes_burn_it_and_a_new_one_is_sent(client, auth, core, clock):
    await register(client, auth)
    await confirming_program(client, auth)
    await sale(client, auth, "r-1", "2000.00")
    assert (await sale(client, auth, "r-2", "200.00", redeem="10"))[0] == 428
    [first] = await codes_sent(core)
    wrong = "000000" if first["code"] != "000000" else "111111"
    left = [(await sale(client, auth, "r-2", "200.00", redeem="10", confirmation_code=wrong))[1]
            ["error"]["tries_left"] for _ in range(5)]
    assert left == [4, 3, 2, 1, 0]
    status, err = await sale(client, auth, "r-2", "200.00", redeem="10", confirmation_code=first["code"])
    assert status == 422 and err["error"]["tries_left"] == 0  # even the right code is refused now
    clock.advance_to(clock.now() + timedelta(seconds=61))  # one new code a minute
    assert (await sale(client, auth, "r-2", "200.00", redeem="10"))[0] == 428
    second = (await codes_sent(core))[-1]
    status, body = await sale(client, auth, "r-2", "200.00", redeem="10",
                              confirmation_code=second["code"])
    assert status == 201 and body["redeemed"] == "10.00"


async def test_sales_without_points_or_without_the_setting_need_no_code(client, auth, core):
    await register(client, auth)
    await sale(client, auth, "r-1", "2000.00")
    assert (await sale(client, auth, "r-2", "200.00", redeem="10"))[0] == 201  # setting off
    await confirming_program(client, auth)
    assert (await sale(client, auth, "r-3", "200.00"))[0] == 201  # nothing redeemed
    assert await codes_sent(core) == []


async def test_guessing_is_bounded_per_customer_whatever_the_receipts_and_amounts(
        client, auth, core, clock):
    await register(client, auth)
    await confirming_program(client, auth)
    await sale(client, auth, "r-0", "5000.00")  # +250
    assert (await sale(client, auth, "r-1", "200.00", redeem="10"))[0] == 428
    # Another receipt or amount a moment later gets no new code: one a minute per customer.
    status, err = await sale(client, auth, "r-2", "200.00", redeem="11")
    assert status == 428 and err["error"]["retry_after"] > 0
    assert len(await codes_sent(core)) == 1
    wrong_answers = []
    for n in range(3):
        clock.advance_to(clock.now() + timedelta(seconds=61))
        receipt = f"g-{n}"
        assert (await sale(client, auth, receipt, "200.00", redeem="10"))[0] == 428
        code = (await codes_sent(core))[-1]["code"]
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            wrong_answers.append((await sale(client, auth, receipt, "200.00", redeem="10",
                                             confirmation_code=wrong))[0])
    assert wrong_answers == [422] * 15
    # 15 wrong codes a day at most: then no fresh code, and no more guesses, until tomorrow.
    clock.advance_to(clock.now() + timedelta(seconds=61))
    status, err = await sale(client, auth, "r-9", "200.00", redeem="10")
    assert status == 429 and err["error"]["code"] == "confirmation_limit"
    status, _ = await sale(client, auth, "g-2", "200.00", redeem="10", confirmation_code=code)
    assert status == 429  # not even the right code of the last round
    clock.advance_to(clock.now() + timedelta(hours=25))
    assert (await sale(client, auth, "r-9", "200.00", redeem="10"))[0] == 428


async def test_a_gift_for_points_needs_the_code_too(client, auth, core, clock):
    await register(client, auth)
    status, current = await call(client, "GET", "/api/v1/program", headers=auth)
    document = current["document"]
    document["redemption"]["confirm"] = True
    document["gifts"] = [{"id": "latte", "name": "Латте", "points": "40"}]
    assert (await call(client, "PUT", "/api/v1/program", json=document, headers=auth))[0] == 200
    await sale(client, auth, "r-1", "2000.00")  # +100
    body = {"customer": {"phone": PHONE}, "gift_id": "latte", "redemption_id": "g-1"}
    status, err = await call(client, "POST", "/api/v1/rewards/redeem", json=body, headers=auth)
    assert status == 428 and err["error"]["code"] == "confirmation_required"
    [sent] = await codes_sent(core)
    assert sent["redeem"] == "40.00" and sent["receipt_id"] == "gift:g-1"
    status, answer = await call(client, "POST", "/api/v1/rewards/redeem", headers=auth,
                                json={**body, "confirmation_code": sent["code"]})
    assert status == 201 and answer["balance"]["available"] == "60.00"
    again = await call(client, "POST", "/api/v1/rewards/redeem", json=body, headers=auth)
    assert again[0] == 200  # a repeat is answered, no new code
    assert len(await codes_sent(core)) == 1
