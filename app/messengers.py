"""The messenger side of a process: media store, send limits, the dispatcher, SMS, the dialog.

Channel adapters get it as `core.messengers`: they turn platform updates into events
for `dialog.handle(event)`, queue the reply with `bots.dialog.delivery.deliver(...)`,
register their bot's sender with `dispatcher.register(bot_id, sender)`, and their
deep-link form in `deep_links[channel]`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.gateways import build_sms_gateway
from bots.dialog.build import build_dialog
from bots.dialog.dialog import Dialog, DialogDeps
from bots.dialog.notifications import Notifications
from core.config import Settings
from core.db.uow import OUTGOING
from core.ports import RateLimiter, SmsGateway
from core.services.context import CoreContext
from core.services.dispatcher import Dispatcher
from core.services.limiter import CHANNEL_LIMITS, InProcessLimiter
from core.services.media import DbMediaStore
from core.services.otp import OtpPolicy
from core.services.outbox import Outbox
from core.services.outgoing import bot_channel

DeepLinkFn = Callable[[str, str], Awaitable[str | None]]  # (bot_id, payload) -> link


@dataclass
class Messengers:
    """What every channel adapter shares in one process."""

    media: DbMediaStore
    limiters: dict[str, RateLimiter]  # by channel; empty when the limit is lifted
    dispatcher: Dispatcher
    sms: SmsGateway
    dialog: Dialog
    deps: DialogDeps
    notifications: Notifications
    deep_links: dict[str, DeepLinkFn] = field(default_factory=dict)

    async def close(self) -> None:
        close = getattr(self.sms, "close", None)
        if close is not None:
            await close()

    @property
    def limiter(self) -> RateLimiter | None:
        """Telegram's limiter (None when lifted)."""
        return self.limiters.get("telegram")


def build_messengers(ctx: CoreContext, settings: Settings, outbox: Outbox) -> Messengers:
    """Wire the messenger side; the dispatcher runs with the other background tasks."""
    media = DbMediaStore(ctx)
    limiters: dict[str, RateLimiter] = {}
    if settings.send_rate_limit:
        limiters = {channel: InProcessLimiter(limits) for channel, limits in CHANNEL_LIMITS.items()}
    dispatcher = Dispatcher(ctx, media, limiters, max_chats=settings.send_concurrency)
    ctx.on_commit(OUTGOING, dispatcher.kick)
    sms = build_sms_gateway(settings, ctx)
    deep_links: dict[str, DeepLinkFn] = {}

    async def deep_link(bot_id: str, payload: str) -> str | None:
        channel = await bot_channel(ctx, bot_id)
        make = deep_links.get(channel) if channel is not None else None
        return await make(bot_id, payload) if make is not None else None

    deps = DialogDeps(ctx=ctx, sms=sms, media=media, deep_link=deep_link,
                      public_url=settings.public_url,
                      trust_client_ip=settings.trusted_proxy, otp=OtpPolicy.from_settings(settings),
                      outgoing=dispatcher)
    notifications = Notifications(ctx, sms, settings.quiet_hours_start, settings.quiet_hours_end)
    outbox.register("notifications", notifications.handle, prepare=notifications.prepare)
    return Messengers(media=media, limiters=limiters, dispatcher=dispatcher, sms=sms,
                      dialog=build_dialog(deps), deps=deps, notifications=notifications,
                      deep_links=deep_links)
