"""The web chat's visitor records: a visit, an idle limit, a sign-out that refuses the token."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core.db.models import ChannelAccount
from core.services import webchat
from core.services.accounts import open_account

IDLE = timedelta(days=90)


async def _write(core, merchant_id: str, visitor: str) -> str:
    """The visitor writes (the dialog opens their account)."""
    bot_id = await webchat.ensure_web_bot(core.ctx, merchant_id)
    account = await open_account(core.ctx, merchant_id, webchat.CHANNEL, bot_id, visitor, visitor, "ru")
    return account.id


async def test_a_visit_finds_the_account_and_keeps_it_fresh(core, merchant_id, clock):
    bot_id = webchat.web_bot_id(merchant_id)
    assert await webchat.visit(core.ctx, merchant_id, bot_id, "v" * 40, IDLE) == webchat.Visit(None, False)
    account_id = await _write(core, merchant_id, "v" * 40)
    clock.advance_to(clock.now() + timedelta(days=60))
    found = await webchat.visit(core.ctx, merchant_id, bot_id, "v" * 40, IDLE)
    assert found == webchat.Visit(account_id, False)
    clock.advance_to(clock.now() + timedelta(days=60))  # 120 days after writing, 60 after the visit
    assert (await webchat.visit(core.ctx, merchant_id, bot_id, "v" * 40, IDLE)).account_id == account_id


async def test_signing_out_twice_under_one_visitor_keeps_the_token_refused(core, merchant_id):
    bot_id = webchat.web_bot_id(merchant_id)
    first = await _write(core, merchant_id, "v" * 40)
    assert await webchat.sign_out(core.ctx, merchant_id, bot_id, "v" * 40) == first
    assert (await webchat.visit(core.ctx, merchant_id, bot_id, "v" * 40, IDLE)).ended
    # A tab of another process, not told, wrote again under the old visitor id: a second
    # sign-out sets that account aside too (no clash with the first), the token stays refused.
    second = await _write(core, merchant_id, "v" * 40)
    assert second != first
    assert await webchat.sign_out(core.ctx, merchant_id, bot_id, "v" * 40) == second
    assert (await webchat.visit(core.ctx, merchant_id, bot_id, "v" * 40, IDLE)).ended
    async with core.ctx.db.read() as session:
        rows = (await session.execute(select(ChannelAccount.chat_id, ChannelAccount.blocked_at).where(
            ChannelAccount.channel == webchat.CHANNEL))).all()
    assert len(rows) == 2 and all(r.chat_id is None and r.blocked_at is not None for r in rows)
    assert await webchat.sign_out(core.ctx, merchant_id, bot_id, "w" * 40) is None  # never wrote
