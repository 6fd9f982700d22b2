"""Claiming due outgoing rows for a dispatcher, and writing their outcome.

A chat is claimed only as a prefix of its queue: never while another of its rows is
being sent (here or in another process) or waits for a retry. Rows are picked in a
read (most rounds find nothing), then claimed in a write: on PostgreSQL they are
locked FOR UPDATE SKIP LOCKED and a chat another dispatcher holds any of is left
to it; on SQLite (one process) the write lock serialises the claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fastload
from core.db.base import table_of
from core.db.fastload import Reader
from core.db.models import Bot, ChannelAccount, OutgoingMessage
from core.db.outgoing_rows import QUEUED, chat_key
from core.db.uow import UnitOfWork
from core.services.context import CoreContext


@dataclass
class Claimed:
    """A row this process is sending now."""

    id: str
    merchant_id: str
    bot_id: str
    channel: str
    channel_account_id: str
    chat_id: str
    priority: int
    body: dict[str, Any]
    attempts: int
    blocked: bool
    handed: bool = False  # given to the sender: the platform may have it, whatever happens next


async def claim_due(ctx: CoreContext, bots: set[str], busy: set[tuple[str, str]], now: datetime,
                    *, chats: int, batch: int, per_chat: int,
                    stale_before: datetime) -> list[list[Claimed]]:
    """Mark due rows `sending` and return them grouped by chat, chats in priority order."""
    async with ctx.db.read() as session:  # most rounds find nothing: no write lock for them
        held = busy | await _waiting_chats(session, bots, now, stale_before)
        grouped = await _candidates(session, bots, held, now, batch)
    claimed = [rows[:per_chat] for rows in grouped.values()][:chats]
    if not claimed:
        return []
    async with UnitOfWork(ctx.db) as uow:
        claimed = await _still_ours(uow, claimed, stale_before)
        ids = [row.id for rows in claimed for row in rows]
        if ids:
            await uow.session.execute(update(OutgoingMessage).where(
                OutgoingMessage.id.in_(ids), OutgoingMessage.status == "queued")
                .values(status="sending", not_before=now))
        await uow.commit()
    return claimed


async def _waiting_chats(session: AsyncSession, bots: set[str], now: datetime,
                         stale_before: datetime) -> set[tuple[str, str]]:
    """Chats that must wait: a row being sent (by any dispatcher), or a retry not yet due.

    Nothing of such a chat may overtake that row.
    """
    found = await session.execute(
        select(OutgoingMessage.bot_id, OutgoingMessage.chat_id).distinct().where(
            OutgoingMessage.bot_id.in_(bots),
            or_(and_(OutgoingMessage.status == "sending",
                     OutgoingMessage.not_before >= stale_before),
                and_(OutgoingMessage.status == "queued", OutgoingMessage.attempts > 0,
                     OutgoingMessage.not_before > now))))
    return {(bot, chat) for bot, chat in found}


async def _candidates(session: AsyncSession, bots: set[str], held: set[tuple[str, str]],
                      now: datetime, batch: int) -> dict[tuple[str, str], list[Claimed]]:
    """Due rows of free chats, best first, grouped by chat (a chat's rows in queue order)."""
    query = (select(OutgoingMessage, ChannelAccount.blocked_at, Bot.channel)
             .join(ChannelAccount, ChannelAccount.id == OutgoingMessage.channel_account_id)
             .join(Bot, Bot.id == OutgoingMessage.bot_id)
             .where(OutgoingMessage.status == "queued", OutgoingMessage.not_before <= now,
                    OutgoingMessage.bot_id.in_(bots))
             .order_by(OutgoingMessage.priority, OutgoingMessage.created_at, OutgoingMessage.id)
             .limit(batch))
    if held:
        query = query.where(tuple_(OutgoingMessage.bot_id, OutgoingMessage.chat_id)
                            .not_in(sorted(held)))
    grouped: dict[tuple[str, str], list[Claimed]] = {}
    for row, blocked_at, channel in (await session.execute(query)).all():
        grouped.setdefault((row.bot_id, row.chat_id), []).append(Claimed(
            id=row.id, merchant_id=row.merchant_id, bot_id=row.bot_id, channel=channel,
            channel_account_id=row.channel_account_id, chat_id=row.chat_id,
            priority=row.priority, body=row.body, attempts=row.attempts,
            blocked=blocked_at is not None))
    return grouped


async def _still_ours(uow: UnitOfWork, claimed: list[list[Claimed]],
                      stale_before: datetime) -> list[list[Claimed]]:
    """Keep the chats whose rows are all still queued and ours (locked, on PostgreSQL), and
    that no other dispatcher has begun sending since our read (several processes)."""
    ids = [row.id for rows in claimed for row in rows]
    locked = set(await uow.session.scalars(
        select(OutgoingMessage.id).where(OutgoingMessage.id.in_(ids),
                                         OutgoingMessage.status == "queued")
        .with_for_update(skip_locked=True)))
    chats = {(rows[0].bot_id, rows[0].chat_id) for rows in claimed}
    sending = set((await uow.session.execute(
        select(OutgoingMessage.bot_id, OutgoingMessage.chat_id).where(
            OutgoingMessage.status == "sending", OutgoingMessage.not_before >= stale_before,
            tuple_(OutgoingMessage.bot_id, OutgoingMessage.chat_id).in_(sorted(chats))))).all())
    mine = [rows for rows in claimed
            if all(row.id in locked for row in rows)
            and (rows[0].bot_id, rows[0].chat_id) not in sending]
    # Try-locks, so no order is needed against deadlocks: a chat held elsewhere is left to it.
    return [rows for rows in mine if await lock_chat(uow.session, rows[0].bot_id, rows[0].chat_id,
                                                    sqlite=uow.db.is_sqlite)]


# Built once (each claim, and a keyed reply saved claimed, runs it; core.db.fastload).
_LOCK = select(func.pg_try_advisory_xact_lock(bindparam("key")))


async def lock_chat(reader: Reader, bot_id: str, chat_id: str, *, sqlite: bool) -> bool:
    """Hold a chat for this transaction, or False when another transaction holds it.

    On PostgreSQL a transaction-scoped advisory lock: the dispatchers of several processes
    (a claim, a reply saved already claimed) never start sending to one chat at once.
    SQLite has one writer at a time: nothing to take.
    """
    if sqlite:
        return True
    if not isinstance(reader, AsyncSession) and not reader.atomic:
        raise ValueError("a chat lock lasts for its transaction: take it in an atomic one")
    rows = await fastload.fetch_rows(reader, _LOCK, {"key": chat_key(bot_id, chat_id)})
    return bool(rows[0][0])


async def chat_has_queue(reader: Reader, bot_id: str, chat_id: str) -> bool:
    """Whether a chat has rows queued or being sent: nothing new may go before them."""
    return bool(await fastload.fetch_rows(reader, QUEUED, {"bot_id": bot_id, "chat_id": chat_id}))


async def return_to_queue(ctx: CoreContext, ids: Sequence[str]) -> None:
    """Claimed rows that were not tried: queued again as they were."""
    if not ids:
        return
    async with UnitOfWork(ctx.db) as uow:
        await uow.session.execute(update(OutgoingMessage).where(
            OutgoingMessage.id.in_(ids), OutgoingMessage.status == "sending")
            .values(status="queued"))
        await uow.commit()


async def recover_stale(ctx: CoreContext, before: datetime) -> int:
    """Rows left `sending` by a crash: failed, never silently re-sent (the platform may have it)."""
    async with UnitOfWork(ctx.db) as uow:
        result = await uow.session.execute(update(OutgoingMessage).where(
            OutgoingMessage.status == "sending", OutgoingMessage.not_before < before)
            .values(status="failed", error="interrupted while sending; not sent again"))
        await uow.commit()
    return int(getattr(result, "rowcount", 0) or 0)


Outcome = tuple[Claimed, dict[str, Any], bool, datetime]  # row, values, blocked, when


_OUTCOMES: dict[frozenset[str], Any] = {}  # the columns an outcome sets -> its UPDATE
_TABLE = table_of(OutgoingMessage)
_BLOCKED = (update(table_of(ChannelAccount))
            .where(table_of(ChannelAccount).c.id == bindparam("_account"),
                   table_of(ChannelAccount).c.blocked_at.is_(None))
            .values(blocked_at=bindparam("_when")))


def _outcome_update(columns: frozenset[str]) -> Any:
    """UPDATE of a row still `sending`, setting `columns` (built once per set of columns)."""
    stmt = _OUTCOMES.get(columns)
    if stmt is None:
        stmt = _OUTCOMES[columns] = (
            update(_TABLE).where(_TABLE.c.id == bindparam("_id"), _TABLE.c.status == "sending")
            .values({name: bindparam(name) for name in sorted(columns)}))
    return stmt


async def mark_many(ctx: CoreContext, outcomes: Sequence[Outcome]) -> None:
    """Rows' outcomes in one transaction (see core.services.group_commit); a blocked result
    also marks the account (its first block time). Outcomes setting the same columns go in
    one executemany."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    blocked: list[dict[str, Any]] = []
    for row, values, is_blocked, now in outcomes:
        groups.setdefault(frozenset(values), []).append({**values, "_id": row.id})
        if is_blocked:
            blocked.append({"_account": row.channel_account_id, "_when": now})
    # No after-commit kick: nothing new to send. One statement alone needs no transaction.
    async with ctx.db.direct(write=True, atomic=len(groups) > 1 or bool(blocked)) as db:
        for columns, params in groups.items():
            await db.run(_outcome_update(columns), params)
        if blocked:
            await db.run(_BLOCKED, blocked)
