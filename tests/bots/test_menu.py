"""Issue 4, the main menu: what a registered customer sees behind each button of the dialog."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from itertools import count

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from bots.dialog.build import build_dialog
from bots.dialog.dialog import Dialog, DialogDeps
from bots.dialog.program_text import program_text
from bots.dialog.screens import MAX_ACTION_BYTES, Event, Reply, Screen
from core.db.models import ChannelAccount, ChatMessage, Consent, Customer, LedgerEntry, Media, Review
from core.services import accounts
from core.services.conversations import link_account_messages, thread
from core.services.customers import RegisterCustomer, adjust_points, register_customer
from core.services.media import DbMediaStore
from core.services.programs import merchant_and_program, put_program

PHONE = "+79161234567"
BOT = "bot_test"
PROGRAM = {
    "title": "Кофейня: бонусы за каждый кофе",
    "tiers": [{"id": "silver", "name": "Серебряный", "accrual_percent": "5"},
              {"id": "gold", "name": "Золотой", "accrual_percent": "10", "threshold": "10000"}],
    "bonuses": {
        "welcome": {"points": "1", "activation_days": 2},
        "review": {"points": "50", "once": True},
        "referral": {"levels": [{"percent": "10"}], "friend_bonus": {"points": "100"}},
    },
}


class NoSms:
    """The SmsGateway port; the menu never sends SMS."""

    async def send(self, merchant_id: str, phone: str, text: str) -> str:
        raise AssertionError("the menu sends no SMS")


async def deep_link(bot_id: str, payload: str) -> str | None:
    return "https://t.me/testbot?start=" + payload


class Chat:
    """One person in one messenger, pressing buttons and writing to the dialog."""

    def __init__(self, dialog: Dialog, merchant_id: str, user_id: str, language: str = "ru") -> None:
        self.dialog, self.merchant_id, self.user_id, self.language = dialog, merchant_id, user_id, language
        self.refs = count(1)

    def _event(self, kind: str, **fields) -> Event:
        return Event(channel="telegram", merchant_id=self.merchant_id, bot_id=BOT,
                     user_id=self.user_id, chat_id=self.user_id, kind=kind,
                     language=self.language, **fields)

    async def press(self, action: str, message_ref: str | None = None) -> Reply:
        ref = message_ref or f"m{next(self.refs)}"
        _account, reply = await self.dialog.handle(self._event("button", payload=action, message_ref=ref))
        return reply

    async def write(self, text: str | None = None, photo: bytes | None = None) -> Reply:
        kind = "photo" if photo else "text"
        _account, reply = await self.dialog.handle(self._event(kind, text=text, photo=photo))
        return reply


def actions(screen: Screen) -> list[str]:
    return [b.action for row in screen.buttons for b in row if b.action]


def decode(png: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


@pytest.fixture
async def dialog(core) -> Dialog:
    return build_dialog(DialogDeps(ctx=core.ctx, sms=NoSms(), media=DbMediaStore(core.ctx),
                                   deep_link=deep_link))


async def customer_in_chat(core, merchant_id, dialog, user_id="100", phone=PHONE, language="ru",
                           name="Иван") -> tuple[Chat, dict]:
    """A customer registered at a till, and their messenger account linked to them."""
    _created, customer = await register_customer(
        core.ctx, merchant_id, RegisterCustomer(phone=phone, name=name, channel="api"))
    account = await accounts.open_account(core.ctx, merchant_id, "telegram", BOT, user_id, user_id,
                                          language)
    async with core.ctx.uow() as uow:
        row = await uow.session.get(ChannelAccount, account.id)
        row.customer_id = customer["id"]
        await uow.commit()
    return Chat(dialog, merchant_id, user_id, language), customer | {"account_id": account.id}


@pytest.fixture
async def program(core, merchant_id):
    await put_program(core.ctx, merchant_id, PROGRAM)


async def test_menu_has_every_section_and_short_actions(core, merchant_id, dialog, program):
    chat, _customer = await customer_in_chat(core, merchant_id, dialog)
    reply = await chat.press("menu")
    [screen] = reply.screens
    assert screen.text == "Главное меню. Что показать?"
    assert actions(screen) == ["card", "balance", "tier", "history", "promo", "invite", "review",
                               "chat", "profile"]
    assert all(len(a.encode()) <= MAX_ACTION_BYTES for a in actions(screen))


async def test_card_image_carries_the_card_number(core, merchant_id, dialog, program):
    chat, customer = await customer_in_chat(core, merchant_id, dialog)
    [screen] = (await chat.press("card")).screens
    assert screen.image is not None and screen.image.filename == "card.png"
    assert decode(screen.image.data) == [customer["card_number"]]
    assert customer["card_number"] in screen.text
    assert "«Серебряный»" in screen.text


async def test_balance_counts_in_the_currency_with_plural_forms(core, merchant_id, dialog, program):
    chat, customer = await customer_in_chat(core, merchant_id, dialog)
    await adjust_points(core.ctx, merchant_id, customer["id"], 500, "test")
    [screen] = (await chat.press("balance")).screens
    lines = screen.text.splitlines()
    assert lines[0] == "Доступно: 5 бонусов"
    # The welcome bonus (1 point) activates two days after 01.03.2026 12:00 in Moscow.
    assert "Ожидают начисления: 1 бонус" in lines
    assert "• 1 бонус — с 03.03.2026" in lines
    assert lines[3:] == ["Сгорят:", "• 5 бонусов — 01.03.2027"]  # points live 365 days
    assert "Долг" not in screen.text


async def test_balance_in_english(core, merchant_id, dialog, program):
    chat, customer = await customer_in_chat(core, merchant_id, dialog, language="en")
    await adjust_points(core.ctx, merchant_id, customer["id"], 100, "test")
    [screen] = (await chat.press("balance")).screens
    assert screen.text.splitlines()[0] == "Available: 1 point"
    assert "Pending: 1 point" in screen.text


async def test_tier_shows_rate_and_the_way_to_the_next(core, merchant_id, dialog, program):
    chat, _customer = await customer_in_chat(core, merchant_id, dialog)
    [screen] = (await chat.press("tier")).screens
    assert screen.text.splitlines() == [
        "Ваш уровень: «Серебряный»",
        "Начисляем 5% от покупок бонусами.",
        "Следующий уровень: «Золотой» — осталось купить на 10\u202f000 ₽.",
    ]


async def test_history_pages_edit_the_message_in_place(core, merchant_id, dialog, program, clock):
    chat, customer = await customer_in_chat(core, merchant_id, dialog)
    start = clock.now()
    for n in range(1, 8):  # with the welcome bonus: 8 entries, 5 on the first page
        clock.advance_to(start + timedelta(days=n))
        await adjust_points(core.ctx, merchant_id, customer["id"], n * 100, "test")
    [first] = (await chat.press("history")).screens
    assert first.replaces is None
    body = first.text.splitlines()
    assert body[0] == "История баллов:"
    assert body[1] == "08.03.2026  +7 бонусов — начислено вручную"
    assert len(body) == 6
    [older] = [a for a in actions(first) if a.startswith("history:")]
    [second] = (await chat.press(older, message_ref="tg-77")).screens
    assert second.replaces == "tg-77"
    assert second.text.splitlines()[1:] == [
        "03.03.2026  +2 бонуса — начислено вручную",
        "02.03.2026  +1 бонус — начислено вручную",
        "01.03.2026  +1 бонус — приветственный бонус",
    ]
    assert not any(a.startswith("history:") and a != "history:0" for a in actions(second))
    [back] = (await chat.press("history:0", message_ref="tg-77")).screens
    assert back.replaces == "tg-77" and back.text == first.text


async def test_promotions_is_the_program_in_words(core, merchant_id, dialog, program):
    chat, _customer = await customer_in_chat(core, merchant_id, dialog)
    _merchant, current = await merchant_and_program(core.ctx, merchant_id)
    [screen] = (await chat.press("promo")).screens
    assert screen.text == program_text(current, "ru").strip()
    assert screen.text.startswith("Кофейня: бонусы за каждый кофе")


async def test_invite_gives_a_personal_link_and_its_qr(core, merchant_id, dialog, program):
    chat, customer = await customer_in_chat(core, merchant_id, dialog)
    [screen] = (await chat.press("invite")).screens
    link = "https://t.me/testbot?start=ref_" + customer["referral_code"]
    assert link in screen.text.splitlines()
    assert decode(screen.image.data) == [link]
    assert "Друг получит 1 бонус за регистрацию и ещё 100 бонусов в подарок по приглашению." in screen.text
    assert "Вы получите 10% с каждой его покупки." in screen.text


async def review_points(core, customer_id) -> int:
    async with core.ctx.db.read() as session:
        return await session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.customer_id == customer_id, LedgerEntry.mechanic == "review"))


async def test_review_with_comment_earns_the_bonus_once(core, merchant_id, dialog, program):
    chat, customer = await customer_in_chat(core, merchant_id, dialog)
    [ask] = (await chat.press("review")).screens
    assert actions(ask)[:11] == [f"review:{n}" for n in range(11)]
    [comment] = (await chat.press("review:9", message_ref="tg-5")).screens
    assert comment.replaces == "tg-5" and actions(comment) == ["review:skip"]
    [thanks] = (await chat.write("Вкусный кофе, быстро")).screens
    assert thanks.text == "Спасибо за отзыв! Начислили 50 бонусов 🎁"
    await chat.press("review")
    await chat.press("review:3")
    [again] = (await chat.press("review:skip")).screens
    assert again.text == "Спасибо за отзыв!"
    assert await review_points(core, customer["id"]) == 1
    async with core.ctx.db.read() as session:
        reviews = list(await session.execute(select(Review.score, Review.comment).order_by(Review.id)))
    assert [tuple(r) for r in reviews] == [(9, "Вкусный кофе, быстро"), (3, None)]
    # After the review, text is a chat message again, not a comment.
    [after] = (await chat.write("А когда вы открываетесь?")).screens
    assert after.text.startswith("Сообщение получено")


async def test_chat_text_and_photos_reach_the_thread(core, merchant_id, dialog, program):
    chat, customer = await customer_in_chat(core, merchant_id, dialog)
    [opened] = (await chat.press("chat")).screens
    assert opened.text.startswith("Напишите сообщение")
    await chat.write("Здравствуйте! Забыл карту дома")
    photo = b"\xff\xd8\xff\xe0 a jpeg of a receipt"
    [got] = (await chat.write(text="чек", photo=photo)).screens
    assert got.text.startswith("Сообщение получено")
    messages = await thread(core.ctx, merchant_id, customer_id=customer["id"])
    assert [(m["direction"], m["text"]) for m in messages] == [
        ("in", "Здравствуйте! Забыл карту дома"), ("in", "чек")]
    stored = await DbMediaStore(core.ctx).get(merchant_id, messages[1]["media_id"])
    assert stored == ("image/jpeg", photo)


async def test_guest_messages_are_kept_and_join_the_thread_on_linking(core, merchant_id, dialog, program):
    guest = Chat(dialog, merchant_id, "555")
    [screen] = (await guest.write("Вы работаете в воскресенье?")).screens
    assert actions(screen) == ["register"]
    async with core.ctx.db.read() as session:
        account = await session.scalar(select(ChannelAccount).where(
            ChannelAccount.external_user_id == "555"))
    assert [m["text"] for m in await thread(core.ctx, merchant_id, account_id=account.id)] == [
        "Вы работаете в воскресенье?"]
    _created, customer = await register_customer(core.ctx, merchant_id, RegisterCustomer(phone=PHONE))
    assert await link_account_messages(core.ctx, account.id, customer["id"]) == 1
    assert [m["text"] for m in await thread(core.ctx, merchant_id, customer_id=customer["id"])] == [
        "Вы работаете в воскресенье?"]


async def test_a_guest_photo_is_not_stored_until_registration(core, merchant_id, dialog, program):
    guest = Chat(dialog, merchant_id, "556")
    [screen] = (await guest.write(photo=b"\xff\xd8 a big photo")).screens
    assert actions(screen) == ["register"]
    assert "после регистрации" in screen.text
    async with core.ctx.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Media)) == 0


async def test_profile_edits_name_birthday_gender_and_advertising(core, merchant_id, dialog, program):
    chat, customer = await customer_in_chat(core, merchant_id, dialog)
    [profile] = (await chat.press("profile")).screens
    assert "Имя: Иван" in profile.text and "Рекламная рассылка: выключена" in profile.text
    await chat.press("profile:name")
    await chat.write("Иван Петрович")
    await chat.press("profile:birthday")
    [bad] = (await chat.write("31.02.1990")).screens
    assert bad.text.startswith("Такого дня нет")
    await chat.write("25.04.1990")
    await chat.press("profile:gender")
    await chat.press("profile:g_m")
    reply = await chat.press("profile:ads_on", message_ref="tg-9")
    assert reply.toast.startswith("Рассылка включена")
    [shown] = reply.screens
    assert shown.replaces == "tg-9"
    assert shown.text.splitlines()[1:4] == ["Имя: Иван Петрович", "День рождения: 25.04.1990",
                                             "Пол: мужской"]
    assert "Рекламная рассылка: включена" in shown.text
    assert "profile:ads_off" in actions(shown)
    async with core.ctx.db.read() as session:
        consent = await session.scalar(select(Consent).where(Consent.customer_id == customer["id"]))
    assert (consent.kind, consent.granted, consent.channel) == ("advertising", True, "telegram")
    assert consent.text_version == "ad-profile-2026.03/ru"


async def test_export_holds_everything_including_the_phone(core, merchant_id, dialog, program):
    chat, customer = await customer_in_chat(core, merchant_id, dialog)
    await chat.write("Привет")
    intro, *parts = (await chat.press("profile:export")).screens
    assert intro.text.startswith("Все данные, которые мы о вас храним")
    assert all(len(p.text) <= 4000 for p in parts)
    document = json.loads("\n".join(p.text for p in parts))
    assert document["customer"]["phone"] == PHONE
    assert [c["number"] for c in document["cards"]] == [customer["card_number"]]
    assert [m["text"] for m in document["messages"]] == ["Привет"]
    assert document["ledger"][0]["mechanic"] == "welcome"


async def test_delete_my_data_forgets_the_person_and_frees_the_phone(core, merchant_id, dialog, program):
    chat, customer = await customer_in_chat(core, merchant_id, dialog)
    await chat.write("Мой номер +79161234567, Иван")
    [confirm] = (await chat.press("profile:delete")).screens
    assert actions(confirm) == ["profile:delete_yes", "profile"]
    [gone] = (await chat.press("profile:delete_yes")).screens
    assert gone.text.startswith("Ваши данные удалены") and actions(gone) == ["register"]
    async with core.ctx.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Customer).where(
            (Customer.phone == PHONE) | (Customer.name == "Иван"))) == 0
        texts = list(await session.scalars(select(ChatMessage.text)))
        assert texts == [None]
    # The account is a guest again: the card is gone from it, and the phone registers anew.
    after = await chat.press("card")
    assert all(s.image is None or decode(s.image.data) != [customer["card_number"]] for s in after.screens)
    created, again = await register_customer(core.ctx, merchant_id, RegisterCustomer(phone=PHONE))
    assert created and again["id"] != customer["id"]
