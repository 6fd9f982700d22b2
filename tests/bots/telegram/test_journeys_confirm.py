"""A redemption the customer confirms, whole: till → 428 → the code in Telegram (or SMS) → the sale.

A customer registered through the bot earns points at the till; the program asks for
a confirmation, so a sale that spends points answers 428 and the code arrives as a
Telegram message. The cashier hears it from the customer and repeats the sale with
it. A customer who blocked the bot gets the code by SMS (the app's log gateway).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bots.dialog.texts import Texts
from core.config import Settings
from core.ports import FixedClock
from tests.bots.telegram.chat import Chat, Telegram
from tests.bots.telegram.test_journeys import register
from tests.fakes.telegram import Call, Person
from tests.merchant.apicheck import call

RU = Texts("ru")
PHONE = "+79161234567"
MOSCOW = ZoneInfo("Europe/Moscow")  # the merchant's time zone (the fixture's default)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No per-chat send limit (1 message/s): the sender's pacing is tested in test_sender."""
    return settings.model_copy(update={"send_rate_limit": False})


async def confirming_program(telegram: Telegram, auth: dict[str, str]) -> None:
    """The merchant turns on `redemption.confirm` in the current program (PUT /api/v1/program)."""
    status, current = await call(telegram.client, "GET", "/api/v1/program", headers=auth)
    assert status == 200
    document = current["document"]
    document.setdefault("redemption", {})["confirm"] = True
    status, body = await call(telegram.client, "PUT", "/api/v1/program", json=document, headers=auth)
    assert status == 200, body


async def sale(telegram: Telegram, auth: dict[str, str], receipt: str, total: str,
               **extra: Any) -> tuple[int, dict[str, Any]]:
    body = {"receipt_id": receipt, "customer": {"phone": PHONE}, "total": total, **extra}
    return await call(telegram.client, "POST", "/api/v1/purchases", json=body, headers=auth)


async def delivered(telegram: Telegram, chat: Chat) -> list[Call]:
    """Let the notifications consumer see every event, the sender send its rows; what arrived."""
    before = len(chat.seen)
    await telegram.core.outbox.drain()
    await telegram.settle()
    return chat.seen[before:]


def until(clock: FixedClock) -> datetime:
    """When a code issued now stops working, in the merchant's time zone (5 minutes)."""
    return (clock.now() + timedelta(minutes=5)).astimezone(MOSCOW)


def code_in(text: str) -> str:
    found = re.search(r"\b(\d{6})\b", text)
    assert found, text
    return found.group(1)


def purchase_notice(body: dict[str, Any]) -> str:
    """The purchase message as the customer reads it, from the till's answer."""
    return RU("notify.purchase", redeemed=Decimal(body["redeemed"]), accrued=Decimal(body["accrued"]),
              bonus=Decimal(0), balance=Decimal(body["balance"]["available"]),
              pending=Decimal(body["balance"]["pending"]), available_at=None)


async def customer_with_points(telegram: Telegram, anna: Person, auth: dict[str, str]) -> Chat:
    """Anna registers in the bot, the program asks for confirmations, a sale earns her 100."""
    chat = Chat(telegram, anna)
    await register(chat, PHONE)
    await confirming_program(telegram, auth)
    status, body = await sale(telegram, auth, "r-1", "2000.00")
    assert status == 201 and body["accrued"] == "100.00"  # nothing spent: nothing to confirm
    [notice] = await delivered(telegram, chat)
    assert notice.params["text"] == purchase_notice(body)
    return chat


async def test_the_code_arrives_in_telegram_and_the_till_repeats_the_sale(telegram, anna, auth, clock):
    chat = await customer_with_points(telegram, anna, auth)

    status, err = await sale(telegram, auth, "r-2", "200.00", redeem="50")
    assert status == 428
    assert err["error"]["code"] == "confirmation_required"
    [message] = await delivered(telegram, chat)
    assert message.method == "sendMessage"
    code = code_in(message.params["text"])
    assert message.params["text"] == RU("notify.redemption_code", code=code, amount=Decimal(50),
                                        until=until(clock))
    assert "Код действует до 12:05." in message.params["text"]  # 09:00 UTC + 5 min, in Moscow
    assert code not in str(err)  # the till learns the code only from the customer

    wrong = "000000" if code != "000000" else "111111"
    status, err = await sale(telegram, auth, "r-2", "200.00", redeem="50", confirmation_code=wrong)
    assert status == 422
    assert err["error"]["code"] == "confirmation_invalid"
    assert err["error"]["tries_left"] == 4
    assert await delivered(telegram, chat) == []  # a wrong code sends nothing new

    status, body = await sale(telegram, auth, "r-2", "200.00", redeem="50", confirmation_code=code)
    assert status == 201
    assert body["redeemed"] == "50.00"
    assert body["balance"]["available"] == "57.00"  # 100 - 50 + 5% of 150, whole points
    [notice] = await delivered(telegram, chat)
    assert notice.params["text"] == purchase_notice(body)
    assert "Списано: 50 бонусов" in notice.params["text"]
    assert "Ваш баланс: 57 бонусов" in notice.params["text"]


async def test_a_customer_who_blocked_the_bot_gets_the_code_by_sms(telegram, anna, auth):
    chat = await customer_with_points(telegram, anna, auth)
    telegram.fake.blocked_chats.add(anna.user_id)
    await chat.send(anna.blocked(telegram.fake.bots[telegram.token].id))  # Telegram tells the bot
    calls = len(telegram.fake.calls)

    status, err = await sale(telegram, auth, "r-2", "200.00", redeem="50")
    assert status == 428 and err["error"]["code"] == "confirmation_required"
    await delivered(telegram, chat)
    [sms] = telegram.core.messengers.sms.texts_to(PHONE)
    code = code_in(sms)
    assert sms == RU("notify.redemption_code_sms", code=code, amount=Decimal(50))
    assert code not in str(err)

    status, body = await sale(telegram, auth, "r-2", "200.00", redeem="50", confirmation_code=code)
    assert status == 201 and body["redeemed"] == "50.00"
    await delivered(telegram, chat)
    # Nothing was even tried in the blocked chat: neither the code nor the purchase notice.
    assert [c for c in telegram.fake.calls[calls:] if c.chat_id == anna.user_id] == []
    assert telegram.core.messengers.sms.texts_to(PHONE) == [sms]  # a purchase notice is no SMS


async def test_a_block_learned_from_the_bounce_sends_the_next_code_by_sms(telegram, anna, auth, clock):
    """Telegram's "blocked" update never came: the code bounces with 403; the till asks again."""
    chat = await customer_with_points(telegram, anna, auth)
    telegram.fake.blocked_chats.add(anna.user_id)

    assert (await sale(telegram, auth, "r-2", "200.00", redeem="50"))[0] == 428
    [bounced] = await delivered(telegram, chat)  # tried, answered 403 by Telegram
    assert bounced.method == "sendMessage" and "Ваш код" in bounced.params["text"]

    clock.advance_to(clock.now() + timedelta(seconds=61))  # no code came; a minute later, again
    assert (await sale(telegram, auth, "r-2", "200.00", redeem="50"))[0] == 428
    assert await delivered(telegram, chat) == []  # the bot is not tried again
    sms = telegram.core.messengers.sms.texts_to(PHONE)[-1]
    code = code_in(sms)
    assert sms == RU("notify.redemption_code_sms", code=code, amount=Decimal(50))
    status, body = await sale(telegram, auth, "r-2", "200.00", redeem="50", confirmation_code=code)
    assert status == 201 and body["balance"]["available"] == "57.00"
