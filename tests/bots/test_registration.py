"""Registration journeys through the real dialog: events in, screens out, the database after."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import date
from functools import partial
from typing import Any

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select, update

from app.gateways import LogSmsGateway, SmsRuGateway
from bots.dialog.build import build_dialog
from bots.dialog.dialog import Dialog, DialogDeps
from bots.dialog.screens import Event, Reply, Screen
from core.db.models import ChannelAccount, ChatMessage, Consent, Customer, Merchant
from core.services import conversations, merchants, registration
from core.services.customers import RegisterCustomer, register_customer
from core.services.media import DbMediaStore
from core.services.programs import put_program
from tests.fakes.sms_ru import FakeSmsRu

PHONE = "+79161234567"
WELCOME_PROGRAM = {"tiers": [{"id": "base", "name": "Базовый"}],
                   "bonuses": {"welcome": {"points": 150}}}


class Person:
    """One messenger user talking to the dialog; each call returns the dialog's reply."""

    def __init__(self, dialog: Dialog, merchant_id: str, user_id: str = "1001",
                 channel: str = "telegram", language: str | None = "ru") -> None:
        self.dialog, self.merchant_id, self.user_id = dialog, merchant_id, user_id
        self.channel, self.language = channel, language
        self.account_id: str | None = None

    async def _send(self, kind: str, **fields: Any) -> Reply:
        event = Event(channel=self.channel, merchant_id=self.merchant_id, bot_id="bot_1",
                      user_id=self.user_id, chat_id=self.user_id, kind=kind,
                      language=self.language, **fields)
        account, reply = await self.dialog.handle(event)
        self.account_id = account.id
        return reply

    async def start(self, payload: str | None = None) -> Reply:
        return await self._send("start", payload=payload)

    async def press(self, action: str) -> Reply:
        return await self._send("button", payload=action, message_ref="m1")

    async def says(self, text: str) -> Reply:
        return await self._send("text", text=text)

    async def shares(self, phone: str, *, own: bool = True) -> Reply:
        return await self._send("contact", contact_phone=phone, contact_is_own=own)


def text_of(reply: Reply) -> str:
    return "\n".join(screen.text for screen in reply.screens)


def actions(reply: Reply) -> list[str]:
    return [b.action for s in reply.screens for row in s.buttons for b in row if b.action]


def with_prompt(reply: Reply) -> Sequence[Screen]:
    return [s for s in reply.screens if s.prompt is not None]


@pytest.fixture
def sms() -> LogSmsGateway:
    return LogSmsGateway()


@pytest.fixture
async def dialog(core: Any, merchant_id: str, sms: LogSmsGateway) -> Dialog:
    async def deep_link(bot_id: str, payload: str) -> str:
        return f"https://t.me/coffee_bot?start={payload}"

    async with core.ctx.uow() as uow:
        await uow.session.execute(update(Merchant).where(Merchant.id == merchant_id).values(
            legal_name='ООО "Кофейня"', privacy_policy_url="https://coffee.example/privacy"))
        await uow.commit()
    return build_dialog(DialogDeps(ctx=core.ctx, sms=sms, media=DbMediaStore(core.ctx),
                                   deep_link=deep_link))


async def through_consents(person: Person, payload: str | None = None, *, ads: bool = True) -> Reply:
    reply = await person.start(payload)
    assert "reg:pd_yes" in actions(reply)
    await person.press("reg:pd_yes")
    return await person.press("reg:ad_yes" if ads else "reg:ad_no")


async def customer_of(core: Any, person: Person) -> Customer:
    async with core.ctx.db.read() as session:
        account = await session.get(ChannelAccount, person.account_id)
        assert account is not None and account.customer_id is not None
        customer = await session.get(Customer, account.customer_id)
        assert customer is not None
        return customer


def last_code(sms: LogSmsGateway, phone: str = PHONE) -> str:
    found = re.search(r"\b(\d{6})\b", sms.texts_to(phone)[-1])
    assert found is not None
    return found.group(1)


async def test_register_with_own_contact(core: Any, merchant_id: str, dialog: Dialog) -> None:
    await put_program(core.ctx, merchant_id, WELCOME_PROGRAM)
    person = Person(dialog, merchant_id)
    consent = await person.start()
    assert 'ООО "Кофейня"' in text_of(consent) and "152-ФЗ" in text_of(consent)
    assert any(b.url == "https://coffee.example/privacy" for row in consent.screens[0].buttons
               for b in row)
    ads = await person.press("reg:pd_yes")
    assert "38-ФЗ" in text_of(ads) and {"reg:ad_yes", "reg:ad_no"} <= set(actions(ads))
    phone = await person.press("reg:ad_yes")
    [prompt] = with_prompt(phone)
    assert prompt.prompt is not None and prompt.prompt.kind == "phone"

    confirmed = await person.shares("79161234567")  # Telegram gives it without "+"
    assert "Номер подтверждён" in text_of(confirmed) and "Как вас зовут" in text_of(confirmed)
    assert any(s.remove_prompt for s in confirmed.screens)
    birthday = await person.says("  Анна  ")
    assert "ДД.ММ.ГГГГ" in text_of(birthday) and "reg:skip_birthday" in actions(birthday)
    assert "Такого дня нет" in text_of(await person.says("31.02.1990"))
    assert "ДД.ММ.ГГГГ" in text_of(await person.says("весной"))
    assert "ещё не наступила" in text_of(await person.says("01.01.2030"))
    gender = await person.says("25.04.1990")
    assert {"reg:gender_m", "reg:gender_f", "reg:gender_skip"} <= set(actions(gender))

    welcome = await person.press("reg:gender_f")
    customer = await customer_of(core, person)
    card = welcome.screens[0]
    assert card.image is not None and card.image.data is not None
    assert PILImage.open(io.BytesIO(card.image.data)).format == "PNG"
    assert "Анна, добро пожаловать" in card.text
    assert "150 бонусов" in card.text
    assert len(welcome.screens) > 1  # the menu follows the welcome
    assert (customer.phone, customer.name, customer.birth_date, customer.gender) == (
        PHONE, "Анна", date(1990, 4, 25), "f")
    assert customer.registration_channel == "telegram"


async def test_consents_are_logged_with_versions_and_join_the_customer(
        core: Any, merchant_id: str, dialog: Dialog) -> None:
    person = Person(dialog, merchant_id)
    await person.start()
    declined = await person.press("reg:pd_no")
    assert "не можем выпустить карту" in text_of(declined)
    await person.press("reg:pd_yes")
    await person.press("reg:ad_no")
    await person.shares(PHONE)
    customer = await customer_of(core, person)
    async with core.ctx.db.read() as session:
        rows = list(await session.scalars(select(Consent).order_by(Consent.id)))
    assert [(r.kind, r.granted, r.text_version, r.channel) for r in rows] == [
        ("personal_data", False, "pd-2026.03/ru", "telegram"),
        ("personal_data", True, "pd-2026.03/ru", "telegram"),
        ("advertising", False, "ad-2026.03/ru", "telegram"),
    ]
    assert {r.customer_id for r in rows} == {customer.id}
    assert {r.channel_account_id for r in rows} == {person.account_id}


async def test_someone_elses_contact_is_refused(core: Any, merchant_id: str, dialog: Dialog) -> None:
    person = Person(dialog, merchant_id)
    await through_consents(person)
    refused = await person.shares("+79169999999", own=False)
    assert "не ваш контакт" in text_of(refused)
    assert with_prompt(refused)  # asked again
    async with core.ctx.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0
    await person.shares(PHONE)
    assert (await customer_of(core, person)).phone == PHONE


async def test_register_by_sms_code(core: Any, merchant_id: str, dialog: Dialog,
                                    sms: LogSmsGateway) -> None:
    person = Person(dialog, merchant_id, channel="web", language="en")
    await through_consents(person)
    assert "not look like a phone" in text_of(await person.says("hello"))
    sent = await person.says("+7 916 123-45-67")
    assert f"code by SMS to {PHONE}" in text_of(sent) and "reg:resend" in actions(sent)
    assert sent.screens[-1].remove_prompt  # a code is typed: the share-phone keyboard goes
    again = await person.press("reg:resend")
    assert "in 60 seconds" in text_of(again)
    code = last_code(sms)
    wrong = await person.says(f"{(int(code) + 1) % 1_000_000:06d}")
    assert "Wrong code. 4 tries left." in text_of(wrong)
    assert "6 digits" in text_of(await person.says("12-34"))
    confirmed = await person.says(code)
    assert "Number confirmed" in text_of(confirmed) and "your name" in text_of(confirmed)
    await person.says("Ann")
    await person.press("reg:skip_birthday")
    welcome = await person.press("reg:gender_skip")
    customer = await customer_of(core, person)
    assert "Welcome to Кофейня, Ann!" in welcome.screens[0].text
    assert customer.registration_channel == "web" and customer.birth_date is None
    assert customer.gender is None


async def test_five_wrong_codes_lock_registration(core: Any, merchant_id: str, dialog: Dialog,
                                                  sms: LogSmsGateway) -> None:
    person = Person(dialog, merchant_id)
    await through_consents(person)
    await person.says(PHONE)
    wrong = f"{(int(last_code(sms)) + 1) % 1_000_000:06d}"
    answers = [text_of(await person.says(wrong)) for _ in range(5)]
    assert "Осталось 4 попытки" in answers[0] and "Осталась 1 попытка" in answers[3]
    # 09:00 UTC is 12:00 in Moscow: locked for 15 minutes.
    assert "Попробуйте снова после 12:15" in answers[4]
    still = await person.says(last_code(sms))
    assert "после 12:15" in text_of(still)
    async with core.ctx.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_a_customer_from_the_till_is_linked_not_duplicated(
        core: Any, merchant_id: str, dialog: Dialog) -> None:
    _, till = await register_customer(core.ctx, merchant_id,
                                      RegisterCustomer(phone=PHONE, name="Иван", channel="api"))
    person = Person(dialog, merchant_id)
    await person.start()
    assert person.account_id is not None
    await conversations.record_inbound(core.ctx, DbMediaStore(core.ctx), merchant_id, person.account_id,
                                       text="Здравствуйте, где ближайшая кофейня?")
    await person.press("reg:pd_yes")
    await person.press("reg:ad_yes")
    found = await person.shares(PHONE)
    assert "Нашли вашу карту" in text_of(found)
    assert "ДД.ММ.ГГГГ" in text_of(found)  # the name is known: straight to the birthday
    await person.press("reg:skip_birthday")
    welcome = await person.press("reg:gender_m")
    assert "Иван, с возвращением" in welcome.screens[0].text
    assert till["card_number"] in welcome.screens[0].text
    async with core.ctx.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 1
        message = (await session.scalars(select(ChatMessage))).one()
        consent_owners = set(await session.scalars(select(Consent.customer_id)))
    assert (await customer_of(core, person)).id == till["id"]
    assert message.customer_id == till["id"]
    assert consent_owners == {till["id"]}


async def test_referral_and_source_payloads(core: Any, merchant_id: str, dialog: Dialog) -> None:
    _, friend = await register_customer(core.ctx, merchant_id, RegisterCustomer(phone="+79160000001"))
    referred = Person(dialog, merchant_id, user_id="2001")
    await through_consents(referred, "ref_" + friend["referral_code"])
    await referred.shares(PHONE)
    assert (await customer_of(core, referred)).referrer_id == friend["id"]

    tagged = Person(dialog, merchant_id, user_id="2002")
    await through_consents(tagged, "qr-store_5")
    await tagged.shares("+79160000003")
    customer = await customer_of(core, tagged)
    assert (customer.source, customer.referrer_id) == ("qr-store_5", None)

    unknown = Person(dialog, merchant_id, user_id="2003")
    await through_consents(unknown, "ref_NOSUCH")
    await unknown.shares("+79160000004")
    assert (await customer_of(core, unknown)).referrer_id is None


async def test_a_customer_only_button_before_registration_leads_to_registration(
        core: Any, merchant_id: str, dialog: Dialog) -> None:
    person = Person(dialog, merchant_id)
    reply = await person.press("card")
    assert "reg:pd_yes" in actions(reply)
    await person.press("reg:pd_yes")
    stale = await person.press("reg:gender_m")  # another step's button: the current question
    assert stale.toast is not None and {"reg:ad_yes", "reg:ad_no"} <= set(actions(stale))
    typed = await person.says("А овсяное молоко у вас есть?")  # not an answer: asked again,
    assert {"reg:ad_yes", "reg:ad_no"} <= set(actions(typed))
    async with core.ctx.db.read() as session:  # and the question reached the conversation
        assert (await session.scalars(select(ChatMessage.text))).one() == "А овсяное молоко у вас есть?"


async def test_start_for_a_registered_customer_shows_the_menu(core: Any, merchant_id: str,
                                                              dialog: Dialog) -> None:
    person = Person(dialog, merchant_id)
    await through_consents(person)
    await person.shares(PHONE)
    await person.says("Анна")
    await person.press("reg:skip_birthday")
    await person.press("reg:gender_skip")
    menu = await person.start("ref_SOMEONE")
    assert "reg:pd_yes" not in actions(menu) and menu.screens
    assert (await customer_of(core, person)).referrer_id is None


async def test_retyping_the_same_phone_waits_for_the_code_already_sent(
        core: Any, merchant_id: str, dialog: Dialog, sms: LogSmsGateway) -> None:
    person = Person(dialog, merchant_id)
    await through_consents(person)
    await person.says(PHONE)
    await person.press("reg:other_phone")
    again = await person.says("8 916 123 45 67")
    assert "через 60 секунд" in text_of(again)
    assert len(sms.texts_to(PHONE)) == 1
    assert "Номер подтверждён" in text_of(await person.says(last_code(sms)))


async def test_when_sms_ru_refuses_the_person_is_told_and_may_retry(
        core: Any, merchant_id: str) -> None:
    await merchants.set_secret(core.ctx, merchant_id, "sms.ru:api_id", "test-api-id")
    async with FakeSmsRu() as fake:
        gateway = SmsRuGateway(fake.url, partial(merchants.get_secret, core.ctx))
        dialog = build_dialog(DialogDeps(ctx=core.ctx, sms=gateway, media=DbMediaStore(core.ctx),
                                         deep_link=_no_link))
        person = Person(dialog, merchant_id)
        await through_consents(person)
        fake.fail(201, times=1)  # the merchant's SMS.ru balance ran out
        failed = await person.says(PHONE)
        assert "Не удалось отправить SMS" in text_of(failed) and with_prompt(failed)
        sent = await person.says(PHONE)  # at once: the failed attempt did not count
        assert "Отправили SMS" in text_of(sent)
        code = re.search(r"\d{6}", fake.texts_to(PHONE)[-1])
        assert code is not None
        assert "Номер подтверждён" in text_of(await person.says(code.group(0)))
        await gateway.close()


async def _no_link(bot_id: str, payload: str) -> str | None:
    return None


@pytest.mark.parametrize(("payload", "kept"), [
    ("ref_abc123", {"ref": "ABC123"}), ("store-7", {"source": "store-7"}),
    ("has space", {}), ("x" * 65, {}), ("", {}), (None, {}), ("ref_", {"source": "ref_"}),
])
def test_start_payloads(payload: str | None, kept: dict[str, str]) -> None:
    assert registration.parse_start_payload(payload) == kept
