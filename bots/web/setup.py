"""What the web chat is built from, and its link for an invite (deep-link payload)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

from aiohttp import web

from bots.dialog.dialog import Dialog
from bots.web.sender import WebSender
from core.config import Settings
from core.ports import ChannelSender
from core.services import webchat
from core.services.context import CoreContext
from core.services.merchants import RESERVED_SLUGS, SLUG
from core.services.webchat import WebMerchant


class SenderRegistry(Protocol):
    """Where senders are registered per bot (the outgoing queue's dispatcher)."""

    def register(self, bot_id: str, sender: ChannelSender) -> None: ...


@dataclass
class WebChat:
    """The web chat's dependencies: the core, the dialog, the dispatcher, settings; one sender."""

    ctx: CoreContext
    settings: Settings
    dialog: Dialog
    dispatcher: SenderRegistry
    sender: WebSender = field(default_factory=WebSender)
    _registered: set[str] = field(default_factory=set)

    @property
    def allowed_origins(self) -> set[str]:
        origins = {o.rstrip("/") for o in self.settings.web_chat_origins}
        if self.settings.public_url:
            scheme, _, rest = self.settings.public_url.partition("://")
            origins.add(f"{scheme}://{rest.split('/', 1)[0]}")
        return origins

    async def merchant(self, slug: str) -> WebMerchant:
        """The merchant of a /chat/{merchant} path; 404 for reserved words and unknown slugs."""
        if not SLUG.match(slug) or slug in RESERVED_SLUGS:
            raise web.HTTPNotFound(text="no such chat")
        merchant = await webchat.find_merchant(self.ctx, slug)
        if merchant is None:
            raise web.HTTPNotFound(text="no such chat")
        return merchant

    async def bot(self, merchant_id: str) -> str:
        """The merchant's web bot, made on first use, with this process's sender registered for it."""
        bot_id = await webchat.ensure_web_bot(self.ctx, merchant_id)
        self.register(bot_id)
        return bot_id

    def register(self, bot_id: str) -> None:
        if bot_id not in self._registered:
            self.dispatcher.register(bot_id, self.sender)
            self._registered.add(bot_id)

    async def register_all(self) -> None:
        """Register the sender for every web bot (notifications reach visitors who are away)."""
        for bot_id in await webchat.web_bots(self.ctx):
            self.register(bot_id)

    async def deep_link(self, bot_id: str, payload: str) -> str | None:
        """The chat page that starts with `payload` (an invite: "ref_<code>")."""
        merchant = await webchat.merchant_of_bot(self.ctx, bot_id)
        if merchant is None:
            return None
        base = (self.settings.public_url or f"http://{self.settings.host}:{self.settings.port}").rstrip("/")
        return f"{base}/chat/{merchant.slug}?start={quote(payload, safe='')}"


WEB_CHAT = web.AppKey("web_chat", WebChat)
