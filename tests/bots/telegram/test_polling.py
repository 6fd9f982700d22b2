"""Without PUBLIC_URL: the webhook is removed and updates come by getUpdates, stored like a webhook's."""

from __future__ import annotations

import asyncio

import pytest

from core.services import bots, updates
from tests.fakes.telegram import Person


@pytest.fixture
def public_url() -> None:
    return None


async def test_polling_delivers_a_pushed_update(telegram, fake, anna):
    assert fake.calls_of("deleteWebhook", telegram.token)
    assert fake.bots[telegram.token].webhook is None
    update = anna.start()
    fake.push_update(telegram.token, update)
    arrived = await fake.wait_sent(anna.user_id)
    assert "Кофейня" in arrived[0].params["text"]
    for _ in range(100):  # marked done just after the reply is queued
        row = await updates.get_update(telegram.core.ctx, telegram.bot.id, str(update["update_id"]))
        if row is not None and row.status == "done":
            break
        await asyncio.sleep(0.05)
    # stored under its key; once processed, the person's data in it is not kept
    assert row is not None and row.status == "done" and row.payload == {}
    # the next poll confirms it: Telegram forgets it only once it is stored
    polls = await fake.wait_for(lambda calls: [
        c for c in calls if c.method == "getUpdates" and c.params.get("offset") == update["update_id"] + 1])
    assert polls[0].params["allowed_updates"] == ["message", "edited_message", "callback_query",
                                                  "my_chat_member"]


async def test_a_redelivered_poll_is_processed_once(telegram, fake, anna):
    update = anna.start()
    fake.push_update(telegram.token, update)
    await fake.wait_sent(anna.user_id)
    await telegram.settle()
    count = len(fake.sent(anna.user_id))
    await telegram.send(update)  # the same update by another path: already stored
    fake.push_update(telegram.token, update)
    await fake.wait_for(lambda calls: [c for c in calls if c.method == "getUpdates"
                                       and c.params.get("offset") == update["update_id"] + 1])
    await telegram.settle()
    assert len(fake.sent(anna.user_id)) == count


async def test_a_bot_added_while_running_is_polled_after_a_refresh(telegram, fake, core, merchant_id):
    token = fake.add_bot(username="second_shop_bot")
    second = await bots.add_bot(core.ctx, merchant_id, "telegram", token, username="second_shop_bot",
                                platform_bot_id=str(fake.bots[token].id))
    await telegram.runtime.refresh()
    boris = Person(user_id=909, first_name="Борис")
    fake.push_update(token, boris.start())
    arrived = await fake.wait_sent(boris.user_id)
    assert arrived[0].token == token
    assert await telegram.runtime.deep_link(second.id, "ref_ABC") == "https://t.me/second_shop_bot?start=ref_ABC"
    # removing it stops the polling and the sending
    await bots.remove_bot(core.ctx, merchant_id, second.id)
    await telegram.runtime.refresh()
    assert second.id not in telegram.runtime.live and second.id not in telegram.runtime.pollers
