"""Web chat journeys over the real websocket: start, buttons, reload and replay, bad input."""

from __future__ import annotations

import aiohttp
import pytest

from core.services import webchat
from core.services.merchants import NewMerchant, create_merchant
from core.services.outgoing import SERVICE, NewOutgoing, enqueue
from tests.bots.web.conftest import Widget, button


async def test_start_shows_the_consent_screen_and_a_button_moves_on(web_client):
    widget = Widget(web_client)
    hello = await widget.open()
    assert hello["visitor"].startswith("v1.") and hello["renewed"] is False
    assert hello["merchant"] == "Кофейня"
    assert widget.synced["empty"] is True  # a first visit: the widget shows "Start"

    [consent] = await widget.ask({"type": "start"})
    assert "Кофейня" in consent["text"]
    assert "152-ФЗ" in consent["text"]
    replies = await widget.press(consent, "reg:pd_yes")
    assert replies and "рекламн" in replies[-1]["text"].lower()
    await widget.close()


async def test_english_browser_gets_english_texts(web_client):
    widget = Widget(web_client)
    await widget.open(lang="en-GB")
    [consent] = await widget.ask({"type": "start"})
    assert "personal data" in consent["text"].lower()


async def test_reload_replays_the_thread_and_what_came_while_away(web_client, core, merchant_id):
    widget = Widget(web_client)
    await widget.open()
    [consent] = await widget.ask({"type": "start"})
    second = await widget.press(consent, "reg:pd_yes")
    await widget.close()

    # A reload with nothing kept locally: the whole thread comes back, in order.
    again = Widget(web_client)
    await again.open(visitor=widget.visitor)
    assert [m["id"] for m in again.replayed] == [consent["id"]] + [m["id"] for m in second]
    assert again.replayed[0]["text"] == consent["text"]
    assert again.synced["empty"] is False
    await again.close()

    # While away, the business writes; on return (with the last id we have) only that arrives.
    account = await webchat.find_account(core.ctx, merchant_id, webchat.web_bot_id(merchant_id),
                                         _visitor_id(core, merchant_id, widget.visitor))
    assert account is not None
    [away] = await enqueue(core.ctx, [NewOutgoing(
        merchant_id=merchant_id, bot_id=webchat.web_bot_id(merchant_id), channel_account_id=account,
        chat_id=_visitor_id(core, merchant_id, widget.visitor), body={"text": "Ждём вас завтра!"},
        priority=SERVICE, kind="operator")])
    await core.messengers.dispatcher.drain_once()
    back = Widget(web_client)
    await back.open(visitor=widget.visitor, after=second[-1]["id"])
    assert [(m["id"], m["text"]) for m in back.replayed] == [(away, "Ждём вас завтра!")]
    await back.close()


async def test_an_edit_names_the_message_it_replaces(web_client, core, merchant_id):
    widget = Widget(web_client)
    await widget.open()
    [consent] = await widget.ask({"type": "start"})
    chat_id = _visitor_id(core, merchant_id, widget.visitor)
    account = await webchat.find_account(core.ctx, merchant_id, webchat.web_bot_id(merchant_id), chat_id)
    assert account is not None
    [edit] = await enqueue(core.ctx, [NewOutgoing(
        merchant_id=merchant_id, bot_id=webchat.web_bot_id(merchant_id), channel_account_id=account,
        chat_id=chat_id, body={"text": "Страница 2", "replaces": consent["id"]}, priority=SERVICE,
        kind="reply")])
    await widget.drain()
    frame = await widget.next_frame()
    assert frame == {"type": "message", "id": edit, "text": "Страница 2", "replaces": consent["id"]}


async def test_a_pushed_message_reaches_every_open_tab_of_the_visitor_only(web_client):
    first, second, stranger = Widget(web_client), Widget(web_client), Widget(web_client)
    await first.open()
    await second.open(visitor=first.visitor)
    await stranger.open()
    [consent] = await first.ask({"type": "start"})  # sent once, to both tabs
    frame = await second.next_frame()
    assert frame["id"] == consent["id"]
    await stranger.ws.send_json({"type": "ping"})
    assert await stranger.next_frame() == {"type": "pong"}  # nothing of the others' came first
    assert stranger.messages == []


async def test_unknown_and_reserved_merchants_are_404(web_client):
    for path in ("/chat/nobody", "/chat/api", "/chat/webhooks", "/chat/Кофе", "/chat/nobody/ws",
                 "/chat/nobody/media/med_1"):
        resp = await web_client.get(path)
        assert resp.status == 404, path
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await web_client.ws_connect("/chat/nobody/ws")
    assert info.value.status == 404


async def test_the_page_names_the_merchant_and_escapes_it(web_client, core):
    await create_merchant(core.ctx, NewMerchant(name="<b>Tom & Jerry</b>", slug="tom"))
    resp = await web_client.get("/chat/tom")
    assert resp.status == 200
    page = await resp.text()
    assert "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;" in page and "<b>Tom" not in page
    assert 'data-slug="tom"' in page
    assert "frame-ancestors 'self'" in resp.headers["Content-Security-Policy"]
    script = page.split('<script src="', 1)[1].split('"', 1)[0]
    assert (await web_client.get(script)).status == 200


async def test_malformed_frames_get_an_error_and_the_socket_stays_open(web_client):
    widget = Widget(web_client)
    await widget.open()
    await widget.ws.send_str("not json")
    assert await widget.next_frame() == {"type": "error", "code": "malformed"}
    await widget.ws.send_json({"type": "text", "ref": "a1"})  # no text
    assert await widget.next_frame() == {"type": "error", "code": "malformed", "ref": "a1"}
    await widget.ws.send_json({"type": "teleport", "ref": "a2"})
    assert await widget.next_frame() == {"type": "error", "code": "unknown_type", "ref": "a2"}
    await widget.ws.send_json({"type": "button", "ref": "a3", "action": "x" * 65})
    assert (await widget.next_frame())["code"] == "malformed"
    await widget.ws.send_json({"type": "start", "ref": "a4", "payload": "bad payload!"})
    assert (await widget.next_frame())["code"] == "malformed"
    await widget.ws.send_json({"type": "hello"})
    assert (await widget.next_frame())["code"] == "hello_again"
    [consent] = await widget.ask({"type": "start"})  # still works
    assert consent["buttons"]


async def test_frames_before_hello_are_refused(web_client):
    ws = await web_client.ws_connect("/chat/coffee/ws")
    await ws.send_json({"type": "start", "ref": "x"})
    assert await ws.receive_json() == {"type": "error", "code": "hello_first", "ref": "x"}
    await ws.close()


async def test_oversized_messages_are_refused(web_client):
    widget = Widget(web_client)
    await widget.open()
    ref = await widget.send({"type": "text", "text": "я" * 4097})
    assert await widget.until(ref) == {"type": "error", "code": "too_long", "ref": ref}
    await widget.ws.send_str('{"type": "text", "text": "' + "a" * 40_000 + '"}')
    assert await widget.next_frame() == {"type": "error", "code": "too_long"}
    await widget.ws.send_json({"type": "ping"})
    assert await widget.next_frame() == {"type": "pong"}


async def test_photos_are_checked_by_their_bytes_and_size(web_client):
    widget = Widget(web_client)
    await widget.open()
    await widget.ask({"type": "start"})
    head = b'{"type": "photo", "ref": "p1"}\n'
    await widget.ws.send_bytes(head + b"GIF89a" + b"\0" * 100)
    assert await widget.next_frame() == {"type": "error", "code": "photo_type", "ref": "p1"}
    await widget.ws.send_bytes(head.replace(b"p1", b"p2") + b"\xff\xd8\xff" + b"\0" * (5 * 1024 * 1024))
    assert await widget.next_frame() == {"type": "error", "code": "photo_too_large", "ref": "p2"}
    await widget.ws.send_bytes(b"no header at all")
    assert await widget.next_frame() == {"type": "error", "code": "malformed"}
    ref = "p3"
    await widget.ws.send_bytes(head.replace(b"p1", ref.encode()) + b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    ack = await widget.until(ref)
    assert ack["type"] == "ack"  # the dialog answered it (in registration: asks again)


async def test_a_forged_or_foreign_token_gets_a_new_identity(web_client, core):
    widget = Widget(web_client)
    await widget.open()
    await widget.ask({"type": "start"})
    real = widget.visitor
    assert real is not None
    nonce = real.split(".")[1]
    for forged in ("v1." + nonce + "." + "0" * 32, "someone-else", "v1." + "A" * 43 + "." + "f" * 32):
        intruder = Widget(web_client)
        hello = await intruder.open(visitor=forged)
        assert hello["renewed"] is True and hello["visitor"] != real
        assert intruder.replayed == [] and intruder.synced["empty"] is True

    # A token of one merchant's chat means nothing in another's.
    await create_merchant(core.ctx, NewMerchant(name="Пекарня", slug="bakery"))
    other = Widget(web_client, slug="bakery")
    hello = await other.open(visitor=real)
    assert hello["renewed"] is True and other.replayed == []


async def test_a_repeated_frame_is_acked_but_answered_once(web_client):
    widget = Widget(web_client)
    await widget.open()
    await widget.ws.send_json({"type": "start", "ref": "same"})
    first = await widget.until("same")
    await widget.ws.send_json({"type": "start", "ref": "same"})  # resent after a reconnect
    second = await widget.until("same")
    assert len(first["messages"]) == 1 and second["messages"] == []


async def test_websocket_origin_must_be_ours_or_listed(web_client, core):
    host = f"{web_client.server.host}:{web_client.server.port}"
    ok = Widget(web_client)
    await ok.open(headers={"Origin": f"http://{host}"})
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await web_client.ws_connect("/chat/coffee/ws", headers={"Origin": "https://evil.example"})
    assert info.value.status == 403
    core.settings.web_chat_origins = ["https://shop.example"]
    listed = Widget(web_client)
    await listed.open(headers={"Origin": "https://shop.example"})


async def test_invite_links_open_the_web_chat_with_the_payload(web_client, core, merchant_id):
    bot_id = await webchat.ensure_web_bot(core.ctx, merchant_id)
    link = await core.messengers.deps.deep_link(bot_id, "ref_ABC123")
    assert link is not None and link.endswith("/chat/coffee?start=ref_ABC123")


def _visitor_id(core, merchant_id: str, token: str | None) -> str:
    from bots.web.identity import visitor_id

    found = visitor_id(core.ctx.secrets, merchant_id, token)
    assert found is not None
    return found


def test_button_helper_finds_actions():
    assert button({"buttons": [[{"text": "a", "action": "reg:pd_yes"}]]}, "reg:pd") == "reg:pd_yes"

