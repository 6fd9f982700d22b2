"""The Dispatcher: one per process, it sends the due outgoing rows of the bots registered here.

See core.services.outgoing for the queue itself (rows, priorities, statuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from core.ports import ChannelSender, MediaStore, OutgoingEnvelope, RateLimiter, SendResult
from core.services.context import CoreContext
from core.services.group_commit import GroupCommit
from core.services.outbox import wait_for_event
from core.services.outgoing import MAX_ATTEMPTS, STALE_CLAIM, backoff
from core.services.outgoing_claim import (
    Claimed,
    Outcome,
    claim_due,
    mark_many,
    recover_stale,
    return_to_queue,
)

log = logging.getLogger("kartochka.outgoing")
SHUTDOWN_GRACE_SECONDS = 10.0
CANCEL_GRACE_SECONDS = 2.0
MARK_RETRY_PAUSES = (0.2, 1.0, 3.0)  # a result is written again after these pauses before giving up


class Dispatcher:
    """Drains due rows of the bots registered here, in priority order, chats concurrently."""

    def __init__(self, ctx: CoreContext, media: MediaStore,
                 limiters: Mapping[str, RateLimiter] | None = None, *, max_chats: int = 64,
                 batch: int = 200, per_chat: int = 10, poll_seconds: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.ctx = ctx
        self.media = media
        self.limiters = dict(limiters or {})  # channel -> limiter; a channel without one is free
        self.max_chats = max_chats
        self.batch = batch
        self.per_chat = per_chat
        self.poll_seconds = poll_seconds
        self.monotonic = monotonic
        self.sleep = sleep
        self.senders: dict[str, ChannelSender] = {}
        self._busy: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[int]] = set()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._claiming = asyncio.Lock()
        self._stopping = False
        self._running = False
        # Chats that were busy when rows were queued (a claim skips busy chats): look again when
        # each frees. `_full`: a claim had no room for every chat: look again when any frees.
        self._recheck: set[tuple[str, str]] = set()
        self._full = False
        self._marks: GroupCommit[Outcome] = GroupCommit(partial(mark_many, ctx))

    def register(self, bot_id: str, sender: ChannelSender) -> None:
        self.senders[bot_id] = sender

    def unregister(self, bot_id: str) -> None:
        self.senders.pop(bot_id, None)

    async def kick(self) -> None:
        """Something was queued: look for due rows now (and again when a busy chat frees)."""
        self._wake.set()
        self._recheck |= self._busy

    def reserve(self, bot_id: str, chat_id: str) -> bool:
        """Hold a chat for messages about to be saved claimed (see `enqueue`); False: no room."""
        chat = (bot_id, chat_id)
        if (not self._running or self._stopping or bot_id not in self.senders or chat in self._busy
                or len(self._busy) >= self.max_chats):
            if chat in self._busy:  # the messages go to the table: look when the chat frees
                self._recheck.add(chat)
            else:
                self._full = True
            return False
        self._busy.add(chat)
        return True

    def release(self, bot_id: str, chat_id: str) -> None:
        self._busy.discard((bot_id, chat_id))

    async def start(self, rows: list[Claimed]) -> None:
        """Send rows saved claimed for a reserved chat; if stopped meanwhile, they are queued."""
        if not self._running or self._stopping:
            self.release(rows[0].bot_id, rows[0].chat_id)
            await return_to_queue(self.ctx, [row.id for row in rows])
            self._wake.set()
            return
        task = asyncio.create_task(self._send_chat(rows))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def drain_once(self) -> int:
        """Claim what is due now, send it, and wait; returns how many rows got a result."""
        chats = await self._claim()
        done = await asyncio.gather(*(self._send_chat(rows) for rows in chats))
        return sum(done)

    async def run(self) -> None:
        """Until `stop()` (or cancelled): claim due rows on every kick (and every poll), send them.

        A stop is seen between database calls; then the messages being sent get
        SHUTDOWN_GRACE_SECONDS to finish and be marked, and the rest goes back to the queue.
        """
        recovered_at = self.monotonic()
        try:
            await self._recover(everything=self.ctx.db.is_sqlite)
            self._running = True
            while not self._stop.is_set():
                if self.monotonic() - recovered_at > STALE_CLAIM.total_seconds():
                    recovered_at = self.monotonic()
                    await self._recover(everything=False)
                await wait_for_event(self._wake, self.poll_seconds)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    chats = await self._claim()
                except Exception:
                    log.exception("claiming outgoing messages failed")
                    continue
                for rows in chats:
                    task = asyncio.create_task(self._send_chat(rows))
                    self._tasks.add(task)
                    task.add_done_callback(self._finished)
        finally:
            # Let messages being sent finish and be marked (a row cut short between send
            # and mark would count as interrupted); the rest of each chat goes back.
            self._running = False
            self._stopping = True
            try:
                if self._tasks:
                    await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE_SECONDS)
            finally:
                late = list(self._tasks)
                for task in late:
                    task.cancel()
                if late:  # bounded: a send that ignores its cancel is left behind, not waited for
                    await asyncio.wait(late, timeout=CANCEL_GRACE_SECONDS)
                with contextlib.suppress(TimeoutError):  # results still being written
                    async with asyncio.timeout(CANCEL_GRACE_SECONDS):
                        await self._marks.drain()
                self._stopping = False
                self._stop.clear()

    def stop(self) -> None:
        """Ask `run()` (running or about to start) to stop claiming and return (see `run`)."""
        self._stop.set()
        self._wake.set()

    async def _recover(self, *, everything: bool) -> None:
        """Rows a crash left `sending`: on SQLite (one process) all of them at start."""
        now = self.ctx.now()
        try:
            count = await recover_stale(self.ctx, now if everything else now - STALE_CLAIM)
        except Exception:
            log.exception("recovering interrupted outgoing messages failed")
            return
        if count:
            log.warning("outgoing messages interrupted while sending", extra={"count": count})

    def _finished(self, task: asyncio.Task[int]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sending to a chat failed", exc_info=task.exception())

    async def _claim(self) -> list[list[Claimed]]:
        free = self.max_chats - len(self._busy)
        if free <= 0:
            self._full = True
        if not self.senders or free <= 0:
            return []
        async with self._claiming:
            self._full = False
            now = self.ctx.now()
            chats = await claim_due(self.ctx, set(self.senders), self._busy, now, chats=free,
                                    batch=self.batch, per_chat=self.per_chat,
                                    stale_before=now - STALE_CLAIM)
            for rows in chats:
                self._busy.add((rows[0].bot_id, rows[0].chat_id))
            if len(chats) == free:  # perhaps more than there was room for
                self._full = True
            return chats

    async def _send_chat(self, rows: list[Claimed]) -> int:
        """One chat's rows, strictly in order; a retry puts the rest back behind it.

        Whatever fails here, no row is left `sending` that was not handed to the platform:
        the rows not yet tried go back to the queue. Only a row whose outcome could not be
        written stays `sending` (it may have arrived); STALE_CLAIM later marks it interrupted.
        """
        chat = (rows[0].bot_id, rows[0].chat_id)
        done = 0
        untried = 0  # rows[untried:] were never handed to a sender
        try:
            for index, row in enumerate(rows):
                result = None if self._stopping else await self._send_one(row)
                if result is None:  # stopping, or the bot's sender went away: the rest waits
                    break
                untried = index + 1
                await self._mark(row, result)
                done += 1
                if result.status == "blocked":
                    for later in rows[index + 1:]:
                        later.blocked = True
                if result.status == "retry":
                    break
            else:
                untried = len(rows)
            return done
        finally:
            try:  # a row cut short inside the sender stays `sending`: never re-sent blindly
                await return_to_queue(self.ctx, [r.id for r in rows[untried:] if not r.handed])
            except Exception:
                log.exception("returning unsent messages to the queue failed",
                              extra={"bot_id": chat[0], "count": len(rows) - untried})
            finally:
                self._busy.discard(chat)
                if chat in self._recheck or self._full:  # rows may wait that a claim skipped
                    self._recheck.discard(chat)
                    self._wake.set()

    async def _send_one(self, row: Claimed) -> SendResult | None:
        if row.blocked:
            return SendResult.blocked("the account has blocked the bot")
        sender = self.senders.get(row.bot_id)
        if sender is None:
            return None
        media: dict[str, bytes] = {}
        image = row.body.get("image")
        if image:
            try:
                found = await self.media.get(row.merchant_id, image["media_id"])
            except Exception as exc:  # the database away for a moment: not sent, try again
                log.warning("reading an image to send failed", exc_info=exc,
                            extra={"outgoing_id": row.id})
                return SendResult.retry(self.ctx.now(), f"reading the image failed: {type(exc).__name__}")
            if found is None:
                return SendResult.failed("the image is gone")
            media[image["media_id"]] = found[1]
        await self._wait_turn(row)
        envelope = OutgoingEnvelope(id=row.id, merchant_id=row.merchant_id, bot_id=row.bot_id,
                                    chat_id=row.chat_id, body=row.body, media=media,
                                    attempts=row.attempts)
        row.handed = True
        try:
            return await sender.send(envelope)
        except Exception as exc:  # a sender bug: never lose the row, never spin on it
            log.exception("sender raised", extra={"outgoing_id": row.id, "bot_id": row.bot_id})
            return SendResult.retry(self.ctx.now(), f"sender raised {type(exc).__name__}")

    async def _wait_turn(self, row: Claimed) -> None:
        limiter = self.limiters.get(row.channel)
        if limiter is None:
            return
        while (wait := limiter.delay(row.bot_id, row.chat_id, self.monotonic())) > 0:
            await self.sleep(wait)
        limiter.take(row.bot_id, row.chat_id, self.monotonic())

    async def _mark(self, row: Claimed, result: SendResult) -> None:
        """Write the sender's result on the row (and the account, when it blocked us)."""
        now = self.ctx.now()
        values: dict[str, Any]
        if result.status == "sent":
            values = {"status": "sent", "platform_message_id": result.platform_message_id,
                      "sent_at": now, "error": None}
        elif result.status == "retry":
            attempts = row.attempts + 1
            if attempts >= MAX_ATTEMPTS:
                values = {"status": "failed", "attempts": attempts,
                          "error": f"gave up after {attempts} attempts: {result.reason}"[:500]}
            else:
                due = max(result.retry_at or now, now + backoff(attempts))
                values = {"status": "queued", "attempts": attempts, "not_before": due,
                          "error": (result.reason or "retry")[:500]}
        elif result.status == "blocked":
            values = {"status": "blocked", "error": (result.reason or "blocked")[:500]}
        else:
            values = {"status": "failed", "error": (result.reason or "failed")[:500]}
        outcome = (row, values, result.status == "blocked", now)
        for pause in MARK_RETRY_PAUSES:
            try:
                await self._marks.add(outcome)
                return
            except Exception as exc:
                log.warning("writing a send result failed; trying again", exc_info=exc,
                            extra={"outgoing_id": row.id, "status": result.status})
                await self.sleep(pause)
        await self._marks.add(outcome)  # the last try: its error ends this chat's round
