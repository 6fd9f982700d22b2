"""Processing stored updates: claim pending rows, feed each to aiogram, mark the outcome.

One worker per process. A chat's updates go strictly in order; different chats
concurrently. An exception marks the update for a retry (a few times, then
failed) and never stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from pydantic import ValidationError

from bots.telegram.updates import BotScope, Inbound
from core.services import updates
from core.services.context import CoreContext
from core.services.updates import StoredUpdate

log = logging.getLogger("kartochka.telegram")
PURGE_EVERY_SECONDS = 3600.0


@dataclass(frozen=True)
class LiveBot:
    """A connected bot as this process serves it."""

    scope: BotScope
    bot: Bot
    username: str | None


Resolve = Callable[[str], Awaitable[LiveBot | None]]


def chat_of(payload: dict[str, Any]) -> str:
    """Which conversation an update belongs to (its order matters within it)."""
    for kind in ("message", "edited_message", "my_chat_member"):
        chat = (payload.get(kind) or {}).get("chat") or {}
        if "id" in chat:
            return str(chat["id"])
    sender = (payload.get("callback_query") or {}).get("from") or {}
    return str(sender.get("id", payload.get("update_id")))


class UpdateWorker:
    """Drains stored updates on every kick, and every few seconds for rows other processes stored."""

    def __init__(self, ctx: CoreContext, dispatcher: Dispatcher, resolve: Resolve, inbound: Inbound,
                 *, poll_seconds: float = 5.0, batch: int = 50) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher
        self.resolve = resolve
        self.inbound = inbound
        self.poll_seconds = poll_seconds
        self.batch = batch
        self._wake = asyncio.Event()
        self._purged_at = 0.0

    def kick(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                while await self.process_pending():
                    pass
                if time.monotonic() - self._purged_at > PURGE_EVERY_SECONDS:
                    self._purged_at = time.monotonic()
                    await updates.purge_expired(self.ctx)
            except Exception:
                log.exception("processing stored telegram updates failed; will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            self._wake.clear()

    async def process_pending(self) -> int:
        """One round: claim a batch, process it (chats concurrently); returns how many were claimed."""
        claimed = await updates.claim(self.ctx, self.batch)
        by_chat: dict[tuple[str, str], list[StoredUpdate]] = {}
        for stored in claimed:
            by_chat.setdefault((stored.bot_id, chat_of(stored.payload)), []).append(stored)
        await asyncio.gather(*(self._process_chat(rows) for rows in by_chat.values()))
        return len(claimed)

    async def _process_chat(self, rows: list[StoredUpdate]) -> None:
        for stored in rows:
            await self.process(stored)

    async def process(self, stored: StoredUpdate) -> None:
        """Feed one stored update to aiogram; whatever happens, the row gets an outcome."""
        context = {"bot_id": stored.bot_id, "update_key": stored.key, "attempt": stored.attempts}
        try:
            live = await self.resolve(stored.bot_id)
            if live is None:
                await updates.mark_failed(self.ctx, stored.id, "the bot is not connected", retry=False)
                return
            try:
                update = Update.model_validate(stored.payload, context={"bot": live.bot})
            except ValidationError as exc:
                await updates.mark_failed(self.ctx, stored.id, f"not an update: {exc}", retry=False)
                return
            if _known(update):
                await self.dispatcher.feed_update(live.bot, update, scope=live.scope,
                                                  inbound=self.inbound)
            else:  # a Bot API newer than our aiogram: nothing we could answer anyway
                log.info("telegram update of an unknown type ignored", extra=context)
        except Exception as exc:
            log.exception("a telegram update failed", extra=context)
            try:
                status = await updates.mark_failed(self.ctx, stored.id, f"{type(exc).__name__}: {exc}")
                log.info("telegram update marked", extra={**context, "status": status})
            except Exception:
                log.exception("marking a failed update failed", extra=context)
            return
        await updates.mark_done(self.ctx, stored.id)


def _known(update: Update) -> bool:
    try:
        update.event_type  # noqa: B018 - raises for an update of a type aiogram does not know
    except UpdateTypeLookupError:
        return False
    return True
