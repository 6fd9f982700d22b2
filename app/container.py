"""Composition: Settings -> database -> core context -> outbox and scheduler."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy import text

from app.messengers import Messengers, build_messengers
from app.metrics import Metrics
from core.config import Settings
from core.db.engine import Database
from core.db.migrate import upgrade
from core.db.uow import EVENTS
from core.ports import Clock, SystemClock
from core.secrets_store import SecretBox, load_secret_key
from core.services import jobs
from core.services.apikeys import KeyAuthenticator
from core.services.context import CoreContext
from core.services.outbox import Outbox, StoredEvent, wait_for_event

log = logging.getLogger("kartochka.app")
LEADER_KEY = 0x6B617274  # "kart": the advisory lock of the one leader process
LEADER_RETRY_SECONDS = 10.0
STOP_GRACE_SECONDS = 15.0  # for the loops to finish the call in hand (the dispatcher takes up to 12)
CANCEL_GRACE_SECONDS = 5.0


@dataclass
class Core:
    settings: Settings
    ctx: CoreContext
    outbox: Outbox
    auth: KeyAuthenticator
    metrics: Metrics
    messengers: Messengers
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start_background(self) -> None:
        """The outbox drain and the scheduler: in this process, or in the one leader process.

        The outgoing dispatcher runs in every process: it sends for the bots registered here.
        """
        self._stop.clear()
        self.tasks.append(asyncio.create_task(self._lead(), name="leader"))
        self.tasks.append(asyncio.create_task(self.messengers.dispatcher.run(), name="dispatcher"))

    async def _lead(self) -> None:
        """Exactly one scheduler and one drain across processes: a PostgreSQL advisory lock.

        SQLite is one process by design, so it leads at once. On PostgreSQL the lock
        is held by a dedicated connection; if that process dies, another takes over.
        """
        if self.ctx.db.is_sqlite:
            await asyncio.gather(self.outbox.run(), self._scheduler())
            return
        while not self._stop.is_set():
            try:
                async with self.ctx.db.engine.connect() as conn:
                    if await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_KEY}):
                        log.info("this process runs the scheduler and the outbox drain")
                        await asyncio.gather(self.outbox.run(), self._scheduler())
                        # Stopped: hand over now (the pooled connection would keep the lock).
                        await conn.scalar(text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_KEY})
            except Exception:  # the database away for a moment: try again, do not stop leading for good
                log.exception("taking the leader lock failed")
            await wait_for_event(self._stop, LEADER_RETRY_SECONDS)

    async def _scheduler(self) -> None:
        while not self._stop.is_set():
            try:
                await jobs.run_due(self.ctx, self.ctx.now())
            except Exception:
                log.exception("scheduler round failed")
            await wait_for_event(self._stop, self.settings.scheduler_interval_seconds)

    async def stop_background(self) -> None:
        """Stop the background loops between database calls, within a bounded time.

        Each loop is asked to stop and returns when the call in hand is done (the
        dispatcher lets messages being sent be marked). Only a loop still busy after
        STOP_GRACE_SECONDS is cancelled: a task cancelled inside a database call leaves
        a half-closed connection behind (with aiosqlite, a close that never finishes,
        and an event loop that never closes), so that is the last resort, and a task
        that ignores even its cancel is left behind rather than waited for.
        """
        if not self.tasks:
            return
        self._stop.set()
        self.outbox.stop()
        self.messengers.dispatcher.stop()
        _, pending = await asyncio.wait(self.tasks, timeout=STOP_GRACE_SECONDS)
        if pending:
            log.warning("background tasks did not stop in time; cancelling them",
                        extra={"tasks": sorted(task.get_name() for task in pending)})
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)
            if pending:
                log.error("background tasks ignored their cancel; left behind",
                          extra={"tasks": sorted(task.get_name() for task in pending)})
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("a background task failed", exc_info=task.exception(),
                          extra={"task": task.get_name()})
        self.tasks.clear()
        log.info("background tasks stopped")

    async def close(self) -> None:
        """Background loops first, then the messenger side, then the database."""
        await self.stop_background()
        await self.messengers.close()
        await self.ctx.db.close()


async def build_core(settings: Settings, clock: Clock | None = None, *, migrate: bool = True) -> Core:
    """Everything the web app, the worker and the CLI share."""
    secret = load_secret_key(settings)
    db = Database(settings.database_url, pool_size=settings.db_pool_size,
                  busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    if migrate:
        await upgrade(db.engine)
    ctx = CoreContext(db=db, clock=clock or SystemClock(), secrets=SecretBox(secret))
    outbox = Outbox(ctx)
    ctx.on_commit(EVENTS, outbox.kick)
    metrics = Metrics()

    async def count_event(event: StoredEvent) -> None:
        metrics.events.labels(event.type).inc()

    outbox.register("metrics", count_event)
    auth = KeyAuthenticator(ctx, settings.api_key_cache_seconds)
    messengers = build_messengers(ctx, settings, outbox)
    return Core(settings=settings, ctx=ctx, outbox=outbox, auth=auth, metrics=metrics,
                messengers=messengers)
