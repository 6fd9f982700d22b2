"""Long polling (no PUBLIC_URL): getUpdates per bot, each update stored exactly like a webhook's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramConflictError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods import GetUpdates

from bots.telegram.setup import ALLOWED_UPDATES
from bots.telegram.webhook import Intake
from core.services.context import CoreContext

log = logging.getLogger("kartochka.telegram.polling")
BACKOFF_CAP_SECONDS = 60.0
UNAUTHORIZED_PAUSE_SECONDS = 600.0


class Poller:
    """Polls one bot until cancelled; an update is confirmed to Telegram only after it is stored."""

    def __init__(self, ctx: CoreContext, bot_id: str, bot: Bot, intake: Intake, *,
                 timeout: int = 25) -> None:
        self.ctx = ctx
        self.bot_id = bot_id
        self.bot = bot
        self.intake = intake
        self.timeout = timeout
        self.offset: int | None = None
        self._task: asyncio.Task[Any] | None = None
        self._stopping = False
        self._storing = False

    def stop(self) -> None:
        """Stop between database calls: at once while waiting for Telegram, else once the
        updates in hand are stored (a task cancelled inside a database call can leave its
        connection half closed)."""
        self._stopping = True
        if not self._storing and self._task is not None:
            self._task.cancel()

    async def run(self) -> None:
        self._task = asyncio.current_task()
        failures = 0
        while not self._stopping:
            try:
                await self.poll_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except TelegramRetryAfter as exc:
                await asyncio.sleep(exc.retry_after)
            except TelegramUnauthorizedError:
                log.error("telegram refused the bot's token; polling paused", extra={"bot_id": self.bot_id})
                await asyncio.sleep(UNAUTHORIZED_PAUSE_SECONDS)
            except TelegramConflictError:  # a webhook is set (another process, or a failed delete)
                failures += 1
                log.warning("telegram refuses polling while a webhook is set; removing it",
                            extra={"bot_id": self.bot_id})
                with contextlib.suppress(Exception):
                    await self.bot.delete_webhook(drop_pending_updates=False)
                await asyncio.sleep(min(2.0 ** failures, BACKOFF_CAP_SECONDS))
            except Exception as exc:
                failures += 1
                log.error("polling telegram failed", exc_info=exc,
                        extra={"bot_id": self.bot_id, "failures": failures})
                await asyncio.sleep(min(2.0 ** failures, BACKOFF_CAP_SECONDS))

    async def poll_once(self) -> int:
        """One getUpdates; returns how many new updates were stored."""
        batch = await self.bot(GetUpdates(offset=self.offset, timeout=self.timeout,
                                          allowed_updates=ALLOWED_UPDATES),
                               request_timeout=self.timeout + 10)
        new = 0
        self._storing = True
        try:
            for update in batch:
                raw = update.model_dump(mode="json", exclude_none=True, by_alias=True)
                if await self.intake.take(self.bot_id, str(update.update_id), raw):
                    new += 1
                self.offset = update.update_id + 1  # only now: a crash before this re-reads it
        finally:
            self._storing = False
        return new
