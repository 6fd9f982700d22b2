"""A customer's data: the export holds all of it; erasure forgets the person, keeps the amounts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.db.models import (
    Card,
    ChannelAccount,
    ChatMessage,
    Consent,
    Customer,
    CustomerDate,
    LedgerEntry,
    Media,
    Purchase,
    Review,
)
from core.errors import CustomerNotFound, NotFound
from core.services import accounts
from core.services.conversations import link_account_messages, record_inbound, record_outbound, thread
from core.services.customers import RegisterCustomer, customer_answer, register_customer
from core.services.dates import ImportantDate, set_dates
from core.services.media import DbMediaStore
from core.services.merchants import NewMerchant, create_merchant
from core.services.profile import anonymise_customer, export_customer
from core.services.reviews import leave_review
from tests.merchant.apicheck import call

PHONE = "+79161234567"


async def lived_customer(core, merchant_id, client, auth) -> tuple[str, str]:
    """A customer with a purchase, a review, an important date and a chat with a photo."""
    _created, customer = await register_customer(core.ctx, merchant_id, RegisterCustomer(
        phone=PHONE, name="Анна Смирнова"))
    status, _sale = await call(client, "POST", "/api/v1/purchases", headers=auth, json={
        "receipt_id": "r-1", "customer": {"phone": PHONE}, "total": "1000.00"})
    assert status == 201
    await set_dates(core.ctx, merchant_id, customer["id"],
                    [ImportantDate(kind="relative_birthday", date="05-17", label="мама")])
    await leave_review(core.ctx, merchant_id, customer["id"], 10, "Анна из дома 5 довольна", "telegram")
    account = await accounts.open_account(core.ctx, merchant_id, "telegram", "bot_1", "42", "42", "ru")
    media = DbMediaStore(core.ctx)
    await record_inbound(core.ctx, media, merchant_id, account.id, text="Анна, +79161234567",
                         photo=b"jpeg bytes")
    await link_account_messages(core.ctx, account.id, customer["id"])
    async with core.ctx.uow() as uow:
        (await uow.session.get(ChannelAccount, account.id)).customer_id = customer["id"]
        await uow.commit()
    await record_outbound(core.ctx, media, merchant_id, account.id, text="Анна, спасибо!")
    return customer["id"], account.id


async def test_export_is_everything_we_hold(core, merchant_id, client, auth):
    customer_id, account_id = await lived_customer(core, merchant_id, client, auth)
    document = await export_customer(core.ctx, merchant_id, customer_id)
    assert document["customer"]["phone"] == PHONE
    assert document["customer"]["name"] == "Анна Смирнова"
    assert [a["id"] for a in document["accounts"]] == [account_id]
    assert [p["receipt_id"] for p in document["purchases"]] == ["r-1"]
    assert "response" not in document["purchases"][0]
    assert [d["label"] for d in document["customer_dates"]] == ["мама"]
    assert [r["comment"] for r in document["reviews"]] == ["Анна из дома 5 довольна"]
    assert [(m["direction"], m["text"]) for m in document["messages"]] == [
        ("in", "Анна, +79161234567"), ("out", "Анна, спасибо!")]
    assert sum(int(e["amount_cp"]) for e in document["ledger"]) == 5000  # 5% of 1000


async def test_erasure_forgets_the_person_and_keeps_the_amounts(core, merchant_id, client, auth):
    customer_id, account_id = await lived_customer(core, merchant_id, client, auth)
    [message] = [m for m in await thread(core.ctx, merchant_id, customer_id=customer_id)
                 if m["media_id"]]
    await anonymise_customer(core.ctx, merchant_id, customer_id, channel="telegram")
    async with core.ctx.db.read() as s:
        row = await s.get(Customer, customer_id)
        assert (row.phone, row.name, row.birth_date, row.gender) == (None, None, None, None)
        assert row.deleted_at is not None
        assert await s.scalar(select(func.count()).select_from(CustomerDate)) == 0
        assert list(await s.scalars(select(ChatMessage.text))) == [None, None]
        media = await s.get(Media, message["media_id"])
        assert media.data is None
        assert list(await s.scalars(select(Review.comment))) == [None]
        assert list(await s.scalars(select(Card.status))) == ["blocked"]
        assert (await s.get(ChannelAccount, account_id)).customer_id is None
        # The amounts stay: the purchase and every ledger row.
        assert await s.scalar(select(Purchase.total_minor)) == 100000
        assert await s.scalar(select(func.sum(LedgerEntry.amount_cp)).where(
            LedgerEntry.customer_id == customer_id)) == 5000
        withdrawals = list(await s.execute(select(Consent.kind, Consent.granted).where(
            Consent.customer_id == customer_id)))
        assert sorted(tuple(w) for w in withdrawals) == [("advertising", False), ("personal_data", False)]
    assert await DbMediaStore(core.ctx).get(merchant_id, message["media_id"]) is None
    with pytest.raises(CustomerNotFound):
        await customer_answer(core.ctx, merchant_id, customer_id)
    created, again = await register_customer(core.ctx, merchant_id, RegisterCustomer(phone=PHONE))
    assert created and again["id"] != customer_id and again["balance"]["available"] == "0.00"


async def test_erasure_blanks_messages_sent_or_queued_to_the_person(core, merchant_id, client, auth):
    from core.db.models import OutgoingMessage
    from core.services.bots import add_bot
    from core.services.outgoing import SERVICE, NewOutgoing, enqueue

    customer_id, account_id = await lived_customer(core, merchant_id, client, auth)
    bot = await add_bot(core.ctx, merchant_id, "web", None)
    card = await DbMediaStore(core.ctx).put(merchant_id, "image/png", b"card png with a QR")

    def message(body: dict) -> NewOutgoing:
        return NewOutgoing(merchant_id=merchant_id, bot_id=bot.id, channel_account_id=account_id,
                           chat_id="42", body=body, priority=SERVICE, kind="test")

    sent_id, queued_id = await enqueue(core.ctx, [
        message({"text": "Ваша карта", "image": {"media_id": card, "filename": "card.png"}}),
        message({"text": "Анна, у вас 50 бонусов"})])
    async with core.ctx.uow() as uow:
        (await uow.session.get(OutgoingMessage, sent_id)).status = "sent"
        await uow.commit()

    await anonymise_customer(core.ctx, merchant_id, customer_id)

    async with core.ctx.db.read() as session:
        sent = await session.get(OutgoingMessage, sent_id)
        queued = await session.get(OutgoingMessage, queued_id)
        image = await session.get(Media, card)
    assert sent.body == {"text": ""} and sent.status == "sent"
    assert queued.body == {"text": ""} and queued.status == "failed"  # never sent after the erasure
    assert image.data is None


async def test_a_message_is_never_recorded_in_another_merchants_conversation(core, merchant_id):
    """An operator of one merchant naming another merchant's account id gets "no such account"."""

    other = await create_merchant(core.ctx, NewMerchant(name="Другая кофейня", slug="other-coffee"))
    account = await accounts.open_account(core.ctx, merchant_id, "telegram", "bot_1", "77", "77", "ru")
    with pytest.raises(NotFound):
        await record_outbound(core.ctx, DbMediaStore(core.ctx), other.id, account.id, text="чужое")
    async with core.ctx.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(ChatMessage)) == 0
