"""TelegramSender: one saved screen to one Telegram chat, and the Bot API's answer as a `SendResult`."""

from __future__ import annotations

import logging
from datetime import timedelta

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import InputMediaPhoto, Message

from bots.dialog.screens import Screen
from bots.telegram.render import (
    fits_caption,
    inline_markup,
    photo_file,
    prompt_text,
    reply_markup,
)
from core.ports import Clock, OutgoingEnvelope, SendResult

log = logging.getLogger("kartochka.telegram.sender")
BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CAP = timedelta(minutes=10)
NOT_MODIFIED = "message is not modified"
# An edit Telegram cannot make (gone, too old, a photo where text was): send a new message instead.
EDIT_IMPOSSIBLE = ("message to edit not found", "message can't be edited", "there is no text in the message",
                   "there is no caption in the message", "message_id_invalid", "there is no media")


class TelegramSender:
    """The `ChannelSender` of one Telegram bot; never raises for what Telegram answers."""

    def __init__(self, bot: Bot, clock: Clock) -> None:
        self.bot = bot
        self.clock = clock

    async def send(self, message: OutgoingEnvelope) -> SendResult:
        try:
            screen = Screen.from_body(message.body)
            message_id = await self._deliver(int(message.chat_id), screen, message.media)
            return SendResult.sent(str(message_id))
        except TelegramRetryAfter as exc:
            return SendResult.retry(self.clock.now() + timedelta(seconds=exc.retry_after), exc.message)
        except TelegramForbiddenError as exc:
            return SendResult.blocked(exc.message)
        except (TimeoutError, TelegramServerError, TelegramNetworkError) as exc:
            wait = min(BACKOFF_BASE * 2 ** message.attempts, BACKOFF_CAP)
            return SendResult.retry(self.clock.now() + wait, f"{type(exc).__name__}: {exc}")
        except TelegramUnauthorizedError as exc:
            log.error("telegram refused the bot's token", extra={"bot_id": message.bot_id})
            return SendResult.failed(f"unauthorized: {exc.message}")
        except TelegramAPIError as exc:  # bad request and the rest: retrying will not help
            return SendResult.failed(exc.message)
        except Exception as exc:
            log.exception("sending to telegram failed", extra={"outgoing_id": message.id})
            return SendResult.failed(f"{type(exc).__name__}: {exc}")

    async def _deliver(self, chat_id: int, screen: Screen, media: dict[str, bytes]) -> int:
        """Edit in place when the screen says so and Telegram can; else send anew."""
        if screen.replaces is not None and screen.prompt is None and not screen.remove_prompt:
            edited = await self._edit(chat_id, int(screen.replaces), screen, media)
            if edited is not None:
                return edited
        return await self._send_new(chat_id, screen, media)

    async def _edit(self, chat_id: int, message_id: int, screen: Screen,
                    media: dict[str, bytes]) -> int | None:
        photo = photo_file(screen, media)
        try:
            if photo is not None:
                if not fits_caption(screen.text):
                    return None
                await self.bot.edit_message_media(
                    chat_id=chat_id, message_id=message_id, reply_markup=inline_markup(screen),
                    media=InputMediaPhoto(media=photo, caption=screen.text or None))
            else:
                await self.bot.edit_message_text(
                    chat_id=chat_id, message_id=message_id, text=screen.text,
                    reply_markup=inline_markup(screen))
        except TelegramBadRequest as exc:
            reason = exc.message.lower()
            if NOT_MODIFIED in reason:
                return message_id
            if any(marker in reason for marker in EDIT_IMPOSSIBLE):
                return None
            raise
        return message_id

    async def _send_new(self, chat_id: int, screen: Screen, media: dict[str, bytes]) -> int:
        """The screen's message; a reply keyboard rides on it unless inline buttons already do.

        Telegram allows one keyboard per message: a phone prompt next to inline buttons
        goes as a message of its own, and a keyboard to take away is removed first,
        then the inline buttons are put on the same message.
        """
        inline = inline_markup(screen)
        keyboard = reply_markup(screen)
        main_markup = keyboard if inline is None or (keyboard is not None and screen.prompt is None) \
            else inline
        photo = photo_file(screen, media)
        sent: Message
        if photo is not None and fits_caption(screen.text):
            sent = await self.bot.send_photo(chat_id=chat_id, photo=photo, caption=screen.text or None,
                                             reply_markup=main_markup)
        else:
            if photo is not None:  # too long for a caption: the picture first, then the words
                await self.bot.send_photo(chat_id=chat_id, photo=photo)
            sent = await self.bot.send_message(chat_id=chat_id, text=screen.text, reply_markup=main_markup)
        if inline is not None and keyboard is not None:
            if screen.prompt is not None:
                await self.bot.send_message(chat_id=chat_id, text=prompt_text(screen.prompt),
                                            reply_markup=keyboard)
            else:
                await self.bot.edit_message_reply_markup(chat_id=chat_id, message_id=sent.message_id,
                                                         reply_markup=inline)
        return sent.message_id
