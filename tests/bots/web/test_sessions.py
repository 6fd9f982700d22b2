"""A web chat visitor's token ends: signing out on a device, or staying away too long."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import pytest
from aiohttp import WSMsgType
from sqlalchemy import select

from bots.web.identity import visitor_id
from bots.web.routes import data_block
from core.db.models import ChannelAccount
from core.services import webchat
from core.services.notices import recipient
from tests.bots.web.conftest import FRAME_WAIT, Widget
from tests.bots.web.test_journey import register


async def _account(core, merchant_id: str) -> ChannelAccount:
    async with core.ctx.db.read() as session:
        return (await session.scalars(select(ChannelAccount).where(
            ChannelAccount.merchant_id == merchant_id, ChannelAccount.channel == "web"))).one()


async def _closed(widget: Widget) -> None:
    """The server closes the socket after `signed_out`."""
    msg = await asyncio.wait_for(widget.ws.receive(), FRAME_WAIT)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED), msg


async def test_signing_out_ends_the_token_in_every_tab_and_stops_notices(web_client, core, merchant_id,
                                                                        clock):
    widget = Widget(web_client)
    await widget.open()
    welcome, _menu = await register(widget, core)
    token = widget.visitor
    account = await _account(core, merchant_id)
    customer_id = account.customer_id
    assert customer_id is not None
    assert (await recipient(core.ctx, merchant_id, customer_id)).account_id == account.id

    other_tab = Widget(web_client)
    await other_tab.open(visitor=token)
    assert other_tab.replayed  # the same visitor: the thread is there

    picture = f"/chat/coffee/media/{welcome['image']['media_id']}"
    assert (await web_client.get(picture, headers={"X-Visitor": token})).status == 200
    await widget.send({"type": "sign_out"})
    for tab in (widget, other_tab):
        assert (await tab.next_frame()) == {"type": "signed_out"}
        await _closed(tab)

    # The old token opens nothing: a new identity, no thread, no card picture.
    again = Widget(web_client)
    hello = await again.open(visitor=token)
    assert hello["renewed"] is True and hello["visitor"] != token
    assert again.replayed == [] and again.synced["empty"] is True
    assert (await web_client.get(picture, headers={"X-Visitor": token})).status == 404

    # The business keeps its records: the account, its customer and thread stay, but it is
    # no longer reachable, so notices find no messenger to go to.
    signed_out = await _account(core, merchant_id)
    assert signed_out.id == account.id and signed_out.customer_id == customer_id
    assert signed_out.chat_id is None and signed_out.blocked_at is not None
    assert (await recipient(core.ctx, merchant_id, customer_id)).account_id is None

    # The customer comes back on this device with their phone: the same customer, linked anew.
    clock.advance_to(clock.now() + timedelta(minutes=2))  # past the pause before another SMS code
    [consent] = await again.ask({"type": "start"})
    [ad] = await again.press(consent, "reg:pd_yes")
    await again.press(ad, "reg:ad_yes")
    await again.ask({"type": "text", "text": "+7 916 123-45-67"})
    code = re.search(r"\b\d{6}\b", core.messengers.sms.texts_to("+79161234567")[-1]).group()
    replies = await again.ask({"type": "text", "text": code})
    assert "день рождения" in replies[-1]["text"]  # known already: no name asked again
    async with core.ctx.db.read() as session:
        linked = (await session.scalars(select(ChannelAccount.customer_id).where(
            ChannelAccount.channel == "web", ChannelAccount.blocked_at.is_(None)))).all()
    assert linked == [customer_id]


async def test_sign_out_needs_a_hello_first(web_client, core, merchant_id):
    widget = Widget(web_client)
    widget.ws = await web_client.ws_connect("/chat/coffee/ws")
    await widget.send({"type": "sign_out"})
    frame = await widget.next_frame()
    assert frame["type"] == "error" and frame["code"] == "hello_first"
    await widget.ws.close()


@pytest.mark.parametrize(("away_days", "still_in"), [(89, True), (91, False)])
async def test_a_visitor_away_too_long_is_signed_out_on_return(web_client, core, merchant_id, clock,
                                                               away_days, still_in):
    widget = Widget(web_client)
    await widget.open()
    [consent] = await widget.ask({"type": "start"})
    await widget.press(consent, "reg:pd_yes")
    await widget.close()
    token = widget.visitor
    assert core.settings.web_chat_idle_days == 90

    clock.advance_to(clock.now() + timedelta(days=away_days))
    back = Widget(web_client)
    hello = await back.open(visitor=token)
    assert hello["renewed"] is (not still_in)
    assert bool(back.replayed) is still_in
    account = await _account(core, merchant_id)
    if still_in:  # a visit counts as being here: the next 90 days start now
        assert hello["visitor"] == token and account.last_seen_at == clock.now()
    else:
        assert account.external_user_id.endswith(webchat.SIGNED_OUT) and account.blocked_at == clock.now()
        assert await webchat.find_account(core.ctx, merchant_id, webchat.web_bot_id(merchant_id),
                                          visitor_id(core.ctx.secrets, merchant_id, token)) is None


async def test_the_page_carries_the_widget_texts_of_its_language(web_client, merchant_id):
    ru_page = await web_client.get("/chat/coffee")
    en_page = await web_client.get("/chat/coffee", headers={"Accept-Language": "en-GB,en"})
    assert ru_page.headers["Vary"] == "Accept-Language"  # a cache must not mix the languages
    ru, en = await ru_page.text(), await en_page.text()
    assert '<html lang="ru">' in ru and ">Выйти</button>" in ru
    assert '<html lang="en">' in en and ">Sign out</button>" in en
    block = ru.split('id="widget-texts" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert json.loads(block)["sign_out"] == "Выйти" and json.loads(block)["send"] == "Отправить"


def test_the_texts_block_cannot_end_its_script_element():
    block = data_block({"a": "</script><script>alert(1)</script>", "b": "<!--"})
    assert "<" not in block
    assert json.loads(block) == {"a": "</script><script>alert(1)</script>", "b": "<!--"}
