"""The fake Bot API's methods, as Telegram answers them (a part of FakeTelegram)."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

_file_ids = itertools.count(1)


@dataclass
class Call:
    """One request the fake received."""

    token: str
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None

    @property
    def photo(self) -> bytes | None:
        """The bytes of a sent photo (sendPhoto, or the photo in editMessageMedia)."""
        ref = self.params.get("photo")
        if ref is None and isinstance(self.params.get("media"), dict):
            ref = self.params["media"].get("media")
        if isinstance(ref, str) and ref.startswith("attach://"):
            return self.files.get(ref.removeprefix("attach://"))
        return None

    @property
    def markup(self) -> dict[str, Any] | None:
        markup = self.params.get("reply_markup")
        return markup if isinstance(markup, dict) else None

    def buttons(self) -> list[dict[str, Any]]:
        """Every inline button of the message, row by row flattened."""
        rows = (self.markup or {}).get("inline_keyboard", [])
        return [b for row in rows for b in row]


@dataclass
class Failure:
    method: str | None
    status: int
    description: str
    retry_after: int | None
    times: int
    chat_id: int | None



@dataclass
class FakeBot:
    token: str
    id: int
    username: str
    first_name: str
    webhook: dict[str, Any] | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    menu_button: dict[str, Any] | None = None


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


class BotApiMethods:
    """`m_<method>(bot, call)` for every method the fake knows; state lives on FakeTelegram."""

    bots: dict[str, FakeBot]
    messages: dict[tuple[str, int, int], dict[str, Any]]
    files: dict[str, bytes]
    _message_ids: Any

    def add_file(self, data: bytes) -> str:
        """Bytes a user uploaded; returns the file_id updates refer to."""
        file_id = f"AgACAgIAAxkBAAI{next(_file_ids):06d}"
        self.files[file_id] = data
        return file_id

    async def m_getMe(self, bot: FakeBot, _call: Call) -> dict[str, Any]:
        return {"id": bot.id, "is_bot": True, "first_name": bot.first_name, "username": bot.username,
                "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    async def m_setWebhook(self, bot: FakeBot, call: Call) -> bool:
        url = call.params.get("url", "")
        if url and not url.startswith("https://"):
            raise _ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = call.params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        bot.webhook = dict(call.params) if url else None
        return True

    async def m_deleteWebhook(self, bot: FakeBot, call: Call) -> bool:
        bot.webhook = None
        if call.params.get("drop_pending_updates"):
            bot.pending.clear()
        return True

    async def m_getWebhookInfo(self, bot: FakeBot, _call: Call) -> dict[str, Any]:
        hook = bot.webhook or {}
        return {"url": hook.get("url", ""), "has_custom_certificate": False,
                "pending_update_count": len(bot.pending),
                "allowed_updates": hook.get("allowed_updates") or []}

    async def m_getUpdates(self, bot: FakeBot, call: Call) -> list[dict[str, Any]]:
        if bot.webhook is not None:
            raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                 "use deleteWebhook to delete the webhook first")
        offset = int(call.params.get("offset") or 0)
        bot.pending = [u for u in bot.pending if u["update_id"] >= offset]
        timeout = float(call.params.get("timeout") or 0)
        if not bot.pending and timeout > 0:
            bot.arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(bot.arrived.wait(), timeout)
        limit = int(call.params.get("limit") or 100)
        return bot.pending[:limit]

    async def m_getFile(self, _bot: FakeBot, call: Call) -> dict[str, Any]:
        file_id = str(call.params.get("file_id"))
        if file_id not in self.files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        return {"file_id": file_id, "file_unique_id": "u" + file_id[-8:],
                "file_size": len(self.files[file_id]), "file_path": f"photos/{file_id}"}

    def _message(self, bot: FakeBot, call: Call, **content: Any) -> dict[str, Any]:
        chat_id = call.chat_id
        if chat_id is None:
            raise _ApiError(400, "Bad Request: chat_id is empty")
        message_id = next(self._message_ids)
        message = {"message_id": message_id, "date": int(time.time()),
                   "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
                   "from": {"id": bot.id, "is_bot": True, "first_name": bot.first_name,
                            "username": bot.username}, **content}
        markup = call.markup
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self.messages[(bot.token, chat_id, message_id)] = message
        return message

    async def m_sendMessage(self, bot: FakeBot, call: Call) -> dict[str, Any]:
        text = call.params.get("text")
        if not text:
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(str(text)) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        return self._message(bot, call, text=str(text))

    async def m_sendPhoto(self, bot: FakeBot, call: Call) -> dict[str, Any]:
        data = call.photo
        if not data:
            raise _ApiError(400, "Bad Request: there is no photo in the request")
        caption = call.params.get("caption")
        if caption is not None and len(str(caption)) > 1024:
            raise _ApiError(400, "Bad Request: message caption is too long")
        file_id = self.add_file(data)
        photo = [{"file_id": file_id, "file_unique_id": "u" + file_id[-8:], "width": 800,
                  "height": 500, "file_size": len(data)}]
        content: dict[str, Any] = {"photo": photo}
        if caption:
            content["caption"] = str(caption)
        return self._message(bot, call, **content)

    def _stored(self, bot: FakeBot, call: Call) -> dict[str, Any]:
        key = (bot.token, call.chat_id or 0, int(call.params.get("message_id") or 0))
        message = self.messages.get(key)
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    def _check_modified(self, message: dict[str, Any], field_: str, value: Any, call: Call) -> None:
        markup = call.markup if call.markup and "inline_keyboard" in call.markup else None
        if message.get(field_) == value and message.get("reply_markup") == markup:
            raise _ApiError(400, "Bad Request: message is not modified: specified new message content "
                                 "and reply markup are exactly the same as a current content and "
                                 "reply markup of the message")
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup

    async def m_editMessageText(self, bot: FakeBot, call: Call) -> dict[str, Any]:
        message = self._stored(bot, call)
        if "text" not in message:
            raise _ApiError(400, "Bad Request: there is no text in the message to edit")
        text = str(call.params.get("text") or "")
        self._check_modified(message, "text", text, call)
        message["text"] = text
        return message

    async def m_editMessageCaption(self, bot: FakeBot, call: Call) -> dict[str, Any]:
        message = self._stored(bot, call)
        if "photo" not in message:
            raise _ApiError(400, "Bad Request: there is no caption in the message to edit")
        caption = str(call.params.get("caption") or "")
        self._check_modified(message, "caption", caption, call)
        message["caption"] = caption
        return message

    async def m_editMessageMedia(self, bot: FakeBot, call: Call) -> dict[str, Any]:
        message = self._stored(bot, call)
        data = call.photo
        if not data:
            raise _ApiError(400, "Bad Request: there is no media in the request")
        file_id = self.add_file(data)
        message.pop("text", None)
        message["photo"] = [{"file_id": file_id, "file_unique_id": "u" + file_id[-8:], "width": 800,
                             "height": 500, "file_size": len(data)}]
        media = call.params.get("media") or {}
        message["caption"] = media.get("caption", "")
        markup = call.markup
        message["reply_markup"] = markup if markup and "inline_keyboard" in markup else None
        if message["reply_markup"] is None:
            message.pop("reply_markup")
        return message

    async def m_editMessageReplyMarkup(self, bot: FakeBot, call: Call) -> dict[str, Any]:
        message = self._stored(bot, call)
        markup = call.markup
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        return message

    async def m_deleteMessage(self, bot: FakeBot, call: Call) -> bool:
        self._stored(bot, call)
        del self.messages[(bot.token, call.chat_id or 0, int(call.params.get("message_id") or 0))]
        return True

    async def m_answerCallbackQuery(self, _bot: FakeBot, call: Call) -> bool:
        if not call.params.get("callback_query_id"):
            raise _ApiError(400, "Bad Request: query is too old and response timeout expired or "
                                 "query ID is invalid")
        return True

    async def m_setMyCommands(self, bot: FakeBot, call: Call) -> bool:
        commands = call.params.get("commands")
        if not isinstance(commands, list):
            raise _ApiError(400, "Bad Request: can't parse commands JSON object")
        bot.commands[str(call.params.get("language_code") or "")] = commands
        return True

    async def m_setChatMenuButton(self, bot: FakeBot, call: Call) -> bool:
        bot.menu_button = call.params.get("menu_button")
        return True

    async def m_sendChatAction(self, _bot: FakeBot, _call: Call) -> bool:
        return True
