"""A customer's own profile: name, birthday, gender, advertising consent, export and erasure."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import Base
from core.db.models import (
    Card,
    ChannelAccount,
    ChatMessage,
    Consent,
    CustomerDate,
    DialogState,
    LedgerEntry,
    Media,
    OutgoingMessage,
    PhoneCode,
    Purchase,
    PurchaseLine,
    QrToken,
    Refund,
    Review,
)
from core.ids import new_id
from core.services.consents import ADVERTISING, PERSONAL_DATA, current_consents
from core.services.context import CoreContext
from core.services.customers import get_customer
from core.services.media import forget as forget_media

# Columns an export leaves out: secrets' digests and the till's raw request/answer copies.
NOT_EXPORTED = frozenset({"digest", "request_digest", "response", "data"})
# Outgoing rows already done with may be redacted; queued ones still belong to the sender.
FINISHED = ("sent", "failed", "blocked")


async def profile_of(ctx: CoreContext, merchant_id: str, customer_id: str) -> dict[str, Any]:
    """What the Profile screen shows: name, birthday, gender and the advertising consent
    (changes go through core.services.registration's setters and the consent log)."""
    async with ctx.db.read() as session:
        customer = await get_customer(session, merchant_id, customer_id)
        profile = {"name": customer.name, "birth_date": customer.birth_date, "gender": customer.gender}
    consents = await current_consents(ctx, merchant_id, customer_id)
    return profile | {"advertising": consents[ADVERTISING]}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def row_json(row: Base) -> dict[str, Any]:
    """Every column of a row, as JSON values (but secrets' digests and raw copies)."""
    return {column.key: _plain(getattr(row, column.key)) for column in row.__table__.columns
            if column.key not in NOT_EXPORTED and not isinstance(getattr(row, column.key), bytes)}


async def _rows(session: AsyncSession, query: Select[Any]) -> list[dict[str, Any]]:
    return [row_json(r) for r in await session.scalars(query)]


async def export_customer(ctx: CoreContext, merchant_id: str, customer_id: str) -> dict[str, Any]:
    """Everything we hold on the customer, as one JSON document (the right of access)."""
    async with ctx.db.read() as session:
        customer = await get_customer(session, merchant_id, customer_id)
        mine = {"merchant_id": merchant_id, "customer_id": customer_id}
        accounts = list(await session.scalars(select(ChannelAccount).where(
            ChannelAccount.customer_id == customer_id)))
        purchase_ids = select(Purchase.id).where(Purchase.customer_id == customer_id)
        return {
            "customer": row_json(customer),
            "cards": await _rows(session, select(Card).filter_by(**mine).order_by(Card.issued_at)),
            "accounts": [row_json(a) for a in accounts],
            "consents": await _rows(session, select(Consent).filter_by(**mine).order_by(Consent.id)),
            "customer_dates": await _rows(session, select(CustomerDate).filter_by(**mine)),
            "purchases": await _rows(session, select(Purchase).filter_by(**mine)
                                     .order_by(Purchase.occurred_at)),
            "purchase_lines": await _rows(session, select(PurchaseLine).where(
                PurchaseLine.purchase_id.in_(purchase_ids)).order_by(PurchaseLine.id)),
            "refunds": await _rows(session, select(Refund).where(Refund.purchase_id.in_(purchase_ids))),
            "ledger": await _rows(session, select(LedgerEntry).filter_by(**mine)
                                  .order_by(LedgerEntry.occurred_at, LedgerEntry.id)),
            "reviews": await _rows(session, select(Review).filter_by(**mine).order_by(Review.id)),
            "messages": await _rows(session, _messages(customer_id, [a.id for a in accounts])
                                    .order_by(ChatMessage.id)),
        }


def _messages(customer_id: str, account_ids: list[str]) -> Select[ChatMessage]:
    return select(ChatMessage).where(or_(ChatMessage.customer_id == customer_id,
                                         ChatMessage.channel_account_id.in_(account_ids)))


async def anonymise_customer(ctx: CoreContext, merchant_id: str, customer_id: str, *,
                             channel: str = "api") -> None:
    """Erase the person, keep the amounts: irreversible.

    Phone, name, birth date, gender, important dates, message texts and photos' bytes and
    review comments go; the ledger and purchases stay (with an anonymous customer id); the
    cards are blocked and the messenger accounts unlinked; the phone may register again.
    The consent log keeps its rows and gets a withdrawal of both consents.
    """
    now = ctx.now()
    async with ctx.uow() as uow:
        s = uow.session
        customer = await get_customer(s, merchant_id, customer_id, lock=True)
        phone = customer.phone
        customer.phone = customer.name = customer.birth_date = customer.gender = None
        customer.source = None
        customer.deleted_at = now
        account_ids = list(await s.scalars(select(ChannelAccount.id).where(
            ChannelAccount.customer_id == customer_id)))
        messages = list(await s.scalars(_messages(customer_id, account_ids)))
        media_ids = [m.media_id for m in messages if m.media_id]
        for message in messages:
            message.text = None
        media_ids += await _erase_outgoing(s, account_ids)
        if media_ids:
            await s.execute(update(Media).where(Media.id.in_(media_ids))
                            .values(data=None, size=0, sha256=""))
            forget_media(media_ids)
        await s.execute(update(Card).where(Card.customer_id == customer_id, Card.status == "active")
                        .values(status="blocked", blocked_at=now))
        await s.execute(update(Review).where(Review.customer_id == customer_id).values(comment=None))
        await s.execute(delete(CustomerDate).where(CustomerDate.customer_id == customer_id))
        await s.execute(delete(QrToken).where(QrToken.customer_id == customer_id))
        if phone is not None:
            await s.execute(delete(PhoneCode).where(PhoneCode.merchant_id == merchant_id,
                                                    PhoneCode.phone == phone))
        if account_ids:
            await s.execute(delete(DialogState).where(DialogState.channel_account_id.in_(account_ids)))
            await s.execute(update(ChannelAccount).where(ChannelAccount.id.in_(account_ids))
                            .values(customer_id=None))
        for kind in (PERSONAL_DATA, ADVERTISING):
            s.add(Consent(id=new_id("cns"), merchant_id=merchant_id, customer_id=customer_id,
                          kind=kind, granted=False, text_version="erasure", channel=channel,
                          occurred_at=now))
        uow.emit(merchant_id, "CustomerErased", {"customer_id": customer_id},
                 occurred_at=now, now=now, customer_id=customer_id)
        await uow.commit()


async def _erase_outgoing(s: AsyncSession, account_ids: list[str]) -> list[str]:
    """Blank what we sent or were about to send them; returns the images those messages carried.

    Messages still queued (a balance notice, say) are not sent after the erasure.
    """
    if not account_ids:
        return []
    of_accounts = OutgoingMessage.channel_account_id.in_(account_ids)
    bodies = await s.scalars(select(OutgoingMessage.body).where(of_accounts))
    images = [body["image"]["media_id"] for body in bodies
              if isinstance(body.get("image"), dict) and body["image"].get("media_id")]
    await s.execute(update(OutgoingMessage).where(of_accounts, OutgoingMessage.status.in_(FINISHED))
                    .values(body={"text": ""}))
    await s.execute(update(OutgoingMessage).where(of_accounts, OutgoingMessage.status == "queued")
                    .values(body={"text": ""}, status="failed", error="erased at the customer's request"))
    return images
