"""Stored platform updates: saved before we answer, claimed by a worker, kept a while against redelivery.

A (bot, key) already stored is a redelivery and is dropped. Keys are kept for a
time to live, not as "highest id seen": Telegram's update ids can jump.
Statuses: new -> processing -> done | retry (-> processing ...) | failed.
While a row is processing, `processed_at` says when it was claimed, so a row a
crashed process left behind is claimed again after STALE_AFTER.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.db.base import insert_columns, table_of
from core.db.models import InboundUpdate
from core.services.context import CoreContext

TTL = timedelta(hours=24)  # Telegram keeps an undelivered update for 24 hours
MAX_ATTEMPTS = 3
RETRY_AFTER = timedelta(seconds=30)
STALE_AFTER = timedelta(minutes=5)
ERROR_LENGTH = 2000


@dataclass(frozen=True)
class StoredUpdate:
    id: int
    bot_id: str
    key: str
    payload: dict[str, Any]
    attempts: int


def _store(insert: Any) -> Any:
    columns = ("bot_id", "key", "payload", "status", "attempts", "received_at", "processed_at",
               "expires_at")
    table = table_of(InboundUpdate)
    return (insert_columns(table, columns, make=insert)
            .on_conflict_do_nothing(index_elements=["bot_id", "key"]).returning(table.c.id))


# Built once (every update received runs it): by dialect, SQLite's and PostgreSQL's upsert.
_STORE = {True: _store(sqlite_insert), False: _store(pg_insert)}


async def store(
    ctx: CoreContext, bot_id: str, key: str, payload: dict[str, Any], *, ttl: timedelta = TTL,
    claim: bool = False,
) -> StoredUpdate | None:
    """Save an update before answering the platform; None when (bot, key) was already stored.

    `claim=True`: this process processes it at once (the row is saved `processing`, its
    first attempt); else it waits `new` for a worker's claim. One statement either way.
    """
    now = ctx.now()
    async with ctx.db.direct(write=True) as db:
        rows = await db.rows(_STORE[ctx.db.is_sqlite], {
            "bot_id": bot_id, "key": key, "payload": payload,
            "status": "processing" if claim else "new", "attempts": 1 if claim else 0,
            "received_at": now, "processed_at": now if claim else None,
            "expires_at": now + ttl})
    row_id = rows[0][0] if rows else None
    if row_id is None:  # a redelivery (or the same update twice at once: the other one won)
        return None
    return StoredUpdate(id=row_id, bot_id=bot_id, key=key, payload=payload, attempts=1 if claim else 0)


async def claim(ctx: CoreContext, limit: int = 50, *,
                stale_after: timedelta = STALE_AFTER) -> list[StoredUpdate]:
    """Take pending updates (oldest first) for processing in this process.

    A row `processing` for longer than `stale_after` was left by a crash (a process
    that starts alone, on SQLite, takes them all: `stale_after=timedelta(0)`).
    """
    now = ctx.now()
    due = or_(
        InboundUpdate.status == "new",
        and_(InboundUpdate.status == "retry",
             InboundUpdate.processed_at <= now - RETRY_AFTER),
        and_(InboundUpdate.status == "processing", InboundUpdate.processed_at <= now - stale_after),
    )
    async with ctx.uow() as uow:
        rows = list(await uow.session.scalars(
            select(InboundUpdate).where(due).order_by(InboundUpdate.id).limit(limit)
            .with_for_update(skip_locked=True)))
        if not rows:
            return []
        for row in rows:
            row.status, row.processed_at = "processing", now
            row.attempts += 1
        claimed = [StoredUpdate(id=r.id, bot_id=r.bot_id, key=r.key, payload=dict(r.payload),
                                attempts=r.attempts) for r in rows]
        await uow.commit()
    return claimed


async def mark_done(ctx: CoreContext, update_id: int) -> None:
    await mark_done_many(ctx, [update_id])


_UPDATES = table_of(InboundUpdate)
_DONE = (update(_UPDATES).where(_UPDATES.c.id == bindparam("_id"))
         .values(status="done", last_error=None, processed_at=bindparam("now"), payload={}))


async def mark_done_many(ctx: CoreContext, update_ids: list[int]) -> None:
    """Processed: only the keys are kept from now on (see `_finish`); one round trip for all."""
    now = ctx.now()
    async with ctx.db.direct(write=True) as db:  # asyncpg's executemany is atomic
        await db.run(_DONE, [{"_id": update_id, "now": now} for update_id in update_ids])


async def mark_failed(ctx: CoreContext, update_id: int, error: str, *, retry: bool = True) -> str:
    """Record a processing error: tried again later while attempts remain; returns the new status."""
    async with ctx.db.read() as session:
        attempts = await session.scalar(
            select(InboundUpdate.attempts).where(InboundUpdate.id == update_id))
    status = "retry" if retry and (attempts or 0) < MAX_ATTEMPTS else "failed"
    await _finish(ctx, update_id, status, error[:ERROR_LENGTH])
    return status


async def _finish(ctx: CoreContext, update_id: int, status: str, error: str | None) -> None:
    """Mark an update; once done, only its key is kept (for de-duplication), not the person's data.

    A raw update holds names, phones and messages: kept no longer than it takes to process
    it (152-FZ: no more than the purpose needs). A failed one keeps it for the retry.
    """
    values: dict[str, Any] = {"status": status, "last_error": error, "processed_at": ctx.now()}
    if status == "done":
        values["payload"] = {}
    async with ctx.uow() as uow:
        await uow.session.execute(update(InboundUpdate).where(InboundUpdate.id == update_id)
                                  .values(values))
        await uow.commit()


async def purge_expired(ctx: CoreContext) -> int:
    """Forget finished updates past their time to live (their keys may be used again)."""
    async with ctx.uow() as uow:
        result = await uow.session.execute(delete(InboundUpdate).where(
            InboundUpdate.expires_at < ctx.now(), InboundUpdate.status.in_(("done", "failed"))))
        await uow.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def get_update(ctx: CoreContext, bot_id: str, key: str) -> InboundUpdate | None:
    """One stored update (for checks and tests)."""
    async with ctx.db.read() as session:
        row: InboundUpdate | None = await session.scalar(select(InboundUpdate).where(
            InboundUpdate.bot_id == bot_id, InboundUpdate.key == key))
        return row


async def pending_count(ctx: CoreContext) -> int:
    """Updates not yet finished (new, processing or waiting for a retry)."""
    async with ctx.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(InboundUpdate).where(
            InboundUpdate.status.in_(("new", "processing", "retry"))))
        return int(count or 0)
