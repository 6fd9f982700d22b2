"""Telegram updates through the real webhook and aiogram into the dialog, and the answers at the fake."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bots.dialog.texts import Texts
from core.db.models import ChannelAccount
from core.services import updates
from tests.bots.telegram.chat import Chat
from tests.fakes.telegram import Person

RU = Texts("ru")


async def _account(core, user_id: int) -> ChannelAccount | None:
    async with core.ctx.db.read() as session:
        return await session.scalar(select(ChannelAccount).where(
            ChannelAccount.external_user_id == str(user_id)))


async def test_start_gets_a_reply_with_buttons(telegram, anna):
    chat = Chat(telegram, anna)
    arrived = await chat.start("qr_till_3")
    assert arrived, "nothing was sent back"
    first = arrived[0]
    assert first.method == "sendMessage" and first.chat_id == anna.user_id
    assert "Кофейня" in first.params["text"]
    assert "reg:pd_yes" in chat.buttons(first)
    account = await _account(telegram.core, anna.user_id)
    assert account.chat_id == str(anna.user_id) and account.locale == "ru"


async def test_english_speaker_gets_english(telegram):
    john = Person(user_id=424242, first_name="John", last_name=None, language_code="en-GB")
    arrived = await Chat(telegram, john).start()
    assert arrived[0].params["text"].startswith(Texts("en")("registration.consent_pd", merchant="Кофейня",
                                                            legal_name="Кофейня", policy_url=None)[:20])


async def test_button_press_is_answered_at_once(telegram, anna, fake):
    chat = Chat(telegram, anna)
    await chat.start()
    update = anna.callback("reg:pd_yes", chat.message_with("reg:pd_yes"))
    arrived = await chat.send(update)
    answers = fake.calls_of("answerCallbackQuery")
    assert [a.params["callback_query_id"] for a in answers] == [update["callback_query"]["id"]]
    assert "reg:ad_yes" in chat.buttons(arrived[-1])


async def test_an_outdated_button_shows_a_toast(telegram, anna, fake):
    chat = Chat(telegram, anna)
    await chat.start()
    await chat.send(anna.callback("nothing-like-this", 12345))
    answers = fake.calls_of("answerCallbackQuery")
    assert answers[-1].params["text"] == RU("common.outdated_button")


async def test_a_failed_button_answer_still_delivers_the_screens(telegram, anna, fake):
    chat = Chat(telegram, anna)
    await chat.start()
    fake.fail("answerCallbackQuery", 400, "Bad Request: query is too old and response timeout expired")
    arrived = await chat.press("reg:pd_yes")
    assert "reg:ad_yes" in chat.buttons(arrived[-1])


async def test_blocked_and_unblocked(telegram, anna, fake, token):
    chat = Chat(telegram, anna)
    await chat.start()
    bot_id = fake.bots[token].id
    assert await chat.send(anna.blocked(bot_id)) == []
    assert (await _account(telegram.core, anna.user_id)).blocked_at is not None
    assert await chat.send(anna.unblocked(bot_id)) == []
    assert (await _account(telegram.core, anna.user_id)).blocked_at is None


async def test_edits_stickers_documents_and_unknown_updates_are_handled(telegram, anna, fake):
    chat = Chat(telegram, anna)
    await chat.start()
    keys = []
    for update in (anna.edited(1, "/start again"), anna.sticker(), anna.document(),
                   {"update_id": 990_000_001, "channel_post": {
                       "message_id": 1, "date": 1, "chat": {"id": -100123, "type": "channel"},
                       "text": "news"}},
                   {"update_id": 990_000_002, "some_future_update": {"x": 1}},
                   {"update_id": 990_000_003, "message": {
                       "message_id": 9, "date": 1, "from": anna.user,
                       "chat": {"id": -42, "type": "group", "title": "Друзья"}, "text": "/start"}}):
        keys.append(str(update["update_id"]))
        await chat.send(update)
    for key in keys:
        row = await updates.get_update(telegram.core.ctx, telegram.bot.id, key)
        assert (row.status, row.last_error) == ("done", None)
    assert not fake.sent(-42) and not fake.sent(-100123)
    # the edit is ignored; a sticker or a document gets a polite answer, not an error
    arrived = await chat.send(anna.sticker())
    assert all(c.method == "sendMessage" for c in arrived)


async def test_photo_bytes_are_downloaded_from_the_biggest_size(telegram, anna, fake):
    chat = Chat(telegram, anna)
    await chat.start()
    file_id = fake.add_file(b"\xff\xd8\xff\xe0 jpeg bytes")
    await chat.send(anna.photo(file_id, caption="чек"))
    assert [c.params["file_id"] for c in fake.calls_of("getFile")] == [file_id]
    assert fake.downloads == [f"photos/{file_id}"]


async def test_a_crash_while_processing_is_retried_later(telegram, anna, fake, clock):
    chat = Chat(telegram, anna)
    await chat.start()
    file_id = fake.add_file(b"\xff\xd8 photo")
    update = anna.photo(file_id)
    fake.fail("getFile", 500)
    await chat.send(update)
    row = await updates.get_update(telegram.core.ctx, telegram.bot.id, str(update["update_id"]))
    assert row.status == "retry" and "Internal Server Error" in row.last_error
    before = len(fake.calls_of("getFile"))
    await chat.say("still here")  # the process keeps working meanwhile
    clock.advance_to(clock.now() + timedelta(seconds=31))
    telegram.runtime.kick()
    await telegram.settle()
    row = await updates.get_update(telegram.core.ctx, telegram.bot.id, str(update["update_id"]))
    assert row.status == "done" and row.attempts == 2
    assert len(fake.calls_of("getFile")) == before + 1


async def test_an_update_failing_every_time_ends_failed(telegram, anna, fake, clock):
    chat = Chat(telegram, anna)
    await chat.start()
    update = anna.photo(fake.add_file(b"\xff\xd8 photo"))
    fake.fail("getFile", 500, times=3)
    await chat.send(update)
    for _ in range(2):
        clock.advance_to(clock.now() + timedelta(seconds=31))
        telegram.runtime.kick()
        await telegram.settle()
    row = await updates.get_update(telegram.core.ctx, telegram.bot.id, str(update["update_id"]))
    assert (row.status, row.attempts) == ("failed", 3)
    assert "TelegramServerError" in row.last_error
    assert await chat.say("hello again")  # and the bot still answers
