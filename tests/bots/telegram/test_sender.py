"""TelegramSender: saved screens become Bot API calls (real aiogram, the fake over HTTP), errors results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bots.dialog.screens import Button, Image, Prompt, Screen
from bots.telegram.sender import TelegramSender
from bots.telegram.setup import api_session, make_bot
from core.ports import OutgoingEnvelope
from tests.fakes.telegram import FakeTelegram

CHAT = 777_000_111
PNG = b"\x89PNG\r\n\x1a\n fake picture bytes"


@pytest.fixture
async def sender(fake: FakeTelegram, token: str, clock) -> AsyncIterator[TelegramSender]:
    session = api_session(fake.url)
    yield TelegramSender(make_bot(token, session), clock)
    await session.close()


def envelope(screen: Screen, media: dict[str, bytes] | None = None, attempts: int = 0,
             chat: int = CHAT) -> OutgoingEnvelope:
    return OutgoingEnvelope(id="out_1", merchant_id="mer_1", bot_id="bot_1", chat_id=str(chat),
                            body=screen.to_body(), media=media or {}, attempts=attempts)


async def test_text_with_action_link_and_miniapp_buttons(sender, fake):
    screen = Screen(text="Ваш баланс: 120 бонусов", buttons=(
        (Button(text="Карта", action="card"), Button(text="История", action="history:2")),
        (Button(text="Сайт", url="https://coffee.example"),
         Button(text="Кабинет", webapp="https://loyalty.example/app/coffee/")),
    ))
    result = await sender.send(envelope(screen))
    call = fake.calls_of("sendMessage")[0]
    assert result.status == "sent"
    assert result.platform_message_id == str(max(m for (_t, _c, m) in fake.messages))
    assert call.chat_id == CHAT and call.params["text"] == "Ваш баланс: 120 бонусов"
    assert call.markup["inline_keyboard"] == [
        [{"text": "Карта", "callback_data": "card"}, {"text": "История", "callback_data": "history:2"}],
        [{"text": "Сайт", "url": "https://coffee.example"},
         {"text": "Кабинет", "web_app": {"url": "https://loyalty.example/app/coffee/"}}],
    ]


async def test_a_picture_goes_as_a_photo_with_its_bytes(sender, fake):
    screen = Screen(text="Ваша карта", image=Image(filename="card.png", media_id="med_1"),
                    buttons=((Button(text="Меню", action="menu"),),))
    result = await sender.send(envelope(screen, {"med_1": PNG}))
    call = fake.calls_of("sendPhoto")[0]
    assert result.status == "sent"
    assert call.photo == PNG and call.params["caption"] == "Ваша карта"
    assert call.buttons() == [{"text": "Меню", "callback_data": "menu"}]


async def test_a_text_too_long_for_a_caption_follows_the_photo(sender, fake):
    screen = Screen(text="Правила. " * 200, image=Image(filename="card.png", media_id="med_1"))
    await sender.send(envelope(screen, {"med_1": PNG}))
    assert [c.method for c in fake.sent(CHAT)] == ["sendPhoto", "sendMessage"]
    assert "caption" not in fake.sent(CHAT)[0].params


async def test_phone_prompt_is_a_reply_keyboard_with_request_contact(sender, fake):
    screen = Screen(text="Подтвердите номер", prompt=Prompt(kind="phone", label="📱 Поделиться номером"))
    await sender.send(envelope(screen))
    markup = fake.calls_of("sendMessage")[0].markup
    assert markup["keyboard"] == [[{"text": "📱 Поделиться номером", "request_contact": True}]]
    assert markup["resize_keyboard"] is True and markup["one_time_keyboard"] is True


async def test_phone_prompt_next_to_inline_buttons_goes_as_its_own_message(sender, fake):
    screen = Screen(text="Подтвердите номер", buttons=((Button(text="Назад", action="menu"),),),
                    prompt=Prompt(kind="phone", label="📱 Поделиться номером"))
    result = await sender.send(envelope(screen))
    first, second = fake.sent(CHAT)
    assert first.buttons() == [{"text": "Назад", "callback_data": "menu"}]
    assert second.params["text"] == "📱 Поделиться номером"
    assert second.markup["keyboard"][0][0]["request_contact"] is True
    assert result.platform_message_id == str(min(m for (_t, _c, m) in fake.messages))


async def test_quick_replies(sender, fake):
    await sender.send(envelope(Screen(text="Оценка?", prompt=Prompt(kind="choices",
                                                                    choices=("1", "2", "3")))))
    keyboard = fake.calls_of("sendMessage")[0].markup["keyboard"]
    assert [[b["text"] for b in row] for row in keyboard] == [["1", "2"], ["3"]]


async def test_removing_the_keyboard_keeps_the_inline_buttons(sender, fake):
    await sender.send(envelope(Screen(text="Номер подтверждён", remove_prompt=True)))
    assert fake.calls_of("sendMessage")[0].markup == {"remove_keyboard": True}
    screen = Screen(text="Меню", remove_prompt=True, buttons=((Button(text="Карта", action="card"),),))
    result = await sender.send(envelope(screen))
    assert fake.calls_of("sendMessage")[1].markup == {"remove_keyboard": True}
    edit = fake.calls_of("editMessageReplyMarkup")[0]
    assert edit.buttons() == [{"text": "Карта", "callback_data": "card"}]
    assert str(edit.params["message_id"]) == result.platform_message_id


async def test_replaces_edits_in_place(sender, fake):
    first = await sender.send(envelope(Screen(text="История, стр. 1",
                                              buttons=((Button(text="Дальше", action="history:2"),),))))
    screen = Screen(text="История, стр. 2", replaces=first.platform_message_id,
                    buttons=((Button(text="Назад", action="history:1"),),))
    result = await sender.send(envelope(screen))
    edit = fake.calls_of("editMessageText")[0]
    assert result.status == "sent" and result.platform_message_id == first.platform_message_id
    assert edit.params["text"] == "История, стр. 2"
    assert str(edit.params["message_id"]) == first.platform_message_id
    # the same content again: Telegram says "not modified", which is a success for us
    again = await sender.send(envelope(screen))
    assert again.status == "sent" and again.platform_message_id == first.platform_message_id
    assert len(fake.calls_of("sendMessage")) == 1


async def test_an_edit_telegram_cannot_make_becomes_a_new_message(sender, fake):
    photo = await sender.send(envelope(Screen(text="Карта", image=Image(filename="c.png", media_id="m")),
                                       {"m": PNG}))
    result = await sender.send(envelope(Screen(text="Баланс", replaces=photo.platform_message_id)))
    assert result.status == "sent" and result.platform_message_id != photo.platform_message_id
    gone = await sender.send(envelope(Screen(text="Баланс", replaces="999999")))
    assert gone.status == "sent"
    assert [c.method for c in fake.sent(CHAT)] == ["sendPhoto", "editMessageText", "sendMessage",
                                                    "editMessageText", "sendMessage"]


async def test_replacing_with_a_picture_edits_the_media(sender, fake):
    photo = await sender.send(envelope(Screen(text="Карта", image=Image(filename="c.png", media_id="m")),
                                       {"m": PNG}))
    screen = Screen(text="Приглашение", image=Image(filename="qr.png", media_id="q"),
                    replaces=photo.platform_message_id)
    result = await sender.send(envelope(screen, {"q": b"\x89PNG other"}))
    edit = fake.calls_of("editMessageMedia")[0]
    assert result.platform_message_id == photo.platform_message_id
    assert edit.photo == b"\x89PNG other" and edit.params["media"]["caption"] == "Приглашение"


async def test_429_is_a_retry_at_the_time_telegram_asks(sender, fake, clock):
    fake.fail("sendMessage", 429, retry_after=7)
    result = await sender.send(envelope(Screen(text="Привет")))
    assert result.status == "retry" and result.retry_at == clock.now() + timedelta(seconds=7)
    assert (await sender.send(envelope(Screen(text="Привет")))).status == "sent"


async def test_403_is_blocked(sender, fake):
    fake.fail("sendMessage", 403)
    result = await sender.send(envelope(Screen(text="Привет")))
    assert result.status == "blocked" and "blocked by the user" in result.reason


async def test_5xx_and_network_errors_retry_with_backoff(sender, fake, clock):
    fake.fail("sendPhoto", 500)
    screen = Screen(text="Карта", image=Image(filename="c.png", media_id="m"))
    first = await sender.send(envelope(screen, {"m": PNG}, attempts=0))
    assert first.status == "retry" and first.retry_at == clock.now() + timedelta(seconds=5)
    fake.fail("sendPhoto", 502, "Bad Gateway")
    later = await sender.send(envelope(screen, {"m": PNG}, attempts=3))
    assert later.status == "retry" and later.retry_at == clock.now() + timedelta(seconds=40)
    await fake.close()  # Telegram unreachable
    down = await sender.send(envelope(Screen(text="Привет")))
    assert down.status == "retry" and "TelegramNetworkError" in down.reason


async def test_400_fails_with_the_reason(sender, fake):
    fake.fail("sendMessage", 400, "Bad Request: chat not found")
    result = await sender.send(envelope(Screen(text="Привет")))
    assert (result.status, result.reason) == ("failed", "Bad Request: chat not found")


async def test_a_revoked_token_fails(fake, clock):
    session = api_session(fake.url)
    try:
        sender = TelegramSender(make_bot("123456:revoked-token", session), clock)
        result = await sender.send(envelope(Screen(text="Привет")))
    finally:
        await session.close()
    assert result.status == "failed" and "unauthorized" in result.reason.lower()
