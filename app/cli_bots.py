"""`kartochka bot add|list|remove`: connect a merchant's messenger bot."""

from __future__ import annotations

import argparse
from typing import Any

CHANNELS = ("telegram",)  # VK and MAX arrive with their adapters; the web chat needs no token


async def _core() -> Any:
    from app.container import build_core
    from core.config import Settings

    return await build_core(Settings())


async def cmd_bot_add(args: argparse.Namespace) -> int:
    from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError
    from aiogram.utils.token import TokenValidationError

    from bots.telegram import setup
    from core.errors import ValidationFailed
    from core.services import bots
    from core.services.merchants import get_merchant

    core = await _core()
    session = setup.api_session(core.settings.telegram_api_url)
    try:
        merchant = await get_merchant(core.ctx, args.merchant)
        try:
            bot = setup.make_bot(args.token, session)
            me = await setup.identify(bot)
        except TokenValidationError as exc:
            raise ValidationFailed("that is not a Telegram bot token (<digits>:<secret>)") from exc
        except TelegramUnauthorizedError as exc:
            raise ValidationFailed("Telegram refused this token (check it with @BotFather)") from exc
        except TelegramAPIError as exc:
            raise ValidationFailed(f"Telegram did not confirm the token: {exc.message}") from exc
        info = await bots.add_bot(core.ctx, merchant.id, "telegram", args.token,
                                  username=me.username, platform_bot_id=str(me.id))
        print(f"bot @{me.username} ({me.first_name}) connected to {merchant.slug}")
        public_url = core.settings.public_url
        if public_url:
            url = setup.webhook_url(public_url, info.id)
            try:
                await setup.use_webhook(bot, url, bots.webhook_secret(core.ctx, info.id))
                print(f"webhook: {url}")
            except TelegramAPIError as exc:  # serve sets it again at start
                print(f"webhook: NOT set, Telegram said: {exc.message}")
        else:
            print("webhook: not set (no KARTOCHKA_PUBLIC_URL); `kartochka serve` will use long polling")
        try:
            await setup.set_commands(bot)
            print("commands: /start")
        except TelegramAPIError as exc:
            print(f"commands: NOT set, Telegram said: {exc.message}")
        print("mini-app menu button: not set (the mini-app does not exist yet)")
        print("restart `kartochka serve` or wait a minute: running processes pick up new bots")
    finally:
        await session.close()
        await core.close()
    print(info.id)
    return 0


async def cmd_bot_list(args: argparse.Namespace) -> int:
    from core.services import bots
    from core.services.merchants import get_merchant

    core = await _core()
    try:
        merchant = await get_merchant(core.ctx, args.merchant)
        found = await bots.list_bots(core.ctx, merchant.id)
    finally:
        await core.close()
    for bot in found:
        name = f"@{bot.username}" if bot.username else "-"
        print(f"{bot.id}\t{bot.channel}\t{name}\t{bot.created_at:%Y-%m-%d %H:%M}")
    print(f"{len(found)} bots")
    return 0


async def cmd_bot_remove(args: argparse.Namespace) -> int:
    from bots.telegram import setup
    from core.errors import NotFound
    from core.services import bots
    from core.services.merchants import get_merchant

    core = await _core()
    session = setup.api_session(core.settings.telegram_api_url)
    try:
        merchant = await get_merchant(core.ctx, args.merchant)
        info = await bots.get_bot(core.ctx, args.bot_id)
        if info is None or info.merchant_id != merchant.id:
            raise NotFound(f"no bot {args.bot_id!r} for {merchant.slug}")
        token = await bots.bot_token(core.ctx, info)
        note = ""
        if info.channel == "telegram" and token is not None:
            try:
                await setup.use_polling(setup.make_bot(token, session))  # i.e. delete the webhook
            except Exception as exc:  # the token may be revoked already: removing goes on
                note = f" (Telegram's webhook not removed: {type(exc).__name__})"
        await bots.remove_bot(core.ctx, merchant.id, info.id)
    finally:
        await session.close()
        await core.close()
    print(f"bot {args.bot_id} removed{note}")
    return 0


def add_bot_commands(sub: Any) -> None:
    """Register `bot add|list|remove` on the CLI's subparsers."""
    group = sub.add_parser("bot", help="messenger bots").add_subparsers(dest="sub", required=True)
    p = group.add_parser("add", help="connect a bot; prints our bot id on the last line")
    p.add_argument("--merchant", required=True)
    p.add_argument("--channel", required=True, choices=CHANNELS)
    p.add_argument("--token", required=True)
    p.set_defaults(run=cmd_bot_add)
    p = group.add_parser("list", help="a merchant's connected bots")
    p.add_argument("--merchant", required=True)
    p.set_defaults(run=cmd_bot_list)
    p = group.add_parser("remove", help="disconnect a bot (its webhook is deleted)")
    p.add_argument("--merchant", required=True)
    p.add_argument("bot_id")
    p.set_defaults(run=cmd_bot_remove)
