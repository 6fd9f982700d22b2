"""Talking to the Bot API about a bot itself: its identity, webhook or polling, its command list."""

from __future__ import annotations

from aiogram import Bot, methods
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods.base import Response
from aiogram.types import BotCommand, User

from bots.dialog.texts import Texts

# What we ask Telegram for; everything else (channel posts, polls, inline queries) is not ours.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
COMMAND_LOCALES = ("ru", "en")
REQUEST_TIMEOUT = 20

# aiogram builds `Response[<result type>]` for every call, and pydantic keeps that class
# only weakly: after each garbage collection the next call rebuilt it (4 ms for a
# Message). Holding the ones we use keeps them built (bench/webhook.py's profile).
_RESPONSES = [Response[m.__returning__] for m in (  # type: ignore[name-defined]
    methods.SendMessage, methods.SendPhoto, methods.EditMessageText, methods.EditMessageMedia,
    methods.EditMessageCaption, methods.EditMessageReplyMarkup, methods.AnswerCallbackQuery,
    methods.GetMe, methods.GetFile, methods.GetUpdates, methods.SetWebhook,
    methods.DeleteWebhook, methods.SetMyCommands)]


def api_session(api_url: str, *, limit: int = 100) -> AiohttpSession:
    """One HTTP session to the Bot API (or a fake of it) that many bots may share."""
    return AiohttpSession(api=TelegramAPIServer.from_base(api_url), limit=limit, timeout=REQUEST_TIMEOUT)


def make_bot(token: str, session: AiohttpSession) -> Bot:
    return Bot(token=token, session=session)


def webhook_url(public_url: str, bot_id: str) -> str:
    return f"{public_url.rstrip('/')}/webhooks/telegram/{bot_id}"


async def identify(bot: Bot) -> User:
    """getMe: raises TelegramUnauthorizedError when Telegram refuses the token."""
    return await bot.get_me()


async def use_webhook(bot: Bot, url: str, secret: str) -> None:
    await bot.set_webhook(url=url, secret_token=secret, allowed_updates=ALLOWED_UPDATES,
                          drop_pending_updates=False)


async def use_polling(bot: Bot) -> None:
    """A webhook and getUpdates exclude each other: remove the webhook, keep pending updates."""
    await bot.delete_webhook(drop_pending_updates=False)


async def set_commands(bot: Bot) -> None:
    """The command list in Russian (the default) and English."""
    for locale in COMMAND_LOCALES:
        texts = Texts(locale)
        commands = [BotCommand(command="start", description=texts("telegram.command_start"))]
        await bot.set_my_commands(commands, language_code=None if locale == "ru" else locale)
