"""Conversations: what customers write to the business, and what operators answer.

A conversation belongs to a channel account first (people write before they register)
and joins the customer's single thread when the account is linked. Photos are bytes in
the media store, by our own id — never a platform's file id.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import ChannelAccount, ChatMessage
from core.errors import NotFound, ValidationFailed
from core.ids import new_id
from core.ports import MediaStore
from core.services.context import CoreContext
from core.services.views import iso

MAX_TEXT = 4096


async def record_inbound(
    ctx: CoreContext, media: MediaStore, merchant_id: str, account_id: str, *,
    text: str | None = None, photo: bytes | None = None, photo_type: str = "image/jpeg",
) -> dict[str, Any]:
    """A customer's message (text, a photo, or a photo with a caption) into the conversation."""
    return await _record(ctx, media, merchant_id, account_id, "in", "customer", text, photo, photo_type)


async def record_outbound(
    ctx: CoreContext, media: MediaStore, merchant_id: str, account_id: str, *,
    text: str | None = None, photo: bytes | None = None, photo_type: str = "image/jpeg",
    author: str = "operator",
) -> dict[str, Any]:
    """An operator's (or the bot's) answer, kept in the same thread; sending is the caller's."""
    return await _record(ctx, media, merchant_id, account_id, "out", author, text, photo, photo_type)


async def _record(ctx: CoreContext, media: MediaStore, merchant_id: str, account_id: str,
                  direction: str, author: str, text: str | None, photo: bytes | None,
                  photo_type: str) -> dict[str, Any]:
    """One message of the merchant's account (another merchant's account is "no such")."""
    text = (text or "").strip()[:MAX_TEXT] or None
    if text is None and not photo:
        raise ValidationFailed("a message needs text or a photo")
    async with ctx.db.read() as session:
        found = await session.scalar(select(ChannelAccount.id).where(
            ChannelAccount.id == account_id, ChannelAccount.merchant_id == merchant_id))
        if found is None:
            raise NotFound("no such channel account")
    # The media store writes in its own transaction: never inside ours (SQLite has one writer).
    media_id = await media.put(merchant_id, photo_type, photo) if photo else None
    async with ctx.uow() as uow:
        account = await uow.session.get(ChannelAccount, account_id)
        assert account is not None
        message = ChatMessage(
            id=new_id("msg"), merchant_id=merchant_id, channel_account_id=account_id,
            customer_id=account.customer_id, direction=direction, author=author, text=text,
            media_id=media_id, created_at=ctx.now())
        uow.session.add(message)
        answer = message_json(message)
        await uow.commit()
    return answer


async def link_account_messages(target: CoreContext | AsyncSession, account_id: str,
                                customer_id: str) -> int:
    """The account's earlier messages join the customer's thread (registration links it).

    Pass the registration's session to do it in that transaction, or the context for its own.
    """
    statement = (update(ChatMessage)
                 .where(ChatMessage.channel_account_id == account_id, ChatMessage.customer_id.is_(None))
                 .values(customer_id=customer_id))
    if isinstance(target, AsyncSession):
        result = await target.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0)
    async with target.uow() as uow:
        result = await uow.session.execute(statement)
        await uow.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def thread(ctx: CoreContext, merchant_id: str, *, customer_id: str | None = None,
                 account_id: str | None = None, before: str | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
    """A customer's thread (every account of theirs), or an unlinked account's conversation;
    oldest first, the `limit` messages before the message id `before` (latest when None)."""
    if (customer_id is None) == (account_id is None):
        raise ValidationFailed("name either the customer or the account")
    query = select(ChatMessage).where(ChatMessage.merchant_id == merchant_id)
    if customer_id is not None:
        query = query.where(ChatMessage.customer_id == customer_id)
    else:
        query = query.where(ChatMessage.channel_account_id == account_id)
    if before is not None:
        query = query.where(ChatMessage.id < before)
    async with ctx.db.read() as session:
        rows = list(await session.scalars(query.order_by(ChatMessage.id.desc()).limit(limit)))
    return [message_json(m) for m in reversed(rows)]


def message_json(message: ChatMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "channel_account_id": message.channel_account_id,
        "customer_id": message.customer_id,
        "direction": message.direction,
        "author": message.author,
        "text": message.text,
        "media_id": message.media_id,
        "created_at": iso(message.created_at),
    }
