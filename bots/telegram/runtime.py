"""Telegram in one process: every connected bot's aiogram Bot, sender, webhook or poller, one worker.

One aiogram Dispatcher serves every bot (aiogram's multi-bot way: the Bot is passed
with each update, our bot's id and merchant with it). Bots added
or removed while running are picked up by `refresh()`, which runs on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramAPIError

from bots.dialog.delivery import deliver
from bots.dialog.dialog import Dialog
from bots.dialog.screens import Event, Reply
from bots.telegram import setup, updates
from bots.telegram.polling import Poller
from bots.telegram.processing import LiveBot, UpdateWorker
from bots.telegram.sender import TelegramSender
from bots.telegram.updates import BotScope
from bots.telegram.webhook import TelegramWebhook
from core.config import Settings
from core.ports import ChannelSender
from core.services import bots
from core.services.accounts import AccountState
from core.services.bots import BotInfo
from core.services.context import CoreContext
from core.services.outbox import wait_for_event

log = logging.getLogger("kartochka.telegram")
DeepLink = Callable[[str, str], Awaitable[str | None]]
STOP_SECONDS = 10.0


class SenderRegistry(Protocol):
    def register(self, bot_id: str, sender: ChannelSender) -> None: ...

    def unregister(self, bot_id: str) -> None: ...


class Messengers(Protocol):
    """What the runtime needs of app.messengers.Messengers."""

    @property
    def dialog(self) -> Dialog: ...

    @property
    def dispatcher(self) -> SenderRegistry: ...

    @property
    def deep_links(self) -> dict[str, DeepLink]: ...


class DialogInbound:
    """The dialog and the outgoing queue, as the aiogram handlers use them."""

    def __init__(self, dialog: Dialog) -> None:
        self.dialog = dialog

    async def handle(self, event: Event) -> tuple[AccountState, Reply]:
        return await self.dialog.handle(event)

    async def deliver(self, account: AccountState, reply: Reply) -> None:
        await deliver(self.dialog.deps, account, reply)


class TelegramRuntime:
    """Start: bots loaded, senders registered, webhooks set (or polling), the worker running."""

    def __init__(self, ctx: CoreContext, settings: Settings, messengers: Messengers, *,
                 receive: bool = True) -> None:
        self.ctx = ctx
        self.settings = settings
        self.messengers = messengers
        self.receive = receive
        self.dispatcher = Dispatcher(disable_fsm=True)
        self.dispatcher.include_router(updates.create_router())
        self.live: dict[str, LiveBot] = {}
        self.pollers: dict[str, asyncio.Task[None]] = {}
        self._pollers: dict[str, Poller] = {}
        self.worker = UpdateWorker(ctx, self.dispatcher, self.resolve, DialogInbound(messengers.dialog),
                                   poll_seconds=settings.telegram_worker_poll_seconds)
        self.webhook = TelegramWebhook(ctx, self.worker, self._bot_of)
        self._session: AiohttpSession | None = None
        self._poll_session: AiohttpSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._refreshing = asyncio.Lock()
        self._stop = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None

    @property
    def session(self) -> AiohttpSession:
        if self._session is None:
            self._session = setup.api_session(self.settings.telegram_api_url)
        return self._session

    async def start(self) -> None:
        self._stop.clear()
        self.messengers.deep_links["telegram"] = self.deep_link
        await self.refresh()
        if self.receive:
            self._tasks.append(asyncio.create_task(self.worker.run(), name="telegram-updates"))
        self._refresher = asyncio.create_task(self._refresh_loop(), name="telegram-bots")

    async def stop_receiving(self) -> None:
        """No new updates: the bot refresh, the pollers, then the update worker end (bounded).

        The refresh loop stops between rounds (so it adds no poller after this). The pollers
        stop between database calls: cancelled while waiting for Telegram, else once the
        updates in hand are stored (a cancel inside a database call can leave an aiosqlite
        connection closing forever); STOP_SECONDS to end. The worker is asked to stop: it finishes the
        updates in hand (bounded) and returns; only if it does not is it cancelled. A task
        still running after that is logged and left behind, never waited for. Senders stay
        registered for the messages still being sent.
        """
        self._stop.set()
        left: list[asyncio.Task[None]] = []
        refresher, self._refresher = self._refresher, None
        if refresher is not None and await _ended([refresher]):  # mid-round: it may add a poller
            refresher.cancel()
            left += await _ended([refresher])
        pollers = list(self.pollers.values())
        for poller in self._pollers.values():
            poller.stop()
        self.pollers.clear()
        self._pollers.clear()
        left += await _ended(pollers)
        workers, self._tasks = self._tasks, []
        self.worker.stop()
        late = await _ended(workers)
        for task in late:
            task.cancel()
        left += await _ended(late)
        if left:
            log.error("telegram tasks did not stop; left behind",
                      extra={"tasks": sorted(task.get_name() for task in left)})

    async def stop(self) -> None:
        """Stop receiving, unregister the senders, close the HTTP sessions."""
        await self.stop_receiving()
        for bot_id in list(self.live):
            self.messengers.dispatcher.unregister(bot_id)
        self.live.clear()
        for session in (self._session, self._poll_session):
            if session is not None:
                await session.close()
        self._session = self._poll_session = None

    async def refresh(self) -> None:
        """Serve every active Telegram bot in the database, and stop serving removed ones."""
        async with self._refreshing:
            active = {b.id: b for b in await bots.active_bots(self.ctx, "telegram")}
            for bot_id in [b for b in self.live if b not in active]:
                await self._drop(bot_id)
            for info in active.values():
                if info.id not in self.live:
                    try:
                        await self._add(info)
                    except Exception:  # one broken bot (say, an undecryptable token) spoils no other
                        log.exception("a telegram bot could not be started", extra={"bot_id": info.id})

    async def _refresh_loop(self) -> None:
        while True:
            await wait_for_event(self._stop, self.settings.telegram_refresh_seconds)
            if self._stop.is_set():
                return
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing telegram bots failed")

    async def _add(self, info: BotInfo) -> LiveBot | None:
        token = await bots.bot_token(self.ctx, info)
        if token is None:
            log.error("a telegram bot has no token; not served", extra={"bot_id": info.id})
            return None
        live = LiveBot(BotScope(info.id, info.merchant_id), setup.make_bot(token, self.session),
                       info.username)
        self.live[info.id] = live
        self.messengers.dispatcher.register(info.id, TelegramSender(live.bot, self.ctx.clock))
        if self.receive:
            await self._connect(live)
        return live

    async def _connect(self, live: LiveBot) -> None:
        """Webhook with PUBLIC_URL, else polling; Telegram unreachable now is retried by polling."""
        bot_id = live.scope.bot_id
        try:
            if self.settings.public_url:
                await setup.use_webhook(live.bot, setup.webhook_url(self.settings.public_url, bot_id),
                                        self.webhook.secret(bot_id))
                return
            await setup.use_polling(live.bot)
        except TelegramAPIError as exc:
            log.error("setting up telegram delivery failed",
                      extra={"bot_id": bot_id, "error": exc.message})
            if self.settings.public_url:
                return
        except Exception:
            log.exception("setting up telegram delivery failed", extra={"bot_id": bot_id})
            if self.settings.public_url:
                return
        if self._poll_session is None:
            self._poll_session = setup.api_session(self.settings.telegram_api_url, limit=0)
        poller = Poller(self.ctx, bot_id, setup.make_bot(live.bot.token, self._poll_session),
                        self.worker, timeout=self.settings.telegram_poll_seconds)
        self._pollers[bot_id] = poller
        self.pollers[bot_id] = asyncio.create_task(poller.run(), name=f"telegram-poll-{bot_id}")

    async def _drop(self, bot_id: str) -> None:
        self.live.pop(bot_id, None)
        self.messengers.dispatcher.unregister(bot_id)
        task = self.pollers.pop(bot_id, None)
        poller = self._pollers.pop(bot_id, None)
        if poller is not None:
            poller.stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def resolve(self, bot_id: str) -> LiveBot | None:
        """The bot an update came to; one added since the last refresh is loaded now."""
        if bot_id not in self.live:
            await self.refresh()
        return self.live.get(bot_id)

    def _bot_of(self, bot_id: str) -> Bot | None:
        live = self.live.get(bot_id)
        return live.bot if live is not None else None

    async def deep_link(self, bot_id: str, payload: str) -> str | None:
        """t.me/<bot>?start=<payload>: the link that starts a chat with a payload."""
        live = self.live.get(bot_id)
        username = live.username if live is not None else None
        if username is None:
            info = await bots.get_bot(self.ctx, bot_id)
            username = info.username if info is not None else None
        return f"https://t.me/{username}?start={payload}" if username else None

    def kick(self) -> None:
        self.worker.kick()

    async def process_pending(self) -> int:
        """Process what is stored now (the worker does this by itself; for tools and tests)."""
        return await self.worker.process_pending()


async def _ended(tasks: list[asyncio.Task[None]]) -> list[asyncio.Task[None]]:
    """Wait up to STOP_SECONDS for the tasks; log the ones that failed, return the ones still running."""
    if not tasks:
        return []
    done, pending = await asyncio.wait(tasks, timeout=STOP_SECONDS)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("a telegram task failed", exc_info=task.exception(),
                      extra={"task": task.get_name()})
    return list(pending)
