"""The widget in a real browser (Debian's chromium): register by SMS code, see the menu, reload."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from app.web import create_app
from bots.web.setup import WEB_CHAT
from core.services import webchat
from core.services.outgoing import REPLY, NewOutgoing, enqueue
from tests.bots.web.conftest import Pump

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no browser at {CHROMIUM}")
async_api = pytest.importorskip("playwright.async_api")
expect = async_api.expect
expect.set_options(timeout=20_000)  # a bound for a slow machine, not a timing assertion


@pytest.fixture
async def server(core, merchant_id) -> AsyncIterator[TestServer]:
    """The whole app on a real port, with the outgoing dispatcher draining."""
    test_server = TestServer(create_app(core, background=False), host="127.0.0.1")
    await test_server.start_server()
    async with Pump(core):
        yield test_server
    await test_server.close()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    async with async_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        await chromium.close()


async def test_register_by_sms_code_then_the_thread_survives_a_reload(server, browser, core, merchant_id):
    context = await browser.new_context(locale="ru-RU")
    page = await context.new_page()
    await page.goto(str(server.make_url("/chat/coffee")))
    log = page.get_by_role("log")
    await expect(page.get_by_label("Сообщение")).to_be_hidden()  # a first visit: only "Start"

    await page.get_by_role("button", name="Начать").click()
    await expect(log).to_contain_text("152-ФЗ")
    await page.get_by_role("button", name="Согласен", exact=True).click()
    await page.get_by_role("button", name="Да, присылайте").click()

    # The phone prompt becomes a phone field (there is no contact sharing on the web).
    phone = page.get_by_label("Номер телефона")
    await expect(phone).to_have_attribute("type", "tel")
    await phone.fill("+7 916 123-45-67")
    await phone.press("Enter")
    await expect(log).to_contain_text("Отправили SMS")
    [sms] = core.messengers.sms.texts_to("+79161234567")
    code = re.search(r"\b\d{6}\b", sms).group()

    message = page.get_by_label("Сообщение")
    await message.fill(code)
    await message.press("Enter")
    await expect(log).to_contain_text("Номер подтверждён")
    await expect(log).to_contain_text("Как вас зовут?")
    await message.fill("Анна")
    await message.press("Enter")
    await expect(log).to_contain_text("Когда у вас день рождения?")
    await page.get_by_role("button", name="Пропустить").last.click()
    await expect(log).to_contain_text("Ваш пол?")
    await page.get_by_role("button", name="Пропустить").last.click()
    await expect(log).to_contain_text("Анна, добро пожаловать")
    await expect(log).to_contain_text("Главное меню")
    card = log.locator("img.msg__image")
    await expect(card).to_have_attribute("src", re.compile(r"^blob:"))  # fetched with our token
    await expect(log.locator(".msg--sending")).to_have_count(0)  # every message was acknowledged
    bot_messages = await log.locator(".msg--bot").count()
    everything = await log.locator(".msg").count()

    # A reload: the same thread, nothing twice.
    await page.reload()
    await expect(log).to_contain_text("Главное меню")
    await expect(log.locator(".msg")).to_have_count(everything)

    # Even with the local copy gone (but the visitor's token kept) the server brings the thread back.
    await page.evaluate("""() => { for (const k of Object.keys(localStorage))
                                     if (!k.endsWith(':visitor')) localStorage.removeItem(k); }""")
    await page.reload()
    await expect(log.locator(".msg--bot")).to_have_count(bot_messages)
    await expect(log).to_contain_text("Главное меню")
    await expect(card).to_have_attribute("src", re.compile(r"^blob:"))

    # The menu works after the reload; a photo goes up; a message sent while away shows on return.
    await page.get_by_role("button", name="💰 Баланс").last.click()
    await expect(log.locator(".msg--bot")).to_have_count(bot_messages + 1)
    await page.locator("#photo").set_input_files(files=[{"name": "receipt.png", "mimeType": "image/png",
                                                         "buffer": _png()}])
    await expect(log.locator(".msg--me img")).to_have_count(1)
    await expect(log.locator(".msg--sending, .msg--failed")).to_have_count(0)
    await expect(log.locator(".msg--bot")).to_have_count(bot_messages + 2)  # "we got your message"
    token = await page.evaluate("() => JSON.parse(localStorage.getItem('kartochka:coffee:visitor'))")
    await page.close()
    await _write_to_visitor(core, merchant_id, token, "Ждём вас в кофейне сегодня!")
    page = await context.new_page()
    await page.goto(str(server.make_url("/chat/coffee")))
    log = page.get_by_role("log")
    await expect(log).to_contain_text("Ждём вас в кофейне сегодня!")
    await expect(log.locator(".msg--bot")).to_have_count(bot_messages + 3)

    # Signing out (after a confirmation) empties this tab and the other one, and the device
    # starts again as a new visitor: the old token is gone from storage.
    other = await context.new_page()
    await other.goto(str(server.make_url("/chat/coffee")))
    await expect(other.get_by_role("log")).to_contain_text("Ждём вас в кофейне сегодня!")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Выйти").click()
    for tab in (page, other):
        await expect(tab.get_by_role("alert")).to_contain_text("Вы вышли")
        await expect(tab.get_by_role("log").locator(".msg")).to_have_count(0)
        await expect(tab.get_by_role("button", name="Начать")).to_be_visible()
        await expect(tab.get_by_role("button", name="Выйти")).to_be_hidden()
    # Both tabs go on as the same new visitor (the device is one visitor, as before).
    stored = "() => JSON.parse(localStorage.getItem('kartochka:coffee:visitor'))"
    fresh = await page.evaluate(stored)
    assert fresh and fresh != token
    await other.get_by_role("button", name="Начать").click()
    await expect(other.get_by_role("log")).to_contain_text("152-ФЗ")
    await expect(page.get_by_role("log")).to_contain_text("152-ФЗ")  # pushed to the same visitor
    assert await other.evaluate(stored) == fresh
    await context.close()


async def test_an_edit_changes_the_message_in_place_and_english_ui(server, browser, core, merchant_id):
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    await page.goto(str(server.make_url("/chat/coffee")))
    log = page.get_by_role("log")
    await page.get_by_role("button", name="Start").click()
    await expect(log).to_contain_text("personal data")
    await expect(page.get_by_label("Message")).to_be_visible()
    first = log.locator(".msg--bot").first
    row_id = await first.get_attribute("data-id")
    token = await page.evaluate("() => JSON.parse(localStorage.getItem('kartochka:coffee:visitor'))")
    await _write_to_visitor(core, merchant_id, token, "Page 2", replaces=row_id)
    await expect(first).to_have_text("Page 2")
    await expect(log.locator(".msg--bot")).to_have_count(1)

    # The server goes away: the widget says so, keeps what is typed as "sending", reconnects, sends it.
    await server.app[WEB_CHAT].sender.close_all()
    await expect(page.get_by_role("status")).to_contain_text("No connection")
    await page.get_by_label("Message").fill("hello?")
    await page.get_by_label("Message").press("Enter")
    await expect(log.locator(".msg--me")).to_contain_text("hello?")
    await expect(log.locator(".msg--sending")).to_have_count(0)
    await expect(log.locator(".msg--bot")).to_have_count(2)  # the answer came after the reconnect
    await context.close()


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


async def _write_to_visitor(core, merchant_id: str, token: str, text: str, replaces: str | None = None):
    """What an operator or a notification does: a saved row for the visitor's account."""
    from bots.web.identity import visitor_id

    chat_id = visitor_id(core.ctx.secrets, merchant_id, token)
    bot_id = webchat.web_bot_id(merchant_id)
    account = await webchat.find_account(core.ctx, merchant_id, bot_id, chat_id)
    body = {"text": text} | ({"replaces": replaces} if replaces else {})
    await enqueue(core.ctx, [NewOutgoing(merchant_id=merchant_id, bot_id=bot_id, channel_account_id=account,
                                         chat_id=chat_id, body=body, priority=REPLY, kind="operator")])
