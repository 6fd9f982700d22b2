"""Registration by SMS code over the websocket, the card picture for its owner only, chat photos."""

from __future__ import annotations

import io
import re

from PIL import Image
from sqlalchemy import select

from core.db.models import ChannelAccount, ChatMessage, Customer
from tests.bots.web.conftest import Widget


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


async def register(widget: Widget, core, phone: str = "+7 916 123-45-67") -> list[dict]:
    """Start -> consents -> phone -> SMS code -> name -> skip -> skip; returns the last replies."""
    [consent] = await widget.ask({"type": "start"})
    [ad] = await widget.press(consent, "reg:pd_yes")
    [ask_phone] = await widget.press(ad, "reg:ad_yes")
    assert ask_phone["prompt"]["kind"] == "phone"  # the widget shows a phone field
    assert "Поделиться" not in ask_phone["text"]  # no contact button on the web: not promised
    [sent] = await widget.ask({"type": "text", "text": phone})
    e164 = "+" + re.sub(r"\D", "", phone)
    code = re.search(r"\b\d{6}\b", core.messengers.sms.texts_to(e164)[-1]).group()
    confirmed = await widget.ask({"type": "text", "text": code})
    assert confirmed[0].get("remove_prompt") is True
    assert "Как вас зовут?" in confirmed[-1]["text"]
    [birthday] = await widget.ask({"type": "text", "text": "Анна"})
    [gender] = await widget.press(birthday, "reg:skip_birthday")
    return await widget.press(gender, "reg:gender_skip")


async def test_register_by_sms_code_and_see_the_card_and_menu(web_client, core, merchant_id):
    widget = Widget(web_client)
    await widget.open()
    welcome, menu = await register(widget, core)
    assert "Анна, добро пожаловать" in welcome["text"]
    assert welcome["image"]["media_id"]
    assert "Главное меню" in menu["text"]
    async with core.ctx.db.read() as session:
        account = (await session.scalars(select(ChannelAccount).where(ChannelAccount.channel == "web"))).one()
        customer = await session.get(Customer, account.customer_id)
    assert customer is not None and customer.phone == "+79161234567"
    assert widget.visitor is not None and widget.visitor not in account.external_user_id

    # The card picture: to its visitor only.
    url = f"/chat/coffee/media/{welcome['image']['media_id']}"
    resp = await web_client.get(url, headers={"X-Visitor": widget.visitor})
    assert resp.status == 200 and resp.content_type == "image/png"
    assert (await resp.read()).startswith(b"\x89PNG")
    stranger = Widget(web_client)
    await stranger.open()
    await stranger.ask({"type": "start"})
    for headers in ({}, {"X-Visitor": stranger.visitor}, {"X-Visitor": "v1.forged"}):
        assert (await web_client.get(url, headers=headers)).status == 404


async def test_a_photo_in_the_chat_lands_in_the_conversation_and_shows_to_its_sender(web_client, core):
    widget = Widget(web_client)
    await widget.open()
    await register(widget, core)
    [opened] = await widget.ask({"type": "button", "action": "chat"})
    await widget.ws.send_bytes(b'{"type": "photo", "ref": "ph"}\n' + _png())
    ack = await widget.until("ph")
    assert ack["type"] == "ack" and ack["messages"]
    async with core.ctx.db.read() as session:
        message = (await session.scalars(select(ChatMessage).where(ChatMessage.media_id.is_not(None)))).one()
    resp = await web_client.get(f"/chat/coffee/media/{message.media_id}",
                                headers={"X-Visitor": widget.visitor})
    assert resp.status == 200 and await resp.read() == _png()
    assert opened["buttons"]
