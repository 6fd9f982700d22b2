"""A reply's rows saved claimed when its chat is free (core/db/outgoing_rows.py), on both databases."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from core.db.models import Media
from core.db.outgoing_rows import chat_key, save_for_chat
from core.ids import new_id
from core.services.media import media_row
from core.services.outgoing import REPLY, enqueue
from tests.core.outgoing_kit import make_bot, message, rows


def _row(account, text_: str, now):
    return {"id": new_id("out"), "merchant_id": account.merchant_id, "bot_id": account.bot_id,
            "channel_account_id": account.id, "chat_id": account.chat_id, "priority": REPLY,
            "kind": "reply", "body": {"text": text_}, "status": "queued", "attempts": 0,
            "not_before": now, "created_at": now}


async def test_a_free_chat_gets_its_reply_claimed_and_a_busy_one_queued(core, merchant_id, clock):
    _bot_id, (account,) = await make_bot(core, merchant_id)
    now = clock.now()
    assert await save_for_chat(core.ctx.db, [_row(account, "card", now), _row(account, "menu", now)],
                               now)
    assert not await save_for_chat(core.ctx.db, [_row(account, "later", now)], now)
    saved = await rows(core)
    assert {name: row.status for name, row in saved.items()} == {
        "card": "sending", "menu": "sending", "later": "queued"}
    assert saved["card"].body == {"text": "card"} and saved["card"].not_before == now


async def test_rows_of_two_chats_are_refused_and_nothing_is_saved(core, merchant_id, clock):
    _bot_id, (one, other) = await make_bot(core, merchant_id, chats=2)
    now = clock.now()
    with pytest.raises(ValueError, match="one chat"):
        await save_for_chat(core.ctx.db, [_row(one, "a", now), _row(other, "b", now)], now)
    assert await rows(core) == {}


async def saved_media(core) -> dict[str, bytes | None]:
    async with core.ctx.db.read() as session:
        return {row.id: row.data for row in await session.scalars(select(Media))}


async def test_a_reply_and_its_picture_are_saved_together(core, merchant_id, clock):
    """Claimed (one statement on PostgreSQL) or queued (one transaction): the picture's row
    is there with its bytes, by the id the reply's body names."""
    _bot_id, (account,) = await make_bot(core, merchant_id)
    now = clock.now()
    card = core.messengers.media.stage(merchant_id, "image/png", b"\x89PNG card")
    invite = core.messengers.media.stage(merchant_id, "image/png", b"\x89PNG invite")
    assert await save_for_chat(core.ctx.db, [_row(account, "card", now)], now, [media_row(card, now)])
    await enqueue(core.ctx, [message(account, "invite")], media=[invite])
    assert await saved_media(core) == {card.id: b"\x89PNG card", invite.id: b"\x89PNG invite"}
    assert set(await rows(core)) == {"card", "invite"}


async def test_a_picture_is_not_saved_when_its_reply_is_not(core, merchant_id, clock):
    """A reply that cannot be saved (here: an account that does not exist) leaves no picture."""
    _bot_id, (account,) = await make_bot(core, merchant_id)
    now = clock.now()
    card = core.messengers.media.stage(merchant_id, "image/png", b"\x89PNG card")
    broken = {**_row(account, "card", now), "channel_account_id": "acc_nobody"}
    with pytest.raises(IntegrityError):
        await save_for_chat(core.ctx.db, [broken], now, [media_row(card, now)])
    lost = replace(message(account, "invite"), channel_account_id="acc_nobody")
    with pytest.raises(IntegrityError):
        await enqueue(core.ctx, [lost], media=[card])
    assert await saved_media(core) == {}
    assert await rows(core) == {}


async def test_a_keyed_reply_queued_twice_saves_its_picture_once(core, merchant_id):
    """An outbox event handed over twice: the second time nothing is saved, its picture neither."""
    _bot_id, (account,) = await make_bot(core, merchant_id)
    for _ in range(2):
        picture = core.messengers.media.stage(merchant_id, "image/png", b"\x89PNG wallet")
        keyed = replace(message(account, "wallet card"), key="event-7")
        await enqueue(core.ctx, [keyed], media=[picture])
    assert len(await saved_media(core)) == 1
    assert set(await rows(core)) == {"wallet card"}


async def test_the_chat_check_sees_a_message_committed_after_its_statement_began(
        core, merchant_id):
    """The check must see what another process committed before the chat's lock was taken,
    though its statement began earlier. Here a statement that calls outgoing_chat_free() waits
    first; meanwhile a message for the chat is queued and committed; the check sees it. (In one
    plain statement the check would read the older snapshot, find the chat free, and a reply
    could then overtake that message.)"""
    if core.ctx.db.is_sqlite:
        pytest.skip("SQLite serves one process: no chat lock, no snapshot older than it")
    bot_id, (account,) = await make_bot(core, merchant_id)
    probe = text("SELECT outgoing_chat_free(:key, :bot_id, :chat_id)"
                 " FROM (SELECT pg_sleep(1) OFFSET 0) AS wait")

    async def check() -> bool:
        async with core.ctx.db.read() as session:
            return bool(await session.scalar(probe, {
                "key": chat_key(bot_id, account.chat_id), "bot_id": bot_id,
                "chat_id": account.chat_id}))

    checking = asyncio.create_task(check())
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
                   " AND query LIKE '%outgoing_chat_free%'")
    for _ in range(500):  # until the statement is in its wait (a read of its own each time:
        async with core.ctx.db.read() as watcher:  # the activity view holds still in one)
            if await watcher.scalar(waiting):
                break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the checking statement never began")
    await enqueue(core.ctx, [message(account, "points added")])  # committed, queued
    assert await checking is False
