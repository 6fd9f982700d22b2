"""The outgoing queue: every message is first a row; one Dispatcher per process sends due rows.

A row is `queued` until due (`not_before`), then claimed (`sending`), handed to its
bot's `ChannelSender` under the platform's rate limit, and marked only with the
sender's result: `sent`, `blocked`, `failed`, or back to `queued` for a retry.
Order: priority (reply, service, marketing), then oldest first; each chat strictly in
order, different chats concurrently. While a row is `sending`, `not_before` holds the
time it was claimed (a claim older than STALE_CLAIM was cut short by a crash).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core.db.fastload import Reader
from core.db.models import Bot, OutgoingMessage
from core.db.outgoing_rows import INSERT, INSERT_MEDIA, claimed, save_for_chat
from core.db.uow import OUTGOING
from core.ids import new_id
from core.ports import NewMedia
from core.services.context import CoreContext
from core.services.media import media_row
from core.services.outgoing_claim import Claimed, chat_has_queue, lock_chat

if TYPE_CHECKING:
    from core.services.dispatcher import Dispatcher

REPLY, SERVICE, MARKETING = 0, 1, 2
MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(seconds=1)
BACKOFF_CAP = timedelta(minutes=5)
STALE_CLAIM = timedelta(minutes=10)


@dataclass
class NewOutgoing:
    """A message to queue; `key` (optional) makes queueing it twice queue it once."""

    merchant_id: str
    bot_id: str
    channel_account_id: str
    chat_id: str
    body: dict[str, Any]
    priority: int
    kind: str
    not_before: datetime | None = None
    key: str | None = None


async def enqueue(ctx: CoreContext, items: Sequence[NewOutgoing], *, hand_to: Dispatcher | None = None,
                  blocked: bool = False, media: Sequence[NewMedia] = ()) -> list[str]:
    """Save the messages as queued rows (one transaction); returns the ids of the new rows.

    `media`: the bytes the messages show (MediaStore.stage), saved in the same transaction.

    An item with a `key` is kept in its body ("key") and skipped when that account
    already has a row with the key (an outbox event handed over twice).
    `hand_to`: messages for one chat that nothing else of that chat waits before (a reply
    to someone talking now) are saved already claimed by that dispatcher and sent at once,
    without a claim round trip; otherwise they are queued and it is woken as usual.
    `blocked` says whether that chat's account has blocked the bot.
    """
    if not items:
        return []
    now = ctx.now()
    chats = {(item.bot_id, item.chat_id) for item in items}
    bot_id, chat_id = next(iter(chats))
    reserved = hand_to is not None and len(chats) == 1 and hand_to.reserve(bot_id, chat_id)
    handed = False  # once true, the dispatcher owns the reserved chat (it frees it on every path)
    try:
        channel = await bot_channel(ctx, bot_id) if reserved else None
        pictures = [media_row(m, now) for m in media]
        if any(item.key is not None for item in items):
            rows, claim = await _save_keyed(ctx, items, now, pictures, claim_chat=reserved)
        else:
            rows, claim = await _save(ctx, items, now, pictures, claim_chat=reserved)
        if rows and not claim:
            await ctx.committed(OUTGOING)
        if claim and hand_to is not None:
            handed = True
            await hand_to.start([Claimed(
                id=row["id"], merchant_id=row["merchant_id"], bot_id=bot_id, channel=channel or "",
                channel_account_id=row["channel_account_id"], chat_id=chat_id,
                priority=row["priority"], body=row["body"], attempts=0, blocked=blocked)
                for row in rows])
    finally:
        if reserved and not handed and hand_to is not None:
            hand_to.release(bot_id, chat_id)
    return [row["id"] for row in rows]


Rows = list[dict[str, Any]]


def _rows(items: Sequence[NewOutgoing], now: datetime, *, claim: bool) -> Rows:
    rows = [{
        "id": new_id("out"), "merchant_id": item.merchant_id, "bot_id": item.bot_id,
        "channel_account_id": item.channel_account_id, "chat_id": item.chat_id,
        "priority": item.priority, "kind": item.kind,
        "body": item.body if item.key is None else {**item.body, "key": item.key},
        "status": "queued", "attempts": 0, "not_before": item.not_before or now, "created_at": now,
    } for item in items]
    return [claimed(row, now) for row in rows] if claim else rows


async def _chat_free(ctx: CoreContext, reader: Reader, item: NewOutgoing) -> bool:
    """The item's chat held for this transaction with nothing queued before it."""
    return (await lock_chat(reader, item.bot_id, item.chat_id, sqlite=ctx.db.is_sqlite)
            and not await chat_has_queue(reader, item.bot_id, item.chat_id))


async def _save(ctx: CoreContext, items: Sequence[NewOutgoing], now: datetime, pictures: Rows, *,
                claim_chat: bool) -> tuple[Rows, bool]:
    """The rows and their pictures saved (the rows claimed, when `claim_chat` and the chat is
    free), with no session: a reply's in one round trip on PostgreSQL (core/db/outgoing_rows.py)."""
    rows = _rows(items, now, claim=False)
    if not claim_chat:
        async with ctx.db.direct(write=True, atomic=bool(pictures)) as db:  # all rows or none
            if pictures:
                await db.run(INSERT_MEDIA, pictures)
            await db.run(INSERT, rows)
        return rows, False
    claim = await save_for_chat(ctx.db, rows, now, pictures)
    return ([claimed(row, now) for row in rows] if claim else rows), claim


async def _save_keyed(ctx: CoreContext, items: Sequence[NewOutgoing], now: datetime, pictures: Rows, *,
                      claim_chat: bool) -> tuple[Rows, bool]:
    """As `_save`, leaving out items whose key their account already has."""
    async with ctx.uow() as uow:
        keys = {item.key for item in items if item.key is not None}
        key = OutgoingMessage.body["key"].as_string()
        seen = set(await uow.session.scalars(select(key).where(
            OutgoingMessage.channel_account_id.in_({i.channel_account_id for i in items}),
            key.in_(keys))))
        fresh = [item for item in items if item.key is None or item.key not in seen]
        claim = claim_chat and bool(fresh) and await _chat_free(ctx, uow.session, fresh[0])
        rows = _rows(fresh, now, claim=claim)
        if rows:
            if pictures:
                await uow.session.execute(INSERT_MEDIA, pictures)
            await uow.session.execute(INSERT, rows)
        await uow.commit()
    return rows, claim


_CHANNELS: dict[str, str] = {}  # bot id -> channel; a bot never changes channel


async def bot_channel(ctx: CoreContext, bot_id: str) -> str | None:
    """The channel of one of our bots ("telegram", "web", ...), or None for an unknown id."""
    if bot_id in _CHANNELS:
        return _CHANNELS[bot_id]
    async with ctx.db.read() as session:
        channel = await session.scalar(select(Bot.channel).where(Bot.id == bot_id))
    if channel is not None:
        _CHANNELS[bot_id] = channel
    return channel


def backoff(attempts: int) -> timedelta:
    """How long a row waits after its n-th failed attempt at least: 1 s, 2 s, 4 s, ... 5 min."""
    wait: timedelta = BACKOFF_BASE * 2 ** min(max(0, attempts - 1), 16)
    return min(wait, BACKOFF_CAP)
