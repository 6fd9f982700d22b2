"""Notifications: core events become one message on the customer's messenger, at the right time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from core.db.models import Bot, ChannelAccount, OutgoingMessage
from core.ids import new_id
from core.services.consents import ADVERTISING, record_consent
from core.services.customers import CustomerRef, RegisterCustomer, register_customer
from core.services.outgoing import MARKETING, REPLY, SERVICE
from core.services.programs import put_program
from core.services.purchases import register_sale
from core.services.sales_input import SaleInput
from tests.conftest import START

PHONE = "+79161234567"


async def customer_with_account(core: Any, merchant_id: str, *, locale: str = "ru",
                                blocked: bool = False) -> tuple[str, ChannelAccount]:
    _, body = await register_customer(core.ctx, merchant_id, RegisterCustomer(phone=PHONE))
    bot_id = new_id("bot")
    account = ChannelAccount(id=new_id("acc"), merchant_id=merchant_id, customer_id=body["id"],
                             channel="telegram", bot_id=bot_id, external_user_id="42",
                             chat_id="42", locale=locale, created_at=START, last_seen_at=START,
                             blocked_at=START if blocked else None)
    async with core.ctx.uow() as uow:
        uow.session.add(Bot(id=bot_id, merchant_id=merchant_id, channel="telegram",
                            created_at=START))
        await uow.session.flush()
        uow.session.add(account)
        await uow.commit()
    return body["id"], account


async def sell(core: Any, merchant_id: str, receipt: str, total_minor: int,
               redeem_cp: int = 0) -> dict[str, Any]:
    answer = await register_sale(core.ctx, merchant_id, SaleInput(
        receipt_id=receipt, total_minor=total_minor, customer=CustomerRef(phone=PHONE),
        redeem_cp=redeem_cp))
    return answer.body


async def outgoing(core: Any) -> list[OutgoingMessage]:
    async with core.ctx.db.read() as session:
        return list(await session.scalars(
            select(OutgoingMessage).order_by(OutgoingMessage.created_at, OutgoingMessage.id)))


async def emit(core: Any, merchant_id: str, type_: str, payload: dict[str, Any]) -> None:
    async with core.ctx.uow() as uow:
        uow.emit(merchant_id, type_, payload, occurred_at=core.ctx.now(), now=core.ctx.now(),
                 customer_id=payload["customer_id"])
        await uow.commit()


async def test_a_sale_sends_one_message_with_the_points_and_the_new_balance(core, merchant_id):
    _, account = await customer_with_account(core, merchant_id)
    first = await sell(core, merchant_id, "r-1", 100_000)
    await core.outbox.drain()
    second = await sell(core, merchant_id, "r-2", 60_000, redeem_cp=2_200)
    await core.outbox.drain()
    await core.outbox.drain()  # nothing twice

    rows = await outgoing(core)
    assert [row.kind for row in rows] == ["notify.purchase", "notify.purchase"]
    assert {row.priority for row in rows} == {SERVICE}
    assert all(row.not_before == START for row in rows)
    assert all(row.channel_account_id == account.id and row.chat_id == "42" for row in rows)
    assert (first["accrued"], first["balance"]["available"]) == ("50.00", "50.00")
    assert rows[0].body["text"] == "Спасибо за покупку!\nНачислено: 50 бонусов\nВаш баланс: 50 бонусов"
    assert (second["redeemed"], second["accrued"], second["balance"]["available"]) == (
        "22.00", "28.00", "56.00")
    assert rows[1].body["text"] == (
        "Спасибо за покупку!\nСписано: 22 бонуса\nНачислено: 28 бонусов\nВаш баланс: 56 бонусов")


async def test_english_account_and_currency_plural(core, merchant_id):
    await customer_with_account(core, merchant_id, locale="en")
    await sell(core, merchant_id, "r-1", 2_000)  # 5% of 20 = 1 point
    await core.outbox.drain()
    (row,) = await outgoing(core)
    assert "Earned: 1 point\n" in row.body["text"] + "\n"
    assert "Your balance: 1 point" in row.body["text"]


async def test_no_reachable_account_no_message(core, merchant_id):
    await customer_with_account(core, merchant_id, blocked=True)
    await sell(core, merchant_id, "r-1", 100_000)
    await core.outbox.drain()
    assert await outgoing(core) == []


async def test_quiet_hours_delay_a_reminder_but_not_a_purchase_notice(core, merchant_id, clock):
    customer_id, _ = await customer_with_account(core, merchant_id)
    late = datetime(2026, 3, 1, 20, 30, tzinfo=UTC)  # 23:30 in Moscow
    clock.advance_to(late)
    await sell(core, merchant_id, "r-late", 100_000)
    await emit(core, merchant_id, "PointsExpiringSoon",
               {"customer_id": customer_id, "points": "50.00",
                "expires_at": "2026-03-10T12:00:00+00:00"})
    await core.outbox.drain()
    purchase, reminder = await outgoing(core)
    assert (purchase.kind, purchase.not_before) == ("notify.purchase", late)
    assert reminder.kind == "notify.expiring"
    assert reminder.not_before == datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # 09:00 in Moscow
    assert reminder.body["text"] == "10.03.2026 сгорают бонусы: 50 бонусов. Успейте потратить их!"


async def test_a_reminder_in_the_day_goes_at_once(core, merchant_id, clock):
    customer_id, _ = await customer_with_account(core, merchant_id)
    await emit(core, merchant_id, "PointsActivated",
               {"customer_id": customer_id, "points": "3.00", "lot_id": "x"})
    await core.outbox.drain()
    (row,) = await outgoing(core)
    assert row.not_before == START  # 12:00 in Moscow
    assert row.body["text"].startswith("3 бонуса теперь можно тратить.")


async def test_redemption_code_goes_as_a_reply_or_by_sms(core, merchant_id, clock):
    customer_id, _ = await customer_with_account(core, merchant_id)
    payload = {"customer_id": customer_id, "receipt_id": "r-9", "redeem": "21.00",
               "code_sealed": core.ctx.secrets.encrypt("482913"),
               "expires_at": (START + timedelta(minutes=5)).isoformat()}
    await emit(core, merchant_id, "RedemptionCodeIssued", payload)
    await core.outbox.drain()
    (row,) = await outgoing(core)
    assert row.priority == REPLY
    assert row.body["text"].startswith("Ваш код: 482913\nК списанию: 21 бонус\n")
    assert "до 12:05" in row.body["text"]  # the merchant's time (Moscow)

    async with core.ctx.uow() as uow:  # the customer blocks the bot: the code comes by SMS
        stored = await uow.session.get(ChannelAccount, row.channel_account_id)
        stored.blocked_at = START
        await uow.commit()
    await emit(core, merchant_id, "RedemptionCodeIssued", {**payload, "receipt_id": "r-10"})
    await core.outbox.drain()
    assert len(await outgoing(core)) == 1
    assert core.messengers.sms.texts_to(PHONE) == [
        "Код: 482913. К списанию: 21 бонус. Не сообщайте его никому, если ничего не покупаете."]


async def test_marketing_needs_the_advertising_consent(core, merchant_id, clock):
    customer_id, _ = await customer_with_account(core, merchant_id)
    notices = core.messengers.notifications
    event = type("E", (), {"id": 1})()
    to = await notices_recipient(core, merchant_id, customer_id)
    assert not await notices.queue(event, to, "tier_up", priority=MARKETING, tier="Gold")
    await record_consent(core.ctx, merchant_id, ADVERTISING, True, text_version="v1",
                         channel="telegram", customer_id=customer_id)
    assert await notices.queue(event, to, "tier_up", priority=MARKETING, tier="Gold")
    await record_consent(core.ctx, merchant_id, ADVERTISING, False, text_version="v1",
                         channel="telegram", customer_id=customer_id)
    assert not await notices.queue(event, to, "tier_up", priority=MARKETING, tier="Gold")
    assert len(await outgoing(core)) == 1


async def notices_recipient(core: Any, merchant_id: str, customer_id: str) -> Any:
    from core.services.notices import recipient

    return await recipient(core.ctx, merchant_id, customer_id)


async def test_deliver_stores_images_and_queues_screens_in_order(core, merchant_id):
    from bots.dialog.delivery import deliver
    from bots.dialog.screens import Image, Reply, Screen
    from core.services.accounts import open_account

    _, account = await customer_with_account(core, merchant_id)
    state = await open_account(core.ctx, merchant_id, "telegram", account.bot_id, "42", "42", "ru")
    reply = Reply(screens=[Screen(text="Ваша карта", image=Image("card.png", data=b"\x89PNG-card")),
                           Screen(text="Меню")], toast="ok")
    ids = await deliver(core.messengers.deps, state, reply)
    rows = await outgoing(core)
    assert [row.id for row in rows] == ids
    assert [row.body["text"] for row in rows] == ["Ваша карта", "Меню"]
    assert {(row.priority, row.kind) for row in rows} == {(REPLY, "reply")}
    image = rows[0].body["image"]
    assert await core.messengers.media.get(merchant_id, image["media_id"]) == (
        "image/png", b"\x89PNG-card")


async def test_deep_links_go_to_the_bots_channel(core, merchant_id):
    _, account = await customer_with_account(core, merchant_id)

    async def telegram_link(bot_id: str, payload: str) -> str | None:
        return f"https://t.me/bot_{bot_id}?start={payload}"

    assert await core.messengers.deps.deep_link(account.bot_id, "ref_X") is None
    core.messengers.deep_links["telegram"] = telegram_link
    assert await core.messengers.deps.deep_link(account.bot_id, "ref_X") == (
        f"https://t.me/bot_{account.bot_id}?start=ref_X")
    assert await core.messengers.deps.deep_link("bot_unknown", "ref_X") is None


async def test_tier_bonus_and_referral_notices(core, merchant_id):
    customer_id, _ = await customer_with_account(core, merchant_id)
    await emit(core, merchant_id, "BonusCredited",
               {"customer_id": customer_id, "mechanic": "birthday", "points": "200.00"})
    await emit(core, merchant_id, "BonusCredited",  # told on the welcome screen already
               {"customer_id": customer_id, "mechanic": "welcome", "points": "100.00"})
    await emit(core, merchant_id, "ReferralRewarded",
               {"customer_id": customer_id, "friend_id": "x", "level": 1, "points": "2.00",
                "purchase_id": "p"})
    await emit(core, merchant_id, "PointsAdjusted", {"customer_id": customer_id})
    await core.outbox.drain()
    texts = [row.body["text"] for row in await outgoing(core)]
    assert texts == [
        "С днём рождения! 🎂\nВам начислено 200 бонусов.\nВаш баланс: 0 бонусов",
        "Ваш друг совершил покупку — вам начислено 2 бонуса.\nВаш баланс: 0 бонусов",
    ]


async def test_a_sale_that_reaches_a_tier_tells_both(core, merchant_id):
    await put_program(core.ctx, merchant_id, {"tiers": [
        {"id": "base", "name": "Базовый"},
        {"id": "silver", "name": "Серебро", "accrual_percent": "7", "threshold": "2500"},
    ]})
    await customer_with_account(core, merchant_id)
    await sell(core, merchant_id, "r-1", 300_000)
    await core.outbox.drain()
    rows = await outgoing(core)
    assert sorted(row.kind for row in rows) == ["notify.purchase", "notify.tier_up"]
    tier = next(row for row in rows if row.kind == "notify.tier_up")
    assert tier.body["text"] == "Поздравляем! Ваш новый уровень — «Серебро» 🎉"


def test_quiet_hours_edges():
    from datetime import time
    from zoneinfo import ZoneInfo

    from bots.dialog.notifications import quiet_until

    msk = ZoneInfo("Europe/Moscow")

    def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
        return datetime(2026, 3, day, hour, minute, tzinfo=msk)

    night = (time(21), time(9))
    assert quiet_until(at(20, 59), msk, *night) is None
    assert quiet_until(at(21), msk, *night) == at(9, day=2)
    assert quiet_until(at(3), msk, *night) == at(9)
    assert quiet_until(at(9), msk, *night) is None
    lunch = (time(13), time(14))  # quiet hours inside one day
    assert quiet_until(at(13, 30), msk, *lunch) == at(14)
    assert quiet_until(at(14), msk, *lunch) is None


async def test_a_malformed_event_is_skipped_and_later_notices_still_go(core, merchant_id):
    customer_id, _ = await customer_with_account(core, merchant_id)
    await emit(core, merchant_id, "RedemptionCodeIssued",
               {"customer_id": customer_id, "receipt_id": "r-1", "redeem": "5",
                "code_sealed": "not-a-sealed-code",
                "expires_at": (START + timedelta(minutes=5)).isoformat()})
    await emit(core, merchant_id, "PointsActivated",
               {"customer_id": customer_id, "points": "5.00", "lot_id": "x"})
    await core.outbox.drain()
    assert [row.kind for row in await outgoing(core)] == ["notify.activated"]


async def test_a_messenger_gets_the_notice_even_when_the_web_chat_was_used_last(core, merchant_id):
    customer_id, telegram = await customer_with_account(core, merchant_id)
    web_bot = new_id("bot")
    async with core.ctx.uow() as uow:
        uow.session.add(Bot(id=web_bot, merchant_id=merchant_id, channel="web", created_at=START))
        await uow.session.flush()
        uow.session.add(ChannelAccount(
            id=new_id("acc"), merchant_id=merchant_id, customer_id=customer_id, channel="web",
            bot_id=web_bot, external_user_id="visitor", chat_id="visitor", locale="ru",
            created_at=START, last_seen_at=START + timedelta(hours=1)))  # the page, seen later
        await uow.commit()
    await sell(core, merchant_id, "r-1", 100_000)
    await core.outbox.drain()
    [row] = await outgoing(core)
    assert row.channel_account_id == telegram.id  # a closed web page would never show it


async def test_one_drained_batch_tells_each_customer_at_their_own_best_account(core, merchant_id):
    """Recipients of a whole batch are found together: each sale's notice still goes to its own
    customer's most recently seen messenger, and a customer without one gets nothing."""
    phones = {"anna": "+79161110001", "boris": "+79161110002", "vera": "+79161110003"}
    ids = {}
    for name, phone in phones.items():
        _, body = await register_customer(core.ctx, merchant_id, RegisterCustomer(phone=phone))
        ids[name] = body["id"]
    accounts: dict[str, str] = {}
    async with core.ctx.uow() as uow:
        for name, seen in (("anna-old", START), ("anna-new", START + timedelta(days=2)),
                           ("vera", START + timedelta(days=1))):
            bot_id = new_id("bot")
            uow.session.add(Bot(id=bot_id, merchant_id=merchant_id, channel="telegram", created_at=START))
            await uow.session.flush()
            accounts[name] = new_id("acc")
            uow.session.add(ChannelAccount(
                id=accounts[name], merchant_id=merchant_id, customer_id=ids[name.split("-")[0]],
                channel="telegram", bot_id=bot_id, external_user_id=name, chat_id=name,
                locale="ru", created_at=START, last_seen_at=seen))
        await uow.commit()
    for n, name in enumerate(["anna", "boris", "vera", "anna"]):
        await register_sale(core.ctx, merchant_id, SaleInput(
            receipt_id=f"r-{n}", total_minor=100_000, customer=CustomerRef(phone=phones[name])))
    await core.outbox.drain()
    told = [row.channel_account_id for row in await outgoing(core) if row.kind == "notify.purchase"]
    assert sorted(told) == sorted([accounts["anna-new"], accounts["anna-new"], accounts["vera"]])
