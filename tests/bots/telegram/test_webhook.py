"""The webhook: bad input never reaches the dialog; a stored update is processed once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from core.db.models import ChannelAccount, InboundUpdate
from core.services import bots, updates
from tests.fakes.telegram import Person


async def _accounts(core) -> int:
    async with core.ctx.db.read() as session:
        return await session.scalar(select(func.count()).select_from(ChannelAccount))


async def _stored(core) -> int:
    async with core.ctx.db.read() as session:
        return await session.scalar(select(func.count()).select_from(InboundUpdate))


async def test_serve_sets_the_webhook_with_our_secret(telegram, fake):
    hook = fake.bots[telegram.token].webhook
    assert hook["url"] == f"https://loyalty.example/webhooks/telegram/{telegram.bot.id}"
    assert hook["secret_token"] == telegram.secret
    assert set(hook["allowed_updates"]) >= {"message", "callback_query", "my_chat_member"}


async def test_bad_input_never_reaches_the_dialog_and_the_process_keeps_working(telegram, anna, fake):
    start = anna.start()
    assert await telegram.post(start, secret="wrong") == 401
    assert await telegram.post(start, secret="") == 401
    assert await telegram.post(start, bot_id="bot_01NOSUCHBOT0000000000000000") == 404
    assert await telegram.post(start, bot_id="x" * 300) == 404
    assert await telegram.post(None, raw=b"{not json") == 400
    assert await telegram.post(None, raw=b"\xff\xfe") == 400
    assert await telegram.post({"message": {"text": "hi"}}) == 400  # no update_id
    assert await telegram.post({"update_id": "7"}) == 400
    assert await telegram.post([1, 2]) == 400
    assert await telegram.post({"update_id": 9, "message": {"chat": "nonsense"}}) == 400
    await telegram.settle()
    assert await _stored(telegram.core) == 0 and await _accounts(telegram.core) == 0
    assert fake.sent() == []
    # ... and the same process still answers a good update
    await telegram.send(start)
    await fake.wait_sent(anna.user_id)
    assert await _accounts(telegram.core) == 1


async def test_a_removed_bot_is_404(telegram, anna, merchant_id):
    await bots.remove_bot(telegram.core.ctx, merchant_id, telegram.bot.id)
    assert await telegram.post(anna.start()) == 404


async def test_duplicate_update_is_processed_once(telegram, anna, fake):
    update = anna.text("/start")
    await telegram.send(update)
    await telegram.send(update)  # Telegram redelivers when our 200 got lost
    await telegram.settle()
    first = len(fake.sent(anna.user_id))
    assert first >= 1
    await telegram.send(update)
    await telegram.settle()
    assert len(fake.sent(anna.user_id)) == first
    assert await _stored(telegram.core) == 1
    row = await updates.get_update(telegram.core.ctx, telegram.bot.id, str(update["update_id"]))
    assert row.status == "done" and row.attempts == 1


async def test_update_is_stored_before_the_answer(core, fake, bot, anna):
    """Without the background worker (a crash right after the 200), the update waits in the table."""
    from aiohttp.test_utils import TestClient, TestServer

    from app.web import create_app
    from bots.telegram.webhook import SECRET_HEADER

    app = create_app(core, background=False)
    async with TestClient(TestServer(app)) as client:
        update = anna.start("qr_till_3")
        response = await client.post(f"/webhooks/telegram/{bot.id}", json=update,
                                      headers={SECRET_HEADER: bots.webhook_secret(core.ctx, bot.id)})
        assert response.status == 200
    row = await updates.get_update(core.ctx, bot.id, str(update["update_id"]))
    assert row.status == "new" and row.payload == update
    assert fake.sent() == []


async def test_many_people_at_once(telegram, fake):
    people = [Person(user_id=500 + i, first_name=f"Гость {i}") for i in range(8)]
    for person in people:
        await telegram.send(person.start())
    for person in people:
        await fake.wait_sent(person.user_id)


async def test_an_update_in_hand_at_a_crash_is_answered_after_the_restart(core, fake, bot, anna, clock):
    """The webhook stores an update already claimed and hands it over in memory; a crash right
    after the 200 leaves it `processing`. The next start answers it: on SQLite (one process) at
    once, on PostgreSQL once the claim is stale (another process might still be on it)."""
    from aiohttp.test_utils import TestClient, TestServer

    from app.web import create_app

    update = anna.start()
    assert await updates.store(core.ctx, bot.id, str(update["update_id"]), update, claim=True)
    if not core.ctx.db.is_sqlite:
        clock.advance_to(clock.now() + updates.STALE_AFTER + timedelta(seconds=1))
    async with TestClient(TestServer(create_app(core))):
        await fake.wait_sent(anna.user_id)
    row = await updates.get_update(core.ctx, bot.id, str(update["update_id"]))
    assert row.status == "done" and row.attempts == 2
