"""A person talking to the bot through the real webhook, seeing what the fake Bot API received."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import and_, func, or_, select

from app.container import Core
from app.web import TELEGRAM_KEY
from bots.telegram.runtime import TelegramRuntime
from bots.telegram.webhook import SECRET_HEADER
from core.db.models import InboundUpdate, OutgoingMessage
from core.services import bots, updates
from core.services.bots import BotInfo
from tests.fakes.telegram import Call, FakeTelegram, Person


@dataclass
class Telegram:
    """The running app and what a test does with it: post updates as Telegram would."""

    client: TestClient  # type: ignore[type-arg]
    core: Core
    fake: FakeTelegram
    bot: BotInfo
    token: str

    @property
    def runtime(self) -> TelegramRuntime:
        return self.client.app[TELEGRAM_KEY]

    @property
    def secret(self) -> str:
        return bots.webhook_secret(self.core.ctx, self.bot.id)

    async def post(self, update: Any, *, secret: str | None = None, bot_id: str | None = None,
                   raw: bytes | None = None) -> int:
        headers = {SECRET_HEADER: self.secret if secret is None else secret}
        url = f"/webhooks/telegram/{bot_id or self.bot.id}"
        if raw is not None:
            response = await self.client.post(url, data=raw, headers={
                **headers, "Content-Type": "application/json"})
        else:
            response = await self.client.post(url, json=update, headers=headers)
        return response.status

    async def send(self, update: dict[str, Any]) -> None:
        assert await self.post(update) == 200

    async def settle(self) -> None:
        """Wait until every stored update is processed and every queued message has an outcome."""
        for _ in range(400):
            async with self.core.ctx.db.read() as session:
                now = self.core.ctx.now()
                pending = await session.scalar(select(func.count()).select_from(InboundUpdate).where(
                    or_(InboundUpdate.status.in_(("new", "processing")),
                        and_(InboundUpdate.status == "retry",
                             InboundUpdate.processed_at <= now - updates.RETRY_AFTER))))
                queued = await session.scalar(select(func.count()).select_from(OutgoingMessage).where(
                    OutgoingMessage.status.in_(("queued", "sending")),
                    OutgoingMessage.not_before <= self.core.ctx.now()))
            if not pending and not queued:
                return
            self.runtime.kick()
            await self.core.messengers.dispatcher.kick()
            await asyncio.sleep(0.05)
        raise AssertionError("updates or messages never settled")




class Chat:
    """`await chat.start()`, `await chat.press("reg:pd_yes")`, `chat.last.params["text"]`."""

    def __init__(self, telegram: Telegram, person: Person) -> None:
        self.telegram = telegram
        self.person = person

    @property
    def fake(self):  # type: ignore[no-untyped-def]
        return self.telegram.fake

    @property
    def seen(self) -> list[Call]:
        """Every message the person got (sent or edited), in order."""
        return self.fake.sent(self.person.user_id)

    @property
    def last(self) -> Call:
        return self.seen[-1]

    def text_of(self, call: Call) -> str:
        if call.method == "editMessageMedia":
            return str(call.params["media"].get("caption", ""))
        return str(call.params.get("text") or call.params.get("caption") or "")

    @property
    def texts(self) -> list[str]:
        return [self.text_of(c) for c in self.seen]

    async def send(self, update: dict[str, Any]) -> list[Call]:
        """Post an update, wait until it is answered; returns what arrived because of it."""
        before = len(self.seen)
        await self.telegram.send(update)
        await self.telegram.settle()
        return self.seen[before:]

    async def start(self, payload: str | None = None) -> list[Call]:
        return await self.send(self.person.start(payload))

    async def say(self, text: str) -> list[Call]:
        return await self.send(self.person.text(text))

    async def share_contact(self, phone: str, *, user_id: int | None | bool = True) -> list[Call]:
        return await self.send(self.person.contact(phone, user_id=user_id))

    async def photo(self, data: bytes, caption: str | None = None) -> list[Call]:
        return await self.send(self.person.photo(self.fake.add_file(data), caption))

    def message_with(self, action: str) -> dict[str, Any]:
        """The latest message in this chat carrying an inline button with `action`."""
        for (token, chat_id, _id), message in reversed(list(self.fake.messages.items())):
            if token != self.telegram.token or chat_id != self.person.user_id:
                continue
            rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
            if any(b.get("callback_data") == action for row in rows for b in row):
                return message
        shown = [b.get("callback_data") for c in self.seen for b in c.buttons()]
        raise AssertionError(f"no message with a button {action!r}; buttons seen: {shown}")

    async def press(self, action: str) -> list[Call]:
        """Press the inline button with this action on the latest message showing it."""
        return await self.send(self.person.callback(action, self.message_with(action)))

    def buttons(self, call: Call | None = None) -> list[str]:
        return [b.get("callback_data") or b.get("url") or "" for b in (call or self.last).buttons()]
