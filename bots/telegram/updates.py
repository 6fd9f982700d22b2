"""aiogram handlers: each Telegram update becomes a dialog `Event`; the dialog answers, we deliver.

`create_router()` puts them on a new Router. Handlers receive `scope` (which of our
bots) and `inbound` (the dialog and the outgoing queue) from `Dispatcher.feed_update(...)`
keyword arguments.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message, User

from bots.dialog.screens import MAX_START_PAYLOAD, Event, Reply
from core.services.accounts import AccountState

log = logging.getLogger("kartochka.telegram")
START_PAYLOAD = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_START_PAYLOAD}}}$")
CHANNEL = "telegram"


@dataclass(frozen=True)
class BotScope:
    """Which of our bots an update came to."""

    bot_id: str
    merchant_id: str


class Inbound(Protocol):
    """The dialog side: answer an event, then queue the answer's screens."""

    async def handle(self, event: Event) -> tuple[AccountState, Reply]: ...

    async def deliver(self, account: AccountState, reply: Reply) -> None: ...


def _event(scope: BotScope, user: User, chat_id: int, kind: str, **fields: Any) -> Event:
    return Event(channel=CHANNEL, merchant_id=scope.merchant_id, bot_id=scope.bot_id,
                 user_id=str(user.id), chat_id=str(chat_id), kind=kind,
                 language=user.language_code, display_name=user.full_name, contact_button=True,
                 **fields)


async def _answer(inbound: Inbound, event: Event) -> Reply:
    account, reply = await inbound.handle(event)
    await inbound.deliver(account, reply)
    return reply


def e164(phone: str) -> str:
    """Telegram sends the phone with or without "+"; we keep "+<digits>"."""
    return "+" + re.sub(r"\D", "", phone)


async def on_start(message: Message, command: CommandObject, scope: BotScope, inbound: Inbound) -> None:
    args = (command.args or "").strip()
    payload = args if START_PAYLOAD.match(args) else None
    assert message.from_user is not None
    await _answer(inbound, _event(scope, message.from_user, message.chat.id, "start", payload=payload))


async def on_contact(message: Message, scope: BotScope, inbound: Inbound) -> None:
    contact, user = message.contact, message.from_user
    assert contact is not None and user is not None
    own = contact.user_id is not None and contact.user_id == user.id
    await _answer(inbound, _event(scope, user, message.chat.id, "contact",
                                  contact_phone=e164(contact.phone_number), contact_is_own=own))


async def on_photo(message: Message, bot: Bot, scope: BotScope, inbound: Inbound) -> None:
    assert message.photo is not None and message.from_user is not None
    biggest = max(message.photo, key=lambda size: (size.width * size.height, size.file_size or 0))
    downloaded = await bot.download(biggest)
    assert downloaded is not None
    await _answer(inbound, _event(scope, message.from_user, message.chat.id, "photo",
                                  photo=downloaded.read(), photo_type="image/jpeg",
                                  text=message.caption))


async def on_text(message: Message, scope: BotScope, inbound: Inbound) -> None:
    assert message.from_user is not None
    await _answer(inbound, _event(scope, message.from_user, message.chat.id, "text", text=message.text))


async def on_other(message: Message, scope: BotScope, inbound: Inbound) -> None:
    """Stickers, documents, voice and the rest: the dialog answers politely (or not at all)."""
    assert message.from_user is not None
    await _answer(inbound, _event(scope, message.from_user, message.chat.id, "other"))


async def on_edited(message: Message, scope: BotScope) -> None:
    """An edit of something already answered: nothing to do (the original was handled)."""
    log.debug("edited message ignored", extra={"bot_id": scope.bot_id, "message_id": message.message_id})


async def on_button(query: CallbackQuery, scope: BotScope, inbound: Inbound) -> None:
    """A button press: answered at once (the spinner stops, the toast shows), then the screens."""
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    message_ref = str(query.message.message_id) if query.message is not None else None
    event = _event(scope, query.from_user, chat_id, "button", payload=query.data or "",
                   message_ref=message_ref)
    account, reply = await inbound.handle(event)
    try:
        await query.answer(text=reply.toast)
    except TelegramAPIError as exc:  # too old, or Telegram busy: the screens still go
        log.warning("answering a button press failed",
                    extra={"bot_id": scope.bot_id, "error": exc.message})
    await inbound.deliver(account, reply)


async def on_member(update: ChatMemberUpdated, scope: BotScope, inbound: Inbound) -> None:
    """The person blocked the bot (kicked) or came back (member)."""
    status = update.new_chat_member.status
    kind = {"kicked": "blocked", "member": "unblocked"}.get(str(status))
    if kind is None:
        return
    await _answer(inbound, _event(scope, update.from_user, update.chat.id, kind))


def create_router() -> Router:
    """This module's handlers on a new Router (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    for observer in (router.message, router.edited_message, router.my_chat_member):
        observer.filter(F.chat.type == "private")
    router.message.register(on_start, CommandStart(ignore_mention=True), F.from_user)
    router.message.register(on_contact, F.contact, F.from_user)
    router.message.register(on_photo, F.photo, F.from_user)
    router.message.register(on_text, F.text, F.from_user)
    router.message.register(on_other, F.from_user)
    router.edited_message.register(on_edited)
    router.callback_query.register(on_button)
    router.my_chat_member.register(on_member)
    return router
