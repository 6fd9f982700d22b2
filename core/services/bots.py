"""Connected bots: add, list and remove; their tokens are merchant secrets, their webhook secret derived."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from core.db.models import Bot, MerchantSecret
from core.errors import Conflict, NotFound, ValidationFailed
from core.ids import new_id
from core.services.context import CoreContext
from core.services.merchants import get_secret, set_secret

CHANNELS = ("telegram", "vk", "max", "web")
# What Telegram accepts in secret_token (and what we accept in the header): 1-256 of [A-Za-z0-9_-].
WEBHOOK_SECRET_CHARS = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# Active bots as last read, for BOT_TTL seconds: every webhook call asks. A bot removed in
# this process is forgotten at once; one removed by another process within BOT_TTL.
BOT_TTL = 5.0
_ACTIVE: dict[str, tuple[float, BotInfo]] = {}


@dataclass(frozen=True)
class BotInfo:
    """A connected bot as adapters and the CLI see it (never with its token)."""

    id: str
    merchant_id: str
    channel: str
    username: str | None
    platform_bot_id: str | None
    status: str
    created_at: datetime

    @property
    def active(self) -> bool:
        return self.status == "active"


def _info(row: Bot) -> BotInfo:
    return BotInfo(id=row.id, merchant_id=row.merchant_id, channel=row.channel, username=row.username,
                   platform_bot_id=row.platform_bot_id, status=row.status, created_at=row.created_at)


def token_secret_name(bot_id: str) -> str:
    return f"bot:{bot_id}:token"


async def add_bot(
    ctx: CoreContext, merchant_id: str, channel: str, token: str | None, *,
    username: str | None = None, platform_bot_id: str | None = None,
) -> BotInfo:
    """Connect a bot; the same platform bot added again by its merchant gets its new token.

    A platform bot serves one merchant only (one webhook per bot on every platform).
    """
    if channel not in CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(CHANNELS)}")
    now = ctx.now()
    async with ctx.uow() as uow:
        row = None
        if platform_bot_id is not None:
            rows = list(await uow.session.scalars(select(Bot).where(
                Bot.channel == channel, Bot.platform_bot_id == platform_bot_id)))
            taken = [r for r in rows if r.merchant_id != merchant_id and r.status == "active"]
            if taken:
                raise Conflict(f"this {channel} bot is already connected to another merchant")
            row = next((r for r in rows if r.merchant_id == merchant_id), None)
        if row is None:
            row = Bot(id=new_id("bot"), merchant_id=merchant_id, channel=channel, created_at=now)
            uow.session.add(row)
        row.username, row.platform_bot_id = username, platform_bot_id
        row.status, row.removed_at = "active", None
        await uow.commit()
        info = _info(row)
        _ACTIVE.pop(info.id, None)
    if token is not None:
        await set_secret(ctx, merchant_id, token_secret_name(info.id), token)
    return info


async def list_bots(ctx: CoreContext, merchant_id: str) -> list[BotInfo]:
    """The merchant's connected bots (removed ones left out), oldest first."""
    async with ctx.db.read() as session:
        rows = await session.scalars(select(Bot).where(
            Bot.merchant_id == merchant_id, Bot.status == "active").order_by(Bot.created_at, Bot.id))
        return [_info(r) for r in rows]


async def active_bots(ctx: CoreContext, channel: str) -> list[BotInfo]:
    """Every merchant's active bots of one channel: what a process serves."""
    async with ctx.db.read() as session:
        rows = await session.scalars(select(Bot).where(
            Bot.channel == channel, Bot.status == "active").order_by(Bot.created_at, Bot.id))
        return [_info(r) for r in rows]


async def get_bot(ctx: CoreContext, bot_id: str) -> BotInfo | None:
    """An active bot by our id; None when unknown or removed (see BOT_TTL)."""
    hit = _ACTIVE.get(bot_id)
    if hit is not None and time.monotonic() - hit[0] < BOT_TTL:
        return hit[1]
    async with ctx.db.read() as session:
        row = await session.get(Bot, bot_id)
        info = _info(row) if row is not None and row.status == "active" else None
    if info is None:  # unknown ids are not kept: anyone can make them up
        _ACTIVE.pop(bot_id, None)
    else:
        _ACTIVE[bot_id] = (time.monotonic(), info)
    return info


async def bot_token(ctx: CoreContext, bot: BotInfo) -> str | None:
    return await get_secret(ctx, bot.merchant_id, token_secret_name(bot.id))


async def remove_bot(ctx: CoreContext, merchant_id: str, bot_id: str) -> BotInfo:
    """Disconnect a bot: its webhook answers 404 from now on and its token is deleted."""
    async with ctx.uow() as uow:
        row = await uow.session.get(Bot, bot_id)
        if row is None or row.merchant_id != merchant_id or row.status != "active":
            raise NotFound(f"no bot {bot_id!r} for this merchant")
        row.status, row.removed_at = "removed", ctx.now()
        await uow.session.execute(delete(MerchantSecret).where(
            MerchantSecret.merchant_id == merchant_id,
            MerchantSecret.name == token_secret_name(bot_id)))
        await uow.commit()
        _ACTIVE.pop(bot_id, None)  # after the commit: a read meanwhile may have cached it
        return _info(row)


def webhook_secret(ctx: CoreContext, bot_id: str) -> str:
    """The secret the platform sends back with every webhook call; derived, never stored."""
    secret = ctx.secrets.sign(b"telegram-webhook", bot_id.encode())[:256]
    assert WEBHOOK_SECRET_CHARS.match(secret)  # hex digits: always in the allowed set
    return secret
