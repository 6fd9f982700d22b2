"""Stored updates and connected bots, against the real database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.errors import NotFound
from core.services import bots, updates
from core.services.bots import WEBHOOK_SECRET_CHARS


async def test_a_key_is_kept_for_its_time_to_live_then_purged(core, bot, clock):
    ctx = core.ctx
    assert await updates.store(ctx, bot.id, "100", {"update_id": 100})
    assert not await updates.store(ctx, bot.id, "100", {"update_id": 100})
    [claimed] = await updates.claim(ctx)
    assert await updates.claim(ctx) == []  # claimed once
    await updates.mark_done(ctx, claimed.id)
    clock.advance_to(clock.now() + timedelta(hours=23))
    assert await updates.purge_expired(ctx) == 0
    assert not await updates.store(ctx, bot.id, "100", {"update_id": 100})
    clock.advance_to(clock.now() + timedelta(hours=2))
    assert await updates.purge_expired(ctx) == 1
    assert await updates.store(ctx, bot.id, "100", {"update_id": 100})  # Telegram's ids can come again


async def test_ids_that_jump_back_are_not_dropped(core, bot):
    """Not "highest id seen": a lower id after a higher one is a new update."""
    assert await updates.store(core.ctx, bot.id, "5000", {"update_id": 5000})
    assert await updates.store(core.ctx, bot.id, "17", {"update_id": 17})


async def test_the_same_update_at_once_is_stored_once(core, bot):
    results = await asyncio.gather(*(updates.store(core.ctx, bot.id, "7", {"update_id": 7})
                                     for _ in range(5)))
    assert sorted(result is not None for result in results) == [False, False, False, False, True]


async def test_pending_updates_are_not_purged(core, bot, clock):
    await updates.store(core.ctx, bot.id, "1", {"update_id": 1})
    clock.advance_to(clock.now() + timedelta(days=3))
    assert await updates.purge_expired(core.ctx) == 0
    assert await updates.pending_count(core.ctx) == 1


async def test_an_update_left_processing_by_a_crash_is_claimed_again(core, bot, clock):
    await updates.store(core.ctx, bot.id, "1", {"update_id": 1})
    assert len(await updates.claim(core.ctx)) == 1  # ... and the process died
    assert await updates.claim(core.ctx) == []
    clock.advance_to(clock.now() + timedelta(minutes=6))
    [again] = await updates.claim(core.ctx)
    assert again.attempts == 2


async def test_failures_are_retried_a_few_times(core, bot, clock):
    await updates.store(core.ctx, bot.id, "1", {"update_id": 1})
    statuses = []
    for _ in range(3):
        [row] = await updates.claim(core.ctx)
        statuses.append(await updates.mark_failed(core.ctx, row.id, "boom"))
        clock.advance_to(clock.now() + timedelta(seconds=31))
    assert statuses == ["retry", "retry", "failed"]
    assert await updates.claim(core.ctx) == []
    assert await updates.mark_failed(core.ctx, row.id, "x", retry=False) == "failed"


async def test_bots_of_a_merchant(core, merchant_id, bot):
    assert [b.id for b in await bots.list_bots(core.ctx, merchant_id)] == [bot.id]
    assert await bots.bot_token(core.ctx, bot) is not None
    secret = bots.webhook_secret(core.ctx, bot.id)
    assert WEBHOOK_SECRET_CHARS.match(secret) and secret == bots.webhook_secret(core.ctx, bot.id)
    assert secret != bots.webhook_secret(core.ctx, "bot_other")
    with pytest.raises(NotFound):
        await bots.remove_bot(core.ctx, "mer_other", bot.id)
    await bots.remove_bot(core.ctx, merchant_id, bot.id)
    assert await bots.get_bot(core.ctx, bot.id) is None
    assert await bots.bot_token(core.ctx, bot) is None
    assert await bots.list_bots(core.ctx, merchant_id) == []
