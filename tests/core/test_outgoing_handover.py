"""The one sender, replies handed over at once, and what happens when sending fails or stops."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from core.ports import NewMedia, OutgoingEnvelope, SendResult
from core.services import dispatcher as dispatcher_module
from core.services.dispatcher import Dispatcher
from core.services.outgoing import SERVICE, enqueue
from core.services.outgoing_claim import lock_chat
from tests.core.outgoing_kit import FakeSender, dispatcher, make_bot, message, rows


class Gated(FakeSender):
    """Holds every send until `gate` opens, so a test can act while a chat is being sent to."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def send(self, message: OutgoingEnvelope) -> SendResult:
        self.started.set()
        await self.gate.wait()
        return await super().send(message)


async def _running(core: Any, bot_id: str, sender: FakeSender,
                   **kwargs: Any) -> tuple[Dispatcher, asyncio.Task[None]]:
    running = dispatcher(core, sender, bot_id, **kwargs)
    task = asyncio.create_task(running.run())
    for _ in range(200):  # running once the interrupted rows of a past run are dealt with
        if running.reserve(bot_id, "probe"):
            running.release(bot_id, "probe")
            return running, task
        await asyncio.sleep(0.01)
    raise AssertionError("the dispatcher never started")


async def _until_sent(sender: FakeSender, count: int) -> None:
    """Until `count` messages were sent, or 3 s (the assertions after it then say what went)."""
    for _ in range(300):
        if len(sender.sent) >= count:
            return
        await asyncio.sleep(0.01)


async def _stop(running: Dispatcher, task: asyncio.Task[None]) -> None:
    running.stop()
    await asyncio.wait_for(task, timeout=30)


async def test_a_reply_handed_over_is_sent_without_waiting_for_a_claim(core, merchant_id):
    """Handed to the running dispatcher, the reply is saved `sending` and goes at once; the
    poll is an hour, so only the hand-over can have sent it."""
    bot_id, (account,) = await make_bot(core, merchant_id)
    sender = FakeSender()
    running, task = await _running(core, bot_id, sender, poll_seconds=3600)
    try:
        [row_id] = await enqueue(core.ctx, [message(account, "your card")], hand_to=running)
        await _until_sent(sender, 1)
    finally:
        await _stop(running, task)
    assert [text for _chat, text, _t in sender.sent] == ["your card"]
    assert sender.envelopes[0].id == row_id
    assert (await rows(core))["your card"].status == "sent"


async def test_a_reply_never_overtakes_what_its_chat_already_has_queued(core, merchant_id):
    """A notification is being sent to the chat when the reply comes: the reply is queued
    behind it, not handed over, and goes after it."""
    bot_id, (account,) = await make_bot(core, merchant_id)
    sender = Gated()
    running, task = await _running(core, bot_id, sender, poll_seconds=3600)  # only kicks count
    try:
        await enqueue(core.ctx, [message(account, "points added", SERVICE)], hand_to=running)
        await asyncio.wait_for(sender.started.wait(), timeout=30)
        await enqueue(core.ctx, [message(account, "your card")], hand_to=running)
        assert (await rows(core))["your card"].status == "queued"
        sender.gate.set()
        await _until_sent(sender, 2)
    finally:
        sender.gate.set()
        await _stop(running, task)
    assert [text for _chat, text, _t in sender.sent] == ["points added", "your card"]
    assert {row.status for row in (await rows(core)).values()} == {"sent"}


async def test_a_reply_to_a_chat_another_process_is_sending_to_waits_in_the_queue(core, merchant_id):
    """Another process's dispatcher holds the chat (the lock of its claim, not yet committed):
    the reply is saved queued, not handed over, and is sent once that process lets go."""
    if core.ctx.db.is_sqlite:
        pytest.skip("SQLite serves one process: there is no chat lock to hold")
    bot_id, (account,) = await make_bot(core, merchant_id)
    sender = FakeSender()
    running, task = await _running(core, bot_id, sender, poll_seconds=0.1)
    try:
        async with core.ctx.db.direct(write=True, atomic=True) as other:
            assert await lock_chat(other, bot_id, account.chat_id, sqlite=False)
            await enqueue(core.ctx, [message(account, "your card")], hand_to=running)
            assert (await rows(core))["your card"].status == "queued"
            await asyncio.sleep(0.3)  # polls come and go: the chat is still held
            assert sender.sent == []
        await _until_sent(sender, 1)
    finally:
        await _stop(running, task)
    assert [text for _chat, text, _t in sender.sent] == ["your card"]
    assert (await rows(core))["your card"].status == "sent"


async def test_a_reply_to_a_stopped_dispatcher_waits_in_the_queue(core, merchant_id):
    bot_id, (account,) = await make_bot(core, merchant_id)
    stopped = dispatcher(core, FakeSender(), bot_id)  # never started
    await enqueue(core.ctx, [message(account, "later")], hand_to=stopped)
    assert (await rows(core))["later"].status == "queued"
    sender = FakeSender()
    assert await dispatcher(core, sender, bot_id).drain_once() == 1
    assert [text for _chat, text, _t in sender.sent] == ["later"]


class MediaAway:
    """A MediaStore whose database is away for the first `failures` reads."""

    def __init__(self, store: Any, failures: int) -> None:
        self.store = store
        self.failures = failures

    async def put(self, merchant_id: str, content_type: str, data: bytes) -> str:
        return str(await self.store.put(merchant_id, content_type, data))

    def stage(self, merchant_id: str, content_type: str, data: bytes) -> NewMedia:
        staged: NewMedia = self.store.stage(merchant_id, content_type, data)
        return staged

    async def get(self, merchant_id: str, media_id: str) -> tuple[str, bytes] | None:
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("the database went away")
        found: tuple[str, bytes] | None = await self.store.get(merchant_id, media_id)
        return found


async def test_an_image_that_cannot_be_read_now_is_sent_later_and_the_chat_waits(
        core, merchant_id, clock):
    bot_id, (account,) = await make_bot(core, merchant_id)
    media_id = await core.messengers.media.put(merchant_id, "image/png", b"\x89PNG...")
    item = message(account, "card")
    item.body["image"] = {"media_id": media_id, "filename": "card.png", "content_type": "image/png"}
    await enqueue(core.ctx, [item, message(account, "menu")])
    sender = FakeSender()
    flaky = Dispatcher(core.ctx, MediaAway(core.messengers.media, failures=1))
    flaky.register(bot_id, sender)
    assert await flaky.drain_once() == 1  # the card got a result: try again later
    found = await rows(core)
    assert (found["card"].status, found["card"].attempts) == ("queued", 1)
    assert found["menu"].status == "queued"  # not before the card, and not lost
    assert sender.sent == []
    clock.advance_to(clock.now() + timedelta(seconds=5))
    assert await flaky.drain_once() == 2
    assert [text for _chat, text, _t in sender.sent] == ["card", "menu"]
    assert sender.envelopes[0].media == {media_id: b"\x89PNG..."}


async def test_a_send_cut_short_at_a_stop_is_never_sent_again(core, merchant_id, monkeypatch):
    """The platform may have a message whose send was cut off: it stays `sending` (and is later
    marked interrupted), never queued again; the chat's next message, never tried, is queued."""
    monkeypatch.setattr(dispatcher_module, "SHUTDOWN_GRACE_SECONDS", 0.1)
    bot_id, (account,) = await make_bot(core, merchant_id)
    sender = Gated()  # the platform never answers
    running, task = await _running(core, bot_id, sender)
    await enqueue(core.ctx, [message(account, "in flight"), message(account, "next")], hand_to=running)
    await asyncio.wait_for(sender.started.wait(), timeout=30)
    await _stop(running, task)
    found = await rows(core)
    assert found["in flight"].status == "sending"
    assert found["next"].status == "queued"
