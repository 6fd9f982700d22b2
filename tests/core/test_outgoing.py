"""The one sender: queued rows go out in priority order, each chat in order, with the result."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest

from core.db.models import ChannelAccount, OutgoingMessage
from core.ports import OutgoingEnvelope, SendResult
from core.services.dispatcher import Dispatcher
from core.services.limiter import TELEGRAM, InProcessLimiter, Limits
from core.services.outgoing import (
    MARKETING,
    MAX_ATTEMPTS,
    REPLY,
    SERVICE,
    enqueue,
)
from tests.conftest import START
from tests.core.outgoing_kit import FakeSender, FakeTime, dispatcher, make_bot, message, rows


async def test_replies_go_before_service_and_marketing(core, merchant_id):
    bot_id, accounts = await make_bot(core, merchant_id, chats=3)
    await enqueue(core.ctx, [message(accounts[0], "campaign", MARKETING)])
    await enqueue(core.ctx, [message(accounts[1], "points", SERVICE)])
    await enqueue(core.ctx, [message(accounts[2], "answer", REPLY)])
    sender = FakeSender()
    assert await dispatcher(core, sender, bot_id, max_chats=1).drain_once() == 1
    assert await dispatcher(core, sender, bot_id, max_chats=1).drain_once() == 1
    assert await dispatcher(core, sender, bot_id, max_chats=1).drain_once() == 1
    assert [text for _chat, text, _t in sender.sent] == ["answer", "points", "campaign"]


async def test_each_chat_keeps_its_order_while_chats_interleave(core, merchant_id):
    bot_id, (one, two) = await make_bot(core, merchant_id, chats=2)
    for i in range(4):
        await enqueue(core.ctx, [message(one, f"one-{i}"), message(two, f"two-{i}")])
    sender = FakeSender()
    assert await dispatcher(core, sender, bot_id).drain_once() == 8
    per_chat: dict[str, list[str]] = {}
    for chat, text, _t in sender.sent:
        per_chat.setdefault(chat, []).append(text)
    assert per_chat == {one.chat_id: [f"one-{i}" for i in range(4)],
                        two.chat_id: [f"two-{i}" for i in range(4)]}
    # The chats went concurrently: the second chat did not wait for the first to finish.
    assert [chat for chat, _text, _t in sender.sent][:2] == [one.chat_id, two.chat_id]
    found = await rows(core)
    assert {row.status for row in found.values()} == {"sent"}
    assert found["one-0"].platform_message_id is not None
    assert found["one-0"].sent_at == START


async def test_429_retry_after_is_kept_and_later_rows_wait_behind_it(core, merchant_id, clock):
    bot_id, (account,) = await make_bot(core, merchant_id)
    await enqueue(core.ctx, [message(account, "first"), message(account, "second")])
    sender = FakeSender(script=[SendResult.retry(START + timedelta(seconds=30), "429 retry_after 30")])
    sending = dispatcher(core, sender, bot_id)
    assert await sending.drain_once() == 1
    found = await rows(core)
    assert (found["first"].status, found["first"].attempts) == ("queued", 1)
    assert found["first"].not_before == START + timedelta(seconds=30)
    assert found["second"].status == "queued"
    # Before the retry is due nothing of this chat goes (the second must not overtake).
    clock.advance_to(START + timedelta(seconds=10))
    assert await sending.drain_once() == 0
    clock.advance_to(START + timedelta(seconds=30))
    assert await sending.drain_once() == 2
    assert [text for _chat, text, _t in sender.sent] == ["first", "first", "second"]
    assert sender.envelopes[1].attempts == 1


async def test_server_errors_back_off_then_fail(core, merchant_id, clock):
    bot_id, (account,) = await make_bot(core, merchant_id)
    await enqueue(core.ctx, [message(account, "hello")])
    sender = FakeSender(script=[SendResult.retry(clock.now(), "HTTP 502")] * MAX_ATTEMPTS)
    sending = dispatcher(core, sender, bot_id)
    waits = []
    for _ in range(MAX_ATTEMPTS - 1):
        now = clock.now()
        assert await sending.drain_once() == 1
        row = (await rows(core))["hello"]
        assert row.status == "queued"
        waits.append((row.not_before - now).total_seconds())
        clock.advance_to(row.not_before)
    assert waits == [1, 2, 4, 8]
    assert await sending.drain_once() == 1
    row = (await rows(core))["hello"]
    assert row.status == "failed" and "HTTP 502" in (row.error or "")
    assert row.attempts == MAX_ATTEMPTS


async def test_blocked_marks_the_account_and_skips_its_other_messages(core, merchant_id, clock):
    bot_id, (account,) = await make_bot(core, merchant_id)
    await enqueue(core.ctx, [message(account, "a"), message(account, "b")])
    sender = FakeSender(script=[SendResult.blocked("403 bot was blocked by the user")])
    assert await dispatcher(core, sender, bot_id).drain_once() == 2
    assert len(sender.sent) == 1
    found = await rows(core)
    assert found["a"].status == found["b"].status == "blocked"
    async with core.ctx.db.read() as session:
        stored = await session.get(ChannelAccount, account.id)
    assert stored is not None and stored.blocked_at == START
    # A later message for the blocked account is not even tried.
    await enqueue(core.ctx, [message(account, "c")])
    assert await dispatcher(core, sender, bot_id).drain_once() == 1
    assert len(sender.sent) == 1
    assert (await rows(core))["c"].status == "blocked"


async def test_a_row_is_done_only_with_a_result(core, merchant_id, clock):
    bot_id, (account,) = await make_bot(core, merchant_id)
    await enqueue(core.ctx, [message(account, "x"), message(account, "later", REPLY,
                                                            START + timedelta(hours=1))])
    # No sender registered for the bot: the row stays queued.
    assert await Dispatcher(core.ctx, core.messengers.media).drain_once() == 0
    assert (await rows(core))["x"].status == "queued"

    class Exploding:
        async def send(self, message: OutgoingEnvelope) -> SendResult:
            raise RuntimeError("bug in an adapter")

    broken = Dispatcher(core.ctx, core.messengers.media)
    broken.register(bot_id, Exploding())
    assert await broken.drain_once() == 1
    row = (await rows(core))["x"]
    assert (row.status, row.attempts) == ("queued", 1)  # not lost, tried again later
    clock.advance_to(row.not_before)
    sender = FakeSender(script=[SendResult.failed("400 chat not found")])
    assert await dispatcher(core, sender, bot_id).drain_once() == 1
    found = await rows(core)
    assert (found["x"].status, found["x"].error) == ("failed", "400 chat not found")
    assert found["later"].status == "queued"  # not due yet


async def test_images_reach_the_sender_as_bytes(core, merchant_id):
    bot_id, (account,) = await make_bot(core, merchant_id)
    media_id = await core.messengers.media.put(merchant_id, "image/png", b"\x89PNG...")
    item = message(account, "card")
    item.body["image"] = {"media_id": media_id, "filename": "card.png", "content_type": "image/png"}
    await enqueue(core.ctx, [item])
    sender = FakeSender()
    assert await dispatcher(core, sender, bot_id).drain_once() == 1
    assert sender.envelopes[0].media == {media_id: b"\x89PNG..."}


async def test_the_chat_limit_spaces_messages_after_a_burst(core, merchant_id):
    bot_id, (account,) = await make_bot(core, merchant_id)
    await enqueue(core.ctx, [message(account, f"m{i}") for i in range(5)])
    fake = FakeTime()
    sender = FakeSender(clock=fake)
    sending = dispatcher(core, sender, bot_id, limiters={"telegram": InProcessLimiter(TELEGRAM)},
                         monotonic=fake, sleep=fake.sleep)
    assert await sending.drain_once() == 5
    # a burst of 3 (spaced by the bot's 30 a second), then one a second
    assert [t for _chat, _text, t in sender.sent] == pytest.approx([0, 1 / 30, 2 / 30, 1, 2])


async def test_queueing_with_a_key_twice_queues_once(core, merchant_id):
    bot_id, (account,) = await make_bot(core, merchant_id)
    item = message(account, "once")
    item.key = "event-1:" + account.id
    first = await enqueue(core.ctx, [item])
    again = await enqueue(core.ctx, [item])
    assert len(first) == 1 and again == []
    assert len(await rows(core)) == 1


def test_limiter_lets_three_through_then_one_a_second():
    limiter = InProcessLimiter(Limits(per_bot=1000, per_bot_burst=1000, per_chat_burst=3, per_chat=1))
    for _ in range(3):
        assert limiter.delay("b", "c", 100.0) == 0
        limiter.take("b", "c", 100.0)
    assert limiter.delay("b", "c", 100.0) == pytest.approx(1.0)
    assert limiter.delay("b", "other", 100.0) == 0  # another chat has its own burst
    assert limiter.delay("b", "c", 100.5) == pytest.approx(0.5)
    assert limiter.delay("b", "c", 101.0) == 0
    limiter.take("b", "c", 101.0)
    assert limiter.delay("b", "c", 101.0) == pytest.approx(1.0)
    assert limiter.delay("b", "c", 110.0) == 0


def test_limiter_keeps_thirty_a_second_per_bot():
    limiter = InProcessLimiter(TELEGRAM)
    now = 5.0
    for i in range(30):  # thirty chats at once: spaced evenly, all within one second
        now += limiter.delay("b", f"chat{i}", now)
        limiter.take("b", f"chat{i}", now)
    assert now - 5.0 == pytest.approx(29 / 30)
    assert limiter.delay("b", "fresh", now) == pytest.approx(1 / 30)  # the 31st: the next second
    assert limiter.delay("other-bot", "fresh", now) == 0


async def test_a_chat_waiting_for_a_retry_does_not_hold_up_other_chats(core, merchant_id, clock):
    bot_id, (slow, other) = await make_bot(core, merchant_id, chats=2)
    await enqueue(core.ctx, [message(slow, f"slow-{i}") for i in range(6)])
    await enqueue(core.ctx, [message(other, "other", MARKETING)])
    sender = FakeSender(script=[SendResult.retry(START + timedelta(seconds=5), "429")])
    sending = dispatcher(core, sender, bot_id, batch=3, max_chats=1)
    assert await sending.drain_once() == 1  # slow-0 asked to wait
    assert await sending.drain_once() == 1  # the rest of that chat waits; the other chat goes
    assert [text for _chat, text, _t in sender.sent] == ["slow-0", "other"]


async def test_two_dispatchers_never_send_a_row_twice_nor_out_of_order(core, merchant_id):
    bot_id, accounts = await make_bot(core, merchant_id, chats=4)
    for i in range(5):
        await enqueue(core.ctx, [message(account, f"{account.chat_id}-{i}") for account in accounts])
    log: list[tuple[str, str, float]] = []
    first, second = FakeSender(sent=log), FakeSender(sent=log)
    one = dispatcher(core, first, bot_id, per_chat=2)
    two = dispatcher(core, second, bot_id, per_chat=2)
    while sum(await asyncio.gather(one.drain_once(), two.drain_once())):
        pass
    texts = [text for _chat, text, _t in log]
    assert sorted(texts) == sorted(f"{a.chat_id}-{i}" for a in accounts for i in range(5))
    for account in accounts:
        assert [t for t in texts if t.startswith(f"{account.chat_id}-")] == [
            f"{account.chat_id}-{i}" for i in range(5)]
    assert {row.status for row in (await rows(core)).values()} == {"sent"}


async def test_the_running_dispatcher_sends_what_is_queued_and_fails_interrupted_rows(
        core, merchant_id):
    bot_id, (account,) = await make_bot(core, merchant_id)
    ids = await enqueue(core.ctx, [message(account, "cut short")])
    async with core.ctx.uow() as uow:  # a crash left it `sending`: the platform may have it
        row = await uow.session.get(OutgoingMessage, ids[0])
        row.status, row.not_before = "sending", START - timedelta(minutes=20)
        await uow.commit()
    arrived = asyncio.Event()

    class Signalling(FakeSender):
        async def send(self, message: OutgoingEnvelope) -> SendResult:
            arrived.set()
            return await super().send(message)

    sender = Signalling()
    running = core.messengers.dispatcher
    running.register(bot_id, sender)
    task = asyncio.create_task(running.run())
    try:
        await enqueue(core.ctx, [message(account, "hello")])  # the commit kicks the dispatcher
        await asyncio.wait_for(arrived.wait(), timeout=30)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [text for _chat, text, _t in sender.sent] == ["hello"]
    found = await rows(core)
    assert found["hello"].status == "sent"  # stopping let the send be marked
    assert found["cut short"].status == "failed"
    assert "interrupted" in (found["cut short"].error or "")
