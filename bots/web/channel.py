"""The widget's websocket: frames -> dialog events; the dialog's screens come back through the sender.

A visitor is anonymous: the first `hello` gets a signed random token, the browser
keeps it, and each later `hello` brings it back with the last message id it has;
the saved rows after it are replayed, so the thread survives a reload and whatever
was sent meanwhile appears. A token stops working when its visitor signs out (every
open tab is told, then closed) or stays away longer than WEB_CHAT_IDLE_DAYS: the next
`hello` gets a new identity. Frames are handled one at a time per socket; a bad
frame gets an error frame and the socket stays open.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import WSMsgType, web

from bots.dialog.delivery import deliver
from bots.dialog.screens import Event
from bots.web import identity
from bots.web.frames import FrameError, Incoming, error_frame, parse_photo, parse_text
from bots.web.sender import Connection
from bots.web.setup import WEB_CHAT, WebChat
from core.services import webchat
from core.services.webchat import WebMerchant

log = logging.getLogger("kartochka.web")
MAX_FRAME = 6 * 1024 * 1024  # a 5 MB photo and its header; bigger frames close the socket
HEARTBEAT = 30.0
BURST, PER_SECOND = 10.0, 2.0  # frames a visitor may send at once, and per second after that


@dataclass
class Bucket:
    """A token bucket against a visitor flooding the dialog."""

    tokens: float = BURST
    at: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.at) * PER_SECOND)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Session:
    """One open socket of one visitor of one merchant's chat."""

    def __init__(self, chat: WebChat, merchant: WebMerchant, bot_id: str, ws: web.WebSocketResponse,
                 client_ip: str | None) -> None:
        self.chat, self.merchant, self.bot_id, self.ws = chat, merchant, bot_id, ws
        self.client_ip = client_ip
        self.conn: Connection | None = None
        self.lang: str | None = None
        self.start_payload: str | None = None
        self.account_id: str | None = None
        self.bucket = Bucket()

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._guarded(lambda raw=msg.data: parse_text(raw))
                elif msg.type == WSMsgType.BINARY:
                    await self._guarded(lambda raw=msg.data: parse_photo(raw))
        finally:
            if self.conn is not None:
                self.chat.sender.detach(self.conn)

    async def _guarded(self, parse: Any) -> None:
        ref: str | None = None
        try:
            frame: Incoming = parse()
            ref = frame.ref
            await self._on(frame)
        except FrameError as exc:
            await self._send(error_frame(exc.code, exc.ref or ref))
        except Exception:
            log.exception("web chat frame failed", extra={"merchant_id": self.merchant.id})
            await self._send(error_frame("internal", ref))

    async def _send(self, frame: dict[str, Any]) -> None:
        if self.conn is not None:
            await self.conn.push(frame)
        elif not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_json(frame)

    async def _on(self, frame: Incoming) -> None:
        if frame.type == "ping":
            await self._send({"type": "pong"})
            return
        if frame.type == "hello":
            await self._hello(frame)
            return
        if self.conn is None:
            raise FrameError("hello_first", frame.ref)
        if self.conn.ended:  # signed out (in this tab or another) a moment ago
            raise FrameError("signed_out", frame.ref)
        if frame.type == "sign_out":
            await self._sign_out()
            return
        if not self.bucket.take():
            raise FrameError("slow_down", frame.ref)
        assert frame.ref is not None
        queued: list[str] = []
        if self.chat.sender.first_time(self.conn.chat_id, frame.ref):
            queued = await self._dispatch(frame)
        # The ack names the replies queued, so the widget (and a test) knows what is on its way.
        await self._send({"type": "ack", "ref": frame.ref, "messages": queued})

    async def _hello(self, frame: Incoming) -> None:
        """Who this is (a new identity for a missing or forged token), then the thread since `after`."""
        if self.conn is not None:
            raise FrameError("hello_again")
        ctx = self.chat.ctx
        token = frame.visitor
        visitor = identity.visitor_id(ctx.secrets, self.merchant.id, token)
        found = None if visitor is None else await webchat.visit(
            ctx, self.merchant.id, self.bot_id, visitor, idle_limit(self.chat))
        renewed = token is not None and (found is None or found.ended)
        if visitor is None or renewed:
            token = identity.issue(ctx.secrets, self.merchant.id)
            visitor = identity.visitor_id(ctx.secrets, self.merchant.id, token)
            assert visitor is not None
        self.lang, self.start_payload = frame.lang, frame.payload
        self.conn = Connection(self.ws, self.bot_id, visitor)
        await self.conn.push({"type": "hello", "visitor": token, "renewed": renewed,
                              "merchant": self.merchant.name})
        self.chat.sender.attach(self.conn)  # before reading the thread: nothing sent meanwhile is lost
        if self.chat.sender.signed_out(self.bot_id, visitor):  # signed out while we looked it up
            await self._end([self.conn])
            return
        self.account_id = None if renewed or found is None else found.account_id
        rows = [] if self.account_id is None else await webchat.thread(
            ctx, self.account_id, None if renewed else frame.after)
        for row in rows:
            await self.conn.push_message(row.id, row.body)
        await self.conn.push({"type": "synced", "empty": self.account_id is None})

    async def _sign_out(self) -> None:
        """The visitor leaves this device: the token dies, and every open tab is told and closed.

        The widget then drops its token and thread and starts afresh as a new visitor. Tabs
        open on other processes of a scaled-out deployment are not told; their token is
        refused at their next `hello`, as everywhere.
        """
        assert self.conn is not None
        bot_id, visitor = self.conn.bot_id, self.conn.chat_id
        tabs = {self.conn, *self.chat.sender.sign_out(bot_id, visitor)}
        await webchat.sign_out(self.chat.ctx, self.merchant.id, bot_id, visitor)
        self.account_id = None
        await self._end(tabs)
        log.info("web chat visitor signed out", extra={"merchant_id": self.merchant.id})

    async def _end(self, tabs: Iterable[Connection]) -> None:
        """Tell each tab it is signed out (its last frame), then close it."""
        for conn in tabs:
            self.chat.sender.detach(conn)
            await conn.end({"type": "signed_out"})
        for conn in tabs:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.close()

    async def _dispatch(self, frame: Incoming) -> list[str]:
        assert self.conn is not None
        kind, text, payload = frame.type, frame.text, frame.payload
        if kind == "text" and text is not None and (text == "/start" or text.startswith("/start ")):
            kind, payload, text = "start", text[7:].strip() or None, None
        if kind == "start":
            payload = payload or self.start_payload
        ref = None
        if kind == "button":
            payload = frame.action
            ref = frame.message if frame.message and self.account_id and await webchat.owns_message(
                self.chat.ctx, self.account_id, frame.message) else None
        event = Event(
            channel=webchat.CHANNEL, merchant_id=self.merchant.id, bot_id=self.bot_id,
            user_id=self.conn.chat_id, chat_id=self.conn.chat_id, kind=kind, text=text,
            payload=payload, photo=frame.photo, photo_type=frame.photo_type or "image/jpeg",
            message_ref=ref, language=self.lang, client_ip=self.client_ip)
        account, reply = await self.chat.dialog.handle(event)
        self.account_id = account.id
        queued = await deliver(self.chat.dialog.deps, account, reply)
        if reply.toast:
            await self._send({"type": "toast", "text": reply.toast})
        return queued


def idle_limit(chat: WebChat) -> timedelta:
    """How long a visitor may stay away before their token stops working."""
    return timedelta(days=chat.settings.web_chat_idle_days)


def client_ip(request: web.Request, trusted_proxy: bool) -> str | None:
    """The visitor's address: the proxy's X-Forwarded-For only behind a trusted proxy."""
    if trusted_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last[:45]
    return request.remote


def origin_allowed(request: web.Request, chat: WebChat) -> bool:
    """Same origin as the page (or PUBLIC_URL), or one of the configured embedding origins."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser; the token, not a cookie, is what identifies anyone
        return True
    if origin in chat.allowed_origins:
        return True
    host = origin.split("://", 1)[-1]
    return host == request.host


async def chat_socket(request: web.Request) -> web.StreamResponse:
    """GET /chat/{merchant}/ws: the widget's websocket."""
    chat = request.app[WEB_CHAT]
    merchant = await chat.merchant(request.match_info["merchant"])
    if not origin_allowed(request, chat):
        raise web.HTTPForbidden(text="origin not allowed")
    bot_id = await chat.bot(merchant.id)
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=HEARTBEAT)
    await ws.prepare(request)
    await Session(chat, merchant, bot_id, ws, client_ip(request, chat.settings.trusted_proxy)).run()
    return ws

