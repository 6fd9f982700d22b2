"""The web chat's queries: its bot per merchant, a visitor's account and thread, what they may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import String, and_, cast, or_, select, update
from sqlalchemy.exc import IntegrityError

from core.db.models import Bot, ChannelAccount, ChatMessage, Merchant, OutgoingMessage
from core.services.accounts import LAST_SEEN_STEP
from core.services.context import CoreContext

CHANNEL = "web"
SKIPPED = ("failed", "blocked")  # rows that never reached the person are not part of the thread
# A signed-out visitor's account keeps its thread and customer (for the inbox and the books) under
# its visitor id with this mark: the token that named it finds nothing, and is refused.
SIGNED_OUT = "~out"


@dataclass(frozen=True)
class WebMerchant:
    """A merchant as the widget needs it."""

    id: str
    slug: str
    name: str


@dataclass(frozen=True)
class ThreadRow:
    """One outgoing message of a visitor's thread, as saved."""

    id: str
    body: dict[str, Any]


def web_bot_id(merchant_id: str) -> str:
    """The merchant's web bot id: fixed per merchant, so two first visitors cannot make two."""
    return "web_" + merchant_id.split("_", 1)[-1]


async def find_merchant(ctx: CoreContext, slug: str) -> WebMerchant | None:
    async with ctx.db.read() as session:
        row = (await session.execute(
            select(Merchant.id, Merchant.slug, Merchant.name).where(Merchant.slug == slug))).first()
    return None if row is None else WebMerchant(id=row.id, slug=row.slug, name=row.name)


async def ensure_web_bot(ctx: CoreContext, merchant_id: str) -> str:
    """The merchant's web chat bot row, created on first use; returns its id."""
    bot_id = web_bot_id(merchant_id)
    async with ctx.db.read() as session:
        if await session.get(Bot, bot_id) is not None:
            return bot_id
    try:
        async with ctx.uow() as uow:
            uow.session.add(Bot(id=bot_id, merchant_id=merchant_id, channel=CHANNEL, status="active",
                                created_at=ctx.now()))
            await uow.commit()
    except IntegrityError:  # another first visitor made it a moment ago
        pass
    return bot_id


async def web_bots(ctx: CoreContext) -> list[str]:
    """Every web chat bot (their senders are registered when the app starts)."""
    async with ctx.db.read() as session:
        rows = await session.scalars(select(Bot.id).where(Bot.channel == CHANNEL))
        return list(rows)


async def merchant_of_bot(ctx: CoreContext, bot_id: str) -> WebMerchant | None:
    async with ctx.db.read() as session:
        row = (await session.execute(
            select(Merchant.id, Merchant.slug, Merchant.name).join(Bot, Bot.merchant_id == Merchant.id)
            .where(Bot.id == bot_id, Bot.channel == CHANNEL))).first()
    return None if row is None else WebMerchant(id=row.id, slug=row.slug, name=row.name)


async def find_account(ctx: CoreContext, merchant_id: str, bot_id: str, visitor: str) -> str | None:
    """The channel account of a visitor (by their digest), if they ever wrote."""
    async with ctx.db.read() as session:
        return await session.scalar(select(ChannelAccount.id).where(
            *_visitor_is(merchant_id, bot_id, visitor)))


def _visitor_is(merchant_id: str, bot_id: str, *external_ids: str) -> tuple[Any, ...]:
    """The conditions for the web chat accounts of a merchant's web bot with these ids."""
    return (ChannelAccount.merchant_id == merchant_id, ChannelAccount.channel == CHANNEL,
            ChannelAccount.bot_id == bot_id, ChannelAccount.external_user_id.in_(external_ids))


@dataclass(frozen=True)
class Visit:
    """What a visitor's token opens now."""

    account_id: str | None  # their account, if they ever wrote (None once signed out)
    ended: bool  # signed out, or silent too long: the token is refused and a new identity is due


async def visit(ctx: CoreContext, merchant_id: str, bot_id: str, visitor: str, idle: timedelta) -> Visit:
    """A visitor coming back: their account, unless they signed out or were away longer than `idle`.

    Away too long signs them out now (a forgotten browser on a shared computer stops opening
    the customer's card); a visit keeps `last_seen_at` fresh, so reading counts as being here.
    """
    async with ctx.db.read() as session:
        rows = (await session.execute(select(
            ChannelAccount.id, ChannelAccount.external_user_id, ChannelAccount.last_seen_at,
            ChannelAccount.created_at).where(
            *_visitor_is(merchant_id, bot_id, visitor, visitor + SIGNED_OUT)))).all()
    if any(row.external_user_id != visitor for row in rows):
        return Visit(None, ended=True)
    if not rows:
        return Visit(None, ended=False)
    row, now = rows[0], ctx.now()
    seen = row.last_seen_at or row.created_at
    if now - seen > idle:
        await sign_out(ctx, merchant_id, bot_id, visitor)
        return Visit(None, ended=True)
    if now - seen >= LAST_SEEN_STEP:
        async with ctx.uow() as uow:
            await uow.session.execute(update(ChannelAccount).where(ChannelAccount.id == row.id)
                                      .values(last_seen_at=now))
            await uow.commit()
    return Visit(row.id, ended=False)


async def sign_out(ctx: CoreContext, merchant_id: str, bot_id: str, visitor: str) -> str | None:
    """End a visitor's identity: their token opens nothing from now on; returns the account id.

    The account stays (its thread, its customer link, its consents: the business's records)
    but no longer answers to the token, gets no notices (blocked) and no chat to push to.
    An account made under an already signed-out visitor (a tab of another process still
    writing) is set aside under its own id: the token stays refused either way.
    """
    async with ctx.uow() as uow:
        s = uow.session
        account_id = await s.scalar(select(ChannelAccount.id).where(
            *_visitor_is(merchant_id, bot_id, visitor)))
        if account_id is None:
            return None
        ended_before = await s.scalar(select(ChannelAccount.id).where(
            *_visitor_is(merchant_id, bot_id, visitor + SIGNED_OUT)))
        await s.execute(update(ChannelAccount).where(ChannelAccount.id == account_id).values(
            external_user_id=(account_id if ended_before else visitor) + SIGNED_OUT,
            chat_id=None, blocked_at=ctx.now()))
        await uow.commit()
    return account_id


async def thread(ctx: CoreContext, account_id: str, after: str | None, limit: int = 100) -> list[ThreadRow]:
    """The account's outgoing messages saved after the message `after` (the last `limit`), oldest first.

    Order is by creation time, then id (ids made by several processes need not sort by time).
    An unknown `after` gives the last `limit` messages (the widget drops those it has).
    """
    created, row_id = OutgoingMessage.created_at, OutgoingMessage.id
    query = select(row_id, OutgoingMessage.body, OutgoingMessage.status, OutgoingMessage.not_before).where(
        OutgoingMessage.channel_account_id == account_id, OutgoingMessage.status.not_in(SKIPPED))
    now = ctx.now()
    async with ctx.db.read() as session:
        if after:
            anchor = await session.scalar(select(created).where(
                row_id == after, OutgoingMessage.channel_account_id == account_id))
            if anchor is not None:
                query = query.where(or_(created > anchor, and_(created == anchor, row_id > after)))
        rows = (await session.execute(query.order_by(created.desc(), row_id.desc()).limit(limit))).all()
    # A queued row due later (quiet hours) is not shown before its time; the sender pushes it then.
    return [ThreadRow(id=r.id, body=r.body) for r in reversed(rows)
            if r.status != "queued" or r.not_before <= now]


async def owns_message(ctx: CoreContext, account_id: str, message_id: str) -> bool:
    """Whether an outgoing message was sent to this account (a pressed button's message)."""
    async with ctx.db.read() as session:
        found = await session.scalar(select(OutgoingMessage.id).where(
            OutgoingMessage.id == message_id, OutgoingMessage.channel_account_id == account_id))
    return found is not None


async def holds_media(ctx: CoreContext, account_id: str, media_id: str) -> bool:
    """Whether the account's thread shows this picture (sent to it, or sent by it)."""
    async with ctx.db.read() as session:
        inbound = await session.scalar(select(ChatMessage.id).where(
            ChatMessage.channel_account_id == account_id, ChatMessage.media_id == media_id).limit(1))
        if inbound is not None:
            return True
        # Media ids are unique opaque strings, so finding one in the saved body is exact enough.
        outgoing = await session.scalar(select(OutgoingMessage.id).where(
            OutgoingMessage.channel_account_id == account_id,
            cast(OutgoingMessage.body, String).contains(media_id, autoescape=True)).limit(1))
    return outgoing is not None
