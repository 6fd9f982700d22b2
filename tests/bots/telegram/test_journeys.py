"""Whole journeys in Telegram: the real webhook, aiogram, the dialog, the core, the sender, the fake."""

from __future__ import annotations

import io
import re

import zxingcpp
from PIL import Image
from sqlalchemy import select

from bots.dialog.texts import Texts
from core.db.models import Card, ChatMessage, Customer, LedgerEntry
from core.domain.program import default_program
from core.services.programs import put_program
from tests.bots.telegram.chat import Chat
from tests.fakes.telegram import Person

RU = Texts("ru")
ANNA_PHONE = "+79161234567"


async def consent(chat: Chat) -> None:
    await chat.start()
    await chat.press("reg:pd_yes")
    arrived = await chat.press("reg:ad_no")
    markup = arrived[-1].markup
    assert markup["keyboard"][0][0]["request_contact"] is True, "no share-phone button"


async def finish_profile(chat: Chat, name: str) -> list:
    await chat.say(name)
    await chat.press("reg:skip_birthday")
    return await chat.press("reg:gender_skip")


async def register(chat: Chat, phone: str, name: str = "Анна") -> list:
    """Consents, own contact (Telegram sends the phone without "+"), name; the welcome arrives."""
    await consent(chat)
    arrived = await chat.share_contact(phone.lstrip("+"))
    assert arrived[0].markup == {"remove_keyboard": True}
    return await finish_profile(chat, name)


async def customer(core, phone: str) -> Customer | None:
    async with core.ctx.db.read() as session:
        return await session.scalar(select(Customer).where(Customer.phone == phone))


async def card_number(core, customer_id: str) -> str:
    async with core.ctx.db.read() as session:
        return await session.scalar(select(Card.number).where(
            Card.customer_id == customer_id, Card.status == "active"))


def decode(png: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


async def test_register_with_own_contact(telegram, anna):
    chat = Chat(telegram, anna)
    welcome = await register(chat, ANNA_PHONE)
    found = await customer(telegram.core, ANNA_PHONE)
    assert found is not None and found.name == "Анна"
    card = next(c for c in welcome if c.method == "sendPhoto")
    number = await card_number(telegram.core, found.id)
    assert "Анна" in card.params["caption"] and number in card.params["caption"]
    assert decode(card.photo) == [number]
    assert "card" in chat.buttons(welcome[-1])  # the menu follows


async def test_someone_elses_contact_is_refused(telegram, anna):
    chat = Chat(telegram, anna)
    await consent(chat)
    arrived = await chat.share_contact("+79990001122", user_id=555_000_555)
    assert arrived[-1].params["text"] == RU("registration.contact_not_own", contact_button=True)
    arrived = await chat.share_contact("+79990001122", user_id=None)  # a contact from the phone book
    assert arrived[-1].params["text"] == RU("registration.contact_not_own", contact_button=True)
    assert await customer(telegram.core, "+79990001122") is None


async def test_register_by_sms_code(telegram, anna):
    chat = Chat(telegram, anna)
    await consent(chat)
    arrived = await chat.say("8 (916) 123-45-67")
    assert ANNA_PHONE in arrived[-1].params["text"] or "SMS" in arrived[-1].params["text"]
    [sms] = telegram.core.messengers.sms.texts_to(ANNA_PHONE)
    code = re.search(r"\b(\d{6})\b", sms).group(1)
    wrong = "000000" if code != "000000" else "111111"
    arrived = await chat.say(wrong)
    assert "Неверный код" in arrived[-1].params["text"]
    await chat.say(code)
    await finish_profile(chat, "Анна")
    assert (await customer(telegram.core, ANNA_PHONE)).name == "Анна"


async def test_wrong_codes_lock_the_phone(telegram, anna):
    chat = Chat(telegram, anna)
    await consent(chat)
    await chat.say(ANNA_PHONE)
    [sms] = telegram.core.messengers.sms.texts_to(ANNA_PHONE)
    code = re.search(r"\b(\d{6})\b", sms).group(1)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    answers = [(await chat.say(wrong))[-1].params["text"] for _ in range(6)]
    assert "Неверный код" in answers[0]
    assert "Слишком много неверных кодов" in answers[-1]
    assert "Слишком много неверных кодов" in (await chat.say(code))[-1].params["text"]
    assert await customer(telegram.core, ANNA_PHONE) is None


async def test_card_image_decodes_to_the_card_number(telegram, anna):
    chat = Chat(telegram, anna)
    await register(chat, ANNA_PHONE)
    arrived = await chat.press("card")
    photo = next(c for c in arrived if c.method in ("sendPhoto", "editMessageMedia"))
    number = await card_number(telegram.core, (await customer(telegram.core, ANNA_PHONE)).id)
    assert decode(photo.photo) == [number]
    assert number in chat.text_of(photo)


async def test_purchase_at_the_till_brings_a_notification(telegram, anna, auth):
    chat = Chat(telegram, anna)
    await register(chat, ANNA_PHONE)
    before = len(chat.seen)
    response = await telegram.client.post("/api/v1/purchases", headers=auth, json={
        "receipt_id": "r-1", "customer": {"phone": ANNA_PHONE}, "total": "1000.00"})
    assert response.status == 201
    arrived = await telegram.fake.wait_sent(anna.user_id, before + 1)
    notice = arrived[before].params["text"]
    assert "Спасибо за покупку" in notice and "50 бонусов" in notice


async def test_chat_message_lands_in_the_conversation(telegram, anna):
    chat = Chat(telegram, anna)
    await register(chat, ANNA_PHONE)
    await chat.press("chat")
    arrived = await chat.say("Во сколько вы открываетесь?")
    assert arrived[-1].params["text"] == RU("chat.received")
    await chat.photo(b"\xff\xd8\xff\xe0 receipt photo", caption="вот чек")
    found = await customer(telegram.core, ANNA_PHONE)
    async with telegram.core.ctx.db.read() as session:
        rows = list(await session.scalars(select(ChatMessage).where(
            ChatMessage.customer_id == found.id, ChatMessage.direction == "in")
            .order_by(ChatMessage.id)))
    assert [r.text for r in rows] == ["Во сколько вы открываетесь?", "вот чек"]
    assert rows[1].media_id is not None
    media = await telegram.core.messengers.media.get(found.merchant_id, rows[1].media_id)
    assert media[1] == b"\xff\xd8\xff\xe0 receipt photo"


async def test_referral_credited_after_the_friends_first_purchase(telegram, anna, auth, merchant_id):
    document = default_program().model_dump(mode="json")
    document["bonuses"]["referral"] = {"levels": [{"percent": 2}], "on": "first_purchase"}
    await put_program(telegram.core.ctx, merchant_id, document)
    chat = Chat(telegram, anna)
    await register(chat, ANNA_PHONE)
    invite = await chat.press("invite")
    link = re.search(r"https://t\.me/coffee_club_bot\?start=(ref_[A-Z0-9]+)", chat.text_of(invite[0]))
    assert link, chat.text_of(invite[0])
    boris = Person(user_id=222_333_444, first_name="Борис", last_name=None)
    friend = Chat(telegram, boris)
    await friend.start(link.group(1))
    await friend.press("reg:pd_yes")
    await friend.press("reg:ad_yes")
    await friend.share_contact("79035550000")
    await finish_profile(friend, "Борис")
    anna_customer = await customer(telegram.core, ANNA_PHONE)
    assert (await customer(telegram.core, "+79035550000")).referrer_id == anna_customer.id
    before = len(chat.seen)
    response = await telegram.client.post("/api/v1/purchases", headers=auth, json={
        "receipt_id": "b-1", "customer": {"phone": "+79035550000"}, "total": "1000.00"})
    assert response.status == 201
    arrived = await telegram.fake.wait_sent(anna.user_id, before + 1)
    assert "20 бонусов" in chat.text_of(arrived[before])
    async with telegram.core.ctx.db.read() as session:
        rewards = list(await session.scalars(select(LedgerEntry).where(
            LedgerEntry.customer_id == anna_customer.id, LedgerEntry.mechanic == "referral")))
    assert len(rewards) == 1
