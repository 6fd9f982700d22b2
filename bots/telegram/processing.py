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
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from pydantic import ValidationError

from bots.telegram.updates import BotScope, Inbound
from core.services import updates
from core.services.context import CoreContext
from core.services.group_commit import GroupCommit
from core.services.outbox import wait_for_event
from core.services.updates import StoredUpdate

log = logging.getLogger("kartochka.telegram")
PURGE_EVERY_SECONDS = 3600.0
FINISH_SECONDS = 4.0  # at a stop, for the updates in hand (then they are cancelled)
DONE_RETRY_PAUSES = (0.2, 1.0)


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
    """Processes stored updates: the ones this process just received at once, the rest by claim.

    An update arriving at this process is stored already claimed and handed over in memory
    (`take`): no round trip to find it again. The table is polled every few seconds, and
    kicked, for what that path did not take: updates other processes stored, retries, what
    came while this worker was full or not running, and what a crash left behind.
    Each chat's updates go strictly in order (one task per chat with work), chats
    concurrently, at most `max_chats` at a time.
    """

    def __init__(self, ctx: CoreContext, dispatcher: Dispatcher, resolve: Resolve, inbound: Inbound,
                 *, poll_seconds: float = 5.0, batch: int = 50, max_chats: int = 32,
                 max_inflight: int = 256) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher
        self.resolve = resolve
        self.inbound = inbound
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.max_inflight = max_inflight
        self._slots = asyncio.Semaphore(max_chats)
        self._queues: dict[tuple[str, str], deque[tuple[StoredUpdate, Update | None]]] = {}
        self._in_hand: set[int] = set()  # ids of the stored updates queued or being processed here
        self._chats: set[asyncio.Task[None]] = set()
        self._inflight = 0
        self._running = False
        self._behind = False  # something waits in the table that only a claim will find
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._purged_at = 0.0
        self._done: GroupCommit[int] = GroupCommit(partial(updates.mark_done_many, ctx))

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Ask `run()` to return: the updates in hand are finished first (bounded)."""
        self._stop.set()
        self._wake.set()

    async def take(self, bot_id: str, key: str, payload: dict[str, Any],
                   update: Update | None = None) -> bool:
        """Store an update that arrived now; False when it was a redelivery.

        While the worker runs and has room, the row is stored claimed and processed here
        at once; otherwise it waits in the table for a claim.
        """
        # Not while older updates wait in the table: they go first (a chat keeps its order).
        now = self._running and not self._behind and self._inflight < self.max_inflight
        stored = await updates.store(self.ctx, bot_id, key, payload, claim=now)
        if stored is None:
            return False
        if now:
            self.submit(stored, update)
        else:
            self._behind = True
            self.kick()
        return True

    def submit(self, stored: StoredUpdate, update: Update | None = None) -> None:
        """Queue a claimed update behind its chat's earlier ones (one already in hand is not)."""
        if stored.id in self._in_hand:  # claimed again as stale while it waited here
            return
        self._in_hand.add(stored.id)
        chat = (stored.bot_id, chat_of(stored.payload))
        self._inflight += 1
        queue = self._queues.get(chat)
        if queue is not None:
            queue.append((stored, update))
            return
        self._queues[chat] = deque([(stored, update)])
        task = asyncio.create_task(self._drain_chat(chat), name=f"telegram-chat-{chat[1]}")
        self._chats.add(task)
        task.add_done_callback(self._chats.discard)

    async def _drain_chat(self, chat: tuple[str, str]) -> None:
        queue = self._queues[chat]
        try:
            while queue:
                stored, update = queue[0]
                try:
                    async with self._slots:
                        await self.process(stored, update)
                except Exception:  # logged; the chat's later updates still go
                    log.exception("a telegram update was left unfinished",
                                  extra={"bot_id": stored.bot_id, "update_key": stored.key})
                queue.popleft()
                self._in_hand.discard(stored.id)
                self._inflight -= 1
        finally:  # cancelled at shutdown: the rest stays `processing`, claimed again later
            self._inflight -= len(queue)
            self._in_hand.difference_update(stored.id for stored, _ in queue)
            del self._queues[chat]
            if self._behind:
                self.kick()

    async def idle(self) -> None:
        """Until every update handed over so far is processed."""
        while self._chats:
            await asyncio.gather(*list(self._chats), return_exceptions=True)

    async def run(self) -> None:
        """Claim what the table holds for us, until `stop()`; then finish what is in hand."""
        stale = timedelta(0) if self.ctx.db.is_sqlite else updates.STALE_AFTER  # SQLite: one process
        try:
            while not self._stop.is_set():
                self._wake.clear()  # a kick from here on means: rows stored for a claim meanwhile
                try:
                    room = self.max_inflight - self._inflight
                    claimed = await updates.claim(self.ctx, min(self.batch, room), stale_after=stale) \
                        if room > 0 else []
                    stale = updates.STALE_AFTER
                    self._running = True
                    for stored in claimed:
                        self.submit(stored)
                    # Still behind: no room, a full batch, or rows stored for a claim meanwhile.
                    self._behind = room <= 0 or len(claimed) == self.batch or self._wake.is_set()
                    if time.monotonic() - self._purged_at > PURGE_EVERY_SECONDS:
                        self._purged_at = time.monotonic()
                        await updates.purge_expired(self.ctx)
                except Exception:
                    log.exception("processing stored telegram updates failed; will try again")
                    self._behind = False  # wait for the poll before the next try
                if self._behind and self._inflight < self.max_inflight:
                    await asyncio.sleep(0)
                    continue
                await wait_for_event(self._wake, self.poll_seconds)
        finally:
            self._running = False
            await self._finish_in_hand()
            self._stop.clear()

    async def _finish_in_hand(self) -> None:
        if self._chats:
            _, late = await asyncio.wait(list(self._chats), timeout=FINISH_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=FINISH_SECONDS)
        with contextlib.suppress(TimeoutError):  # "done" marks still being written
            async with asyncio.timeout(FINISH_SECONDS):
                await self._done.drain()

    async def process_pending(self) -> int:
        """Claim a batch and process it (for tools and tests); returns how many were claimed."""
        claimed = await updates.claim(self.ctx, self.batch)
        for stored in claimed:
            self.submit(stored)
        await self.idle()
        return len(claimed)

    async def process(self, stored: StoredUpdate, update: Update | None = None) -> None:
        """Feed one stored update to aiogram; whatever happens, the row gets an outcome."""
        context = {"bot_id": stored.bot_id, "update_key": stored.key, "attempt": stored.attempts}
        try:
            live = await self.resolve(stored.bot_id)
            if live is None:
                await updates.mark_failed(self.ctx, stored.id, "the bot is not connected", retry=False)
                return
            if update is None or update.bot is not live.bot:
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
        await self._mark_done(stored, context)

    async def _mark_done(self, stored: StoredUpdate, context: dict[str, Any]) -> None:
        """Processed: marked done, tried again a few times if the database is away a moment."""
        for pause in (*DONE_RETRY_PAUSES, None):
            try:
                await self._done.add(stored.id)
                return
            except Exception:
                if pause is None:
                    log.exception("marking a processed telegram update failed; it will be "
                                  "processed again when its claim is stale", extra=context)
                    return
                log.warning("marking a processed telegram update failed; trying again",
                            extra=context)
                await asyncio.sleep(pause)


def _known(update: Update) -> bool:
    try:
        update.event_type  # noqa: B018 - raises for an update of a type aiogram does not know
    except UpdateTypeLookupError:
        return False
    return True
