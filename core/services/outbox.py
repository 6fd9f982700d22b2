"""Draining the event outbox: each named consumer sees every event once, in order.

Events are written in the transaction that caused them, so a rolled-back sale
has none. Progress is kept per consumer, so a consumer added later (wallet,
attribution) starts from the beginning and a slow one never holds back another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from core.db.base import table_of
from core.db.models import OutboxEvent, OutboxOffset
from core.db.uow import UnitOfWork
from core.services.context import CoreContext

log = logging.getLogger("kartochka.outbox")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One outbox event as its consumers get it (a plain record: read once, shared by all)."""

    id: int
    merchant_id: str
    customer_id: str | None
    type: str
    payload: dict[str, Any]
    occurred_at: datetime


EventHandler = Callable[[StoredEvent], Awaitable[None]]
# Called with each batch before its events are handled one by one: a consumer may load
# what the whole batch needs in a few queries (the drain keeps up under load).
BatchHook = Callable[[list[StoredEvent]], Awaitable[None]]
# An id gap younger than this may be a transaction still committing (PostgreSQL
# hands out ids before commit); older gaps are rollbacks and are skipped.
GAP_GRACE = timedelta(seconds=5)
BATCH = 200
# After a kick the drain waits this long for more: under a steady stream of sales one round
# hands on the events of several (a round costs a few queries, whatever its size); a notice
# is this much later, which no customer notices.
LINGER_SECONDS = 0.05
# Under a steady stream (the last kicked round ended less than BUSY_WITHIN ago) a kick gathers
# longer: at 200 sales a second, rounds every 50 ms were a third of the database's statements.
# A notice is then at most this much later; a quiet system still hands on in LINGER_SECONDS.
BUSY_LINGER_SECONDS = 0.25
BUSY_WITHIN = 1.0
_EVENTS = table_of(OutboxEvent)
_BATCH_AFTER = (select(_EVENTS.c.id, _EVENTS.c.merchant_id, _EVENTS.c.customer_id, _EVENTS.c.type,
                       _EVENTS.c.payload, _EVENTS.c.occurred_at)
                .where(_EVENTS.c.id > bindparam("after")).order_by(_EVENTS.c.id).limit(BATCH))
_OFFSETS = table_of(OutboxOffset)
_ADVANCE = (update(_OFFSETS)
            .where(_OFFSETS.c.consumer == bindparam("_consumer"),
                   _OFFSETS.c.last_event_id == bindparam("_old"))
            .values(last_event_id=bindparam("_new"), updated_at=bindparam("_at"))
            .returning(_OFFSETS.c.consumer))


class Outbox:
    """In-process drain; `kick()` after a commit, `run()` in the background."""

    def __init__(self, ctx: CoreContext, poll_seconds: float = 2.0,
                 linger_seconds: float = LINGER_SECONDS,
                 busy_linger_seconds: float = BUSY_LINGER_SECONDS) -> None:
        self.ctx = ctx
        self.poll_seconds = poll_seconds
        self.linger_seconds = linger_seconds
        self.busy_linger_seconds = busy_linger_seconds
        self.consumers: dict[str, EventHandler] = {}
        self.prepares: dict[str, BatchHook] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._gaps: dict[tuple[str, int], float] = {}

    def register(self, name: str, handler: EventHandler, *, prepare: BatchHook | None = None) -> None:
        self.consumers[name] = handler
        if prepare is not None:
            self.prepares[name] = prepare

    async def kick(self) -> None:
        self._wake.set()

    async def drain(self) -> int:
        """Hand every new event to every consumer; returns how many deliveries were made.

        Events committed while it runs are left to the next round: this process's kicked it
        (after its linger), another process's are found by the next poll.

        Consumers go in step: the batch after the position furthest behind is read once and
        handed to every consumer standing there, then dropped (one batch in memory, however
        long the backlog). A consumer leaves the round when it is up to date, fails, or
        meets a gap that may still fill; the others go on.
        """
        async with self._lock:
            delivered = 0
            positions = await self._positions()
            going = list(self.consumers)
            while going and not self._stop.is_set():  # a stop lets the batch in hand finish
                after = min(positions[name] for name in going)
                events = await self._read_after(after)
                if not events:
                    break  # the furthest behind is up to date, so is everyone
                for name in [name for name in going if positions[name] == after]:
                    position, handed, more = await self._hand_on(name, after, events)
                    delivered += handed
                    positions[name] = position
                    if not more:
                        going.remove(name)
                if len(events) < BATCH and all(positions[n] >= events[-1].id for n in going):
                    break  # every consumer still going has what was there: see the docstring
            return delivered

    async def _read_after(self, after: int) -> list[StoredEvent]:
        """The events after id `after`, at most BATCH, oldest first."""
        async with self.ctx.db.direct() as db:  # a round trip, not a session's three
            rows = await db.rows(_BATCH_AFTER, {"after": after})
        return [StoredEvent(*row) for row in rows]

    async def _hand_on(self, name: str, position: int, events: list[StoredEvent]
                       ) -> tuple[int, int, bool]:
        """One consumer through one batch: (its new position, events handed on, whether to
        go on this round)."""
        prepare = self.prepares.get(name)
        if prepare is not None:
            try:
                await prepare(events)
            except Exception:
                log.exception("outbox consumer failed to prepare a batch; will retry",
                              extra={"consumer": name, "event_id": events[0].id})
                return position, 0, False
        handle = self.consumers[name]
        start, handed, more = position, 0, True
        for event in events:
            if event.id != position + 1 and not self._gap_expired(name, position + 1):
                more = False
                break
            try:
                await handle(event)
            except Exception:
                log.exception("outbox consumer failed; will retry",
                              extra={"consumer": name, "event_id": event.id,
                                     "merchant_id": event.merchant_id})
                more = False
                break
            position = event.id
            handed += 1
        # Once per batch: a crash re-delivers at most one batch (consumers are idempotent).
        if position != start and not await self._advance(name, start, position):
            return position, handed, False  # another process moved it: next round reads it anew
        return position, handed, more

    def _gap_expired(self, name: str, missing: int) -> bool:
        """A missing id is waited for GAP_GRACE from when it was first noticed, then skipped.

        PostgreSQL hands out ids before commit, so a later id can be visible first;
        a gap that stays is a rolled-back transaction.
        """
        first_seen = self._gaps.setdefault((name, missing), time.monotonic())
        if time.monotonic() - first_seen < GAP_GRACE.total_seconds():
            return False
        del self._gaps[(name, missing)]
        return True

    async def _positions(self) -> dict[str, int]:
        """Where every consumer stands: one read per round (another process may have moved
        them); a consumer new to the database starts at 0."""
        async with self.ctx.db.read() as session:
            rows = (await session.execute(
                select(OutboxOffset.consumer, OutboxOffset.last_event_id))).all()
        found = {consumer: position for consumer, position in rows}
        missing = [name for name in self.consumers if name not in found]
        if missing:
            async with UnitOfWork(self.ctx.db) as uow:  # no after-commit kick: it would wake us
                for name in missing:
                    uow.session.add(OutboxOffset(consumer=name, last_event_id=0,
                                                 updated_at=self.ctx.now()))
                await uow.commit()
            found.update(dict.fromkeys(missing, 0))
        return found

    async def _advance(self, name: str, old: int, new: int) -> bool:
        """Move a consumer from `old` to `new`; False when it no longer stood at `old`."""
        async with self.ctx.db.direct(write=True) as db:  # one statement, its own transaction
            moved = await db.rows(_ADVANCE, {"_consumer": name, "_old": old, "_new": new,
                                             "_at": self.ctx.now()})
        return bool(moved)

    async def run(self) -> None:
        """Drain on every kick (gathering what comes within LINGER_SECONDS, or
        BUSY_LINGER_SECONDS while rounds follow each other), and every few seconds for events
        other processes wrote.

        Returns after `stop()`, between database calls: a task cancelled in the middle of
        one can leave its connection half closed (see app/container.py, Core.close).
        """
        last_kicked = -math.inf  # when the last round a kick started ended
        try:
            while not self._stop.is_set():
                await wait_for_event(self._wake, self.poll_seconds)
                kicked, linger = self._wake.is_set(), self.linger_seconds
                if linger and time.monotonic() - last_kicked < BUSY_WITHIN:
                    linger = max(linger, self.busy_linger_seconds)
                if linger and not self._stop.is_set():
                    await wait_for_event(self._stop, linger)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    await self.drain()
                except Exception:
                    log.exception("outbox drain failed")
                if kicked:  # a poll's round says nothing of how busy this process is
                    last_kicked = time.monotonic()
        finally:
            self._stop.clear()

    def stop(self) -> None:
        """Ask `run()` (running or about to start) to return once the batch in hand is handled."""
        self._stop.set()
        self._wake.set()


async def wait_for_event(event: asyncio.Event, seconds: float) -> None:
    """Until the event is set or `seconds` pass; a cancel is never lost.

    (`asyncio.wait_for` before Python 3.12 swallows a cancel that arrives as the event
    fires, and the loop around it then runs on after `task.cancel()`.)
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
