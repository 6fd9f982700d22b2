"""The web chat's HTTP side: the widget page, its static files, pictures, and the websocket."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import weakref
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path

from aiohttp import WSCloseCode, web
from jinja2 import Environment, Template

from bots.dialog.texts import Texts, catalogue
from bots.web import identity
from bots.web.channel import chat_socket, idle_limit
from bots.web.setup import WEB_CHAT, WebChat
from core.services import webchat

STATIC = Path(__file__).with_name("static")
VISITOR_HEADER = "X-Visitor"
MEDIA_ID_MAX = 40
CLOSE_SECONDS = 5.0


@cache
def _version() -> str:
    """A digest of the widget's files, so browsers fetch them again after an upgrade."""
    digest = hashlib.sha256()
    for name in ("widget.js", "widget.css"):
        digest.update((STATIC / name).read_bytes())
    return digest.hexdigest()[:12]


@cache
def _page_template() -> Template:
    env = Environment(autoescape=True)
    return env.from_string((STATIC / "widget.html").read_text(encoding="utf-8"))


@cache
def widget_texts(lang: str) -> dict[str, str]:
    """The widget's own words in one language, from the texts catalogue (`widget.*`)."""
    texts = Texts(lang)
    return {key.removeprefix("widget."): texts(key) for key in catalogue("ru") if key.startswith("widget.")}


def data_block(value: object) -> str:
    """JSON for a `<script type="application/json">` block: every "<" escaped, so no text
    can end the element early or open a comment."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def _frame_ancestors(chat: WebChat) -> str:
    return " ".join(["'self'", *sorted(chat.allowed_origins)])


async def page(request: web.Request) -> web.Response:
    """GET /chat/{merchant}: the widget, also the sandbox where anyone can try the bot."""
    chat = request.app[WEB_CHAT]
    merchant = await chat.merchant(request.match_info["merchant"])
    lang = "en" if request.headers.get("Accept-Language", "").lower().startswith("en") else "ru"
    texts = widget_texts(lang)
    body = _page_template().render(lang=lang, merchant_name=merchant.name, slug=merchant.slug,
                                   version=_version(), t=texts, texts_json=data_block(texts))
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers={
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
            f"connect-src 'self'; base-uri 'none'; form-action 'none'; "
            f"frame-ancestors {_frame_ancestors(chat)}"),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-cache",
        "Vary": "Accept-Language",
    })


async def media(request: web.Request) -> web.Response:
    """GET /chat/{merchant}/media/{media_id}: a picture of the visitor's own thread, to them only."""
    chat = request.app[WEB_CHAT]
    merchant = await chat.merchant(request.match_info["merchant"])
    media_id = request.match_info["media_id"]
    visitor = identity.visitor_id(chat.ctx.secrets, merchant.id, request.headers.get(VISITOR_HEADER))
    if visitor is None or len(media_id) > MEDIA_ID_MAX:
        raise web.HTTPNotFound(text="no such picture")
    account = (await webchat.visit(chat.ctx, merchant.id, webchat.web_bot_id(merchant.id), visitor,
                                   idle_limit(chat))).account_id
    if account is None or not await webchat.holds_media(chat.ctx, account, media_id):
        raise web.HTTPNotFound(text="no such picture")
    found = await chat.dialog.deps.media.get(merchant.id, media_id)
    if found is None:  # erased with the customer's data
        raise web.HTTPNotFound(text="no such picture")
    content_type, data = found
    if not content_type.startswith("image/"):
        content_type = "application/octet-stream"
    return web.Response(body=data, content_type=content_type, headers={
        # Not kept by the browser: a card's QR must not outlive a sign-out on a shared device.
        "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
        "Vary": VISITOR_HEADER})


def add_web_chat(app: web.Application, chat: WebChat) -> WebChat:
    """Mount /chat/...; when the app starts, the sender is registered for every web bot."""
    app[WEB_CHAT] = chat
    app.router.add_static("/chat/static", STATIC, name="webchat.static")
    app.router.add_get("/chat/{merchant}", page, name="webchat.page")
    app.router.add_get("/chat/{merchant}/ws", chat_socket, name="webchat.ws")
    app.router.add_get("/chat/{merchant}/media/{media_id}", media, name="webchat.media")

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await chat.register_all()
        yield

    # Every chat socket, from its handshake on (a widget that has not said hello yet too):
    # aiohttp waits for open sockets up to its shutdown timeout (a minute) before it stops.
    sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    async def opened(request: web.Request, response: web.StreamResponse) -> None:
        if isinstance(response, web.WebSocketResponse) and request.match_info.route.name == "webchat.ws":
            sockets.add(response)

    async def going_away(_app: web.Application) -> None:
        """Say "going away" to every open socket at once: widgets reconnect and catch up."""
        await asyncio.gather(*(_going_away(ws) for ws in list(sockets) if not ws.closed))

    app.cleanup_ctx.append(lifetime)
    app.on_response_prepare.append(opened)
    app.on_shutdown.append(going_away)
    return chat


async def _going_away(ws: web.WebSocketResponse) -> None:
    """Close one socket; a peer that does not answer the close in CLOSE_SECONDS is cut off."""
    with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
        async with asyncio.timeout(CLOSE_SECONDS):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"restarting")
