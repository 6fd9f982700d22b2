"""The peer of webhook.py: a bare aiogram 3 bot on aiogram's own webhook handler, nothing else.

A callback press is answered (answerCallbackQuery) and a photo is sent back to the
chat with a caption and one inline button — the shape of the product's card
screen — through the same fake Bot API. No database, no dialog, no queue: the
photo is the same PNG for every press (a card the driver rendered once, so the
bytes on the wire are the product's size). aiogram's `SimpleRequestHandler`
answers Telegram at once and handles the update in the background, as the
product does after storing it.

    python bench/webhook_peer.py --api-url URL --token T --port P --secret S --photo card.png \
        --public-url https://bench.invalid
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

PATH = "/webhook"
CAPTION = "Ваша карта 0000 0000 0000\nБаланс: 0 бонусов · Уровень: Базовый"


def build(args: argparse.Namespace) -> web.Application:
    photo = Path(args.photo).read_bytes()
    session = AiohttpSession(api=TelegramAPIServer.from_base(args.api_url), limit=100)
    bot = Bot(token=args.token, session=session)
    router = Router()
    back = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="« Меню", callback_data="menu")]])

    @router.callback_query()
    async def on_press(query: CallbackQuery) -> None:
        await query.answer()
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        await bot.send_photo(chat_id=chat_id, photo=BufferedInputFile(photo, "card.png"),
                             caption=CAPTION, reply_markup=back)

    dispatcher = Dispatcher()
    dispatcher.include_router(router)

    async def on_startup(*_args: object, **_kwargs: object) -> None:
        await bot.set_webhook(url=args.public_url.rstrip("/") + PATH, secret_token=args.secret,
                              allowed_updates=["message", "callback_query"])

    dispatcher.startup.register(on_startup)
    app = web.Application()
    SimpleRequestHandler(dispatcher, bot, secret_token=args.secret).register(app, path=PATH)
    setup_application(app, dispatcher, bot=bot)

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/health", health)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--photo", required=True)
    parser.add_argument("--public-url", default="https://bench.invalid")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    web.run_app(build(args), host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
