"""Merging two customers who are one person, and changing a phone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Table, func, select, tuple_

from core.db.base import Base
from core.db.models import (
    ChannelAccount,
    ChatMessage,
    Consent,
    Customer,
    CustomerDate,
    OutboxEvent,
    RedemptionConfirmation,
    Review,
)
from core.errors import CustomerNotFound, InvalidPhone, PhoneTaken, ValidationFailed
from core.ids import new_id
from core.services.customers import (
    CustomerRef,
    RegisterCustomer,
    customer_answer,
    issue_qr_token,
    lookup_answer,
    register_customer,
)
from core.services.identity import change_phone, merge_customers
from core.services.merchants import NewMerchant, create_merchant
from core.services.programs import put_program
from core.services.purchases import register_sale
from core.services.sales_input import SaleInput
from tests.conftest import START
from tests.merchant.apicheck import call

SOURCE_PHONE = "+79161111111"
TARGET_PHONE = "+79162222222"
FRIEND_PHONE = "+79163333333"


def customer_foreign_keys() -> set[tuple[Table, Column[Any]]]:
    """Walk the metadata on its own (not through the service): every FK to customers.id."""
    customers_id = Base.metadata.tables["customers"].c.id
    return {
        (table, fk.parent)
        for table in Base.metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column is customers_id and (table.name, fk.parent.name) != ("customers", "merged_into_id")
    }


async def register(core: Any, merchant_id: str, phone: str, **extra: Any) -> dict[str, Any]:
    _, body = await register_customer(core.ctx, merchant_id, RegisterCustomer(phone=phone, **extra))
    return body


async def sell(core: Any, merchant_id: str, receipt: str, phone: str, total_minor: int,
               redeem_cp: int = 0) -> dict[str, Any]:
    answer = await register_sale(core.ctx, merchant_id, SaleInput(
        receipt_id=receipt, total_minor=total_minor, customer=CustomerRef(phone=phone),
        redeem_cp=redeem_cp))
    return answer.body


async def test_merge_moves_every_row_that_references_the_customer(core, merchant_id, clock):
    source = await register(core, merchant_id, SOURCE_PHONE)
    target = await register(core, merchant_id, TARGET_PHONE, name="Анна")
    # Rows in every table that references customers.id, for the source:
    await register(core, merchant_id, FRIEND_PHONE,
                   referrer=CustomerRef(code=source["referral_code"]))   # customers.referrer_id
    await issue_qr_token(core.ctx, merchant_id, source["id"])                # qr_tokens
    await sell(core, merchant_id, "r-1", SOURCE_PHONE, 200_000)             # purchases, lots
    clock.advance_to(START + timedelta(minutes=1))
    await sell(core, merchant_id, "r-2", SOURCE_PHONE, 20_000, redeem_cp=5_000)  # allocations
    async with core.ctx.uow() as uow:                                        # accounts, consents
        account = ChannelAccount(id=new_id("cha"), merchant_id=merchant_id, customer_id=source["id"],
                                 channel="telegram", bot_id="bot1", external_user_id="42",
                                 created_at=START)
        uow.session.add(account)
        await uow.session.flush()
        uow.session.add(CustomerDate(id=new_id("cdt"), merchant_id=merchant_id,
                                     customer_id=source["id"], kind="relative_birthday",
                                     month=5, day=12, created_at=START))
        uow.session.add(Consent(id=new_id("cns"), merchant_id=merchant_id, customer_id=source["id"],
                                channel_account_id=account.id, kind="personal_data", granted=True,
                                text_version="v1", channel="telegram", occurred_at=START))
        uow.session.add(ChatMessage(id=new_id("msg"), merchant_id=merchant_id,
                                    channel_account_id=account.id, customer_id=source["id"],
                                    direction="in", author="customer", text="привет", created_at=START))
        uow.session.add(Review(id=new_id("rev"), merchant_id=merchant_id, customer_id=source["id"],
                               score=9, channel="telegram", created_at=START))
        uow.session.add(RedemptionConfirmation(
            id=new_id("rcf"), merchant_id=merchant_id, receipt_id="r-9", customer_id=source["id"],
            redeem_cp=100, digest="0" * 64, created_at=START, expires_at=START))
        await uow.commit()
    await sell(core, merchant_id, "r-3", TARGET_PHONE, 100_000)

    fks = customer_foreign_keys()
    before: dict[tuple[str, str], list[Any]] = {}
    async with core.ctx.db.read() as session:
        for table, column in fks:
            pk = list(table.primary_key.columns)
            rows = (await session.execute(select(*pk).where(column == source["id"]))).all()
            if rows:
                before[(table.name, column.name)] = [tuple(r) for r in rows]
    discovered = {(t.name, c.name) for t, c in fks}
    assert set(before) == discovered, (
        "every column referencing customers.id needs a source row in this test; "
        f"missing: {sorted(discovered - set(before))}"
    )

    answer = await merge_customers(core.ctx, merchant_id, source["id"], target["id"])

    async with core.ctx.db.read() as session:
        for table, column in fks:
            left = await session.scalar(
                select(func.count()).select_from(table).where(column == source["id"]))
            assert left == 0, f"{table.name}.{column.name} still points at the merged customer"
            pk = list(table.primary_key.columns)
            now_points_at = set(await session.scalars(
                select(column).where(tuple_(*pk).in_(before[(table.name, column.name)]))))
            assert now_points_at == {target["id"]}, f"{table.name}.{column.name}"
        gone = await session.get(Customer, source["id"])
        assert gone is not None
        assert gone.merged_into_id == target["id"] and gone.deleted_at is not None
        assert gone.phone is None
        merged_event = await session.scalar(
            select(OutboxEvent).where(OutboxEvent.type == "CustomersMerged"))
        assert merged_event is not None
        assert merged_event.payload == {"from": source["id"], "into": target["id"]}
    assert answer.moved["lot_allocations.customer_id"] >= 1
    # Source: 100 accrued, 50 redeemed, 7 accrued on the 150.00 paid in money; target: 50.
    assert answer.customer["balance"]["available"] == "107.00"
    assert answer.customer["name"] == "Анна"


async def test_merged_balances_add_up_and_the_source_is_gone(client, auth, core, merchant_id):
    _, a = await call(client, "POST", "/api/v1/customers", headers=auth,
                      json={"phone": TARGET_PHONE})
    _, b = await call(client, "POST", "/api/v1/customers", headers=auth,
                      json={"phone": SOURCE_PHONE, "name": "Борис", "birth_date": "1990-05-01"})
    await sell(core, merchant_id, "r-a", TARGET_PHONE, 100_000)   # +50
    await sell(core, merchant_id, "r-b", SOURCE_PHONE, 200_000)   # +100

    await merge_customers(core.ctx, merchant_id, b["id"], a["id"])

    status, merged = await call(client, "GET", f"/api/v1/customers/{a['id']}", headers=auth)
    assert status == 200
    assert merged["balance"]["available"] == "150.00"
    assert merged["phone"] == TARGET_PHONE
    assert merged["name"] == "Борис" and merged["birth_date"] == "1990-05-01"
    status, err = await call(client, "GET", f"/api/v1/customers/{b['id']}", headers=auth)
    assert status == 404 and err["error"]["code"] == "customer_not_found"
    status, _ = await call(client, "GET", "/api/v1/customers/lookup?phone=%2B79161111111",
                           headers=auth)
    assert status == 404
    for card in (a["card_number"], b["card_number"]):
        status, found = await call(client, "GET", f"/api/v1/customers/lookup?card={card}",
                                   headers=auth)
        assert status == 200 and found["id"] == a["id"]
    _, page = await call(client, "GET", f"/api/v1/customers/{a['id']}/ledger", headers=auth)
    assert sorted(e["points"] for e in page["items"]) == ["100.00", "50.00"]
    # The freed phone can register again, as a new customer.
    status, again = await call(client, "POST", "/api/v1/customers", headers=auth,
                               json={"phone": SOURCE_PHONE})
    assert status == 201 and again["id"] not in (a["id"], b["id"])


async def test_merged_spend_reaches_the_next_tier(core, merchant_id):
    await put_program(core.ctx, merchant_id, {"tiers": [
        {"id": "base", "name": "Base"},
        {"id": "silver", "name": "Silver", "accrual_percent": "7", "threshold": "2500"},
    ]})
    a = await register(core, merchant_id, TARGET_PHONE)
    b = await register(core, merchant_id, SOURCE_PHONE)
    await sell(core, merchant_id, "r-a", TARGET_PHONE, 150_000)
    await sell(core, merchant_id, "r-b", SOURCE_PHONE, 150_000)
    assert (await customer_answer(core.ctx, merchant_id, a["id"]))["tier"]["id"] == "base"

    answer = await merge_customers(core.ctx, merchant_id, b["id"], a["id"])

    assert answer.customer["tier"]["id"] == "silver"
    sale = await sell(core, merchant_id, "r-c", TARGET_PHONE, 10_000)
    assert sale["accrued"] == "7.00"


async def test_target_referred_by_source_does_not_refer_itself(core, merchant_id):
    friend = await register(core, merchant_id, FRIEND_PHONE)
    source = await register(core, merchant_id, SOURCE_PHONE,
                            referrer=CustomerRef(code=friend["referral_code"]))
    target = await register(core, merchant_id, TARGET_PHONE,
                            referrer=CustomerRef(code=source["referral_code"]))

    await merge_customers(core.ctx, merchant_id, source["id"], target["id"])

    async with core.ctx.db.read() as session:
        merged = await session.get(Customer, target["id"])
        assert merged is not None
        assert merged.referrer_id == friend["id"]


async def test_merge_refuses_itself_unknown_and_another_merchants_customer(core, merchant_id):
    mine = await register(core, merchant_id, TARGET_PHONE)
    other_merchant = await create_merchant(core.ctx, NewMerchant(name="Пекарня", slug="bakery"))
    theirs = await register(core, other_merchant.id, SOURCE_PHONE)
    await sell(core, other_merchant.id, "r-1", SOURCE_PHONE, 100_000)

    with pytest.raises(ValidationFailed):
        await merge_customers(core.ctx, merchant_id, mine["id"], mine["id"])
    with pytest.raises(CustomerNotFound):
        await merge_customers(core.ctx, merchant_id, "cus_nope", mine["id"])
    with pytest.raises(CustomerNotFound):
        await merge_customers(core.ctx, merchant_id, theirs["id"], mine["id"])
    with pytest.raises(CustomerNotFound):
        await merge_customers(core.ctx, other_merchant.id, theirs["id"], mine["id"])

    untouched = await customer_answer(core.ctx, other_merchant.id, theirs["id"])
    assert untouched["balance"]["available"] == "50.00"
    assert untouched["phone"] == SOURCE_PHONE


async def test_a_merged_customer_cannot_be_merged_again(core, merchant_id):
    a = await register(core, merchant_id, TARGET_PHONE)
    b = await register(core, merchant_id, SOURCE_PHONE)
    await merge_customers(core.ctx, merchant_id, b["id"], a["id"])
    with pytest.raises(CustomerNotFound):
        await merge_customers(core.ctx, merchant_id, b["id"], a["id"])
    with pytest.raises(CustomerNotFound):
        await merge_customers(core.ctx, merchant_id, a["id"], b["id"])


async def test_change_phone_moves_lookups_to_the_new_number(core, merchant_id):
    customer = await register(core, merchant_id, SOURCE_PHONE)

    answer = await change_phone(core.ctx, merchant_id, customer["id"], "8 (916) 444-44-44")

    assert answer["phone"] == "+79164444444"
    found = await lookup_answer(core.ctx, merchant_id, CustomerRef(phone="+79164444444"))
    assert found["id"] == customer["id"]
    with pytest.raises(CustomerNotFound):
        await lookup_answer(core.ctx, merchant_id, CustomerRef(phone=SOURCE_PHONE))
    async with core.ctx.db.read() as session:
        event = await session.scalar(
            select(OutboxEvent).where(OutboxEvent.type == "CustomerPhoneChanged"))
    assert event is not None
    assert event.payload == {"customer_id": customer["id"]}


async def test_change_phone_to_another_customers_number_says_merge(core, merchant_id):
    customer = await register(core, merchant_id, SOURCE_PHONE)
    holder = await register(core, merchant_id, TARGET_PHONE)

    with pytest.raises(PhoneTaken) as caught:
        await change_phone(core.ctx, merchant_id, customer["id"], TARGET_PHONE)

    assert "merge" in caught.value.message and holder["id"] in caught.value.message
    unchanged = await customer_answer(core.ctx, merchant_id, customer["id"])
    assert unchanged["phone"] == SOURCE_PHONE


async def test_change_phone_refuses_an_invalid_number(core, merchant_id):
    customer = await register(core, merchant_id, SOURCE_PHONE)
    with pytest.raises(InvalidPhone):
        await change_phone(core.ctx, merchant_id, customer["id"], "12345")
    with pytest.raises(CustomerNotFound):
        await change_phone(core.ctx, merchant_id, "cus_nope", TARGET_PHONE)


async def test_change_phone_takes_the_number_a_merge_freed(core, merchant_id):
    a = await register(core, merchant_id, TARGET_PHONE)
    b = await register(core, merchant_id, SOURCE_PHONE)
    await merge_customers(core.ctx, merchant_id, b["id"], a["id"])

    answer = await change_phone(core.ctx, merchant_id, a["id"], SOURCE_PHONE)

    assert answer["phone"] == SOURCE_PHONE
