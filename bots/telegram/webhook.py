"""The webhook Telegram posts to: `/webhooks/telegram/{bot_id}`. Thin: check, store, answer.

Unknown or removed bot -> 404; wrong secret header -> 401 (compared in constant
time); not a JSON update -> 400. The update is stored (bot, update_id) before the
200, a redelivered one is dropped, and the worker processes it (handed over in memory,
or from the table: see processing.UpdateWorker.take).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiogram import Bot
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from core.services import bots
from core.services.context import CoreContext

log = logging.getLogger("kartochka.telegram.webhook")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
ROUTE = "/webhooks/telegram/{bot_id}"
ROUTE_NAME = "telegram_webhook"


class Intake(Protocol):
    """Where a received update goes (processing.UpdateWorker)."""

    def take(self, bot_id: str, key: str, payload: dict[str, Any],
             update: Update | None = None) -> Awaitable[bool]: ...


class TelegramWebhook:
    """The aiohttp handler; `bot_of` gives the live aiogram Bot to parse the update for."""

    def __init__(self, ctx: CoreContext, intake: Intake, bot_of: Callable[[str], Bot | None]) -> None:
        self.ctx = ctx
        self.intake = intake
        self.bot_of = bot_of
        self._secrets: dict[str, str] = {}

    def secret(self, bot_id: str) -> str:
        if bot_id not in self._secrets:
            self._secrets[bot_id] = bots.webhook_secret(self.ctx, bot_id)
        return self._secrets[bot_id]

    async def handle(self, request: web.Request) -> web.Response:
        bot_id = request.match_info["bot_id"]
        bot = await bots.get_bot(self.ctx, bot_id) if len(bot_id) <= 32 else None
        if bot is None or bot.channel != "telegram":
            return _answer(404, "no such bot")
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret(bot_id).encode()):
            log.warning("telegram webhook with a wrong secret", extra={"bot_id": bot_id})
            return _answer(401, "wrong secret token")
        parsed = await _parse(request, self.bot_of(bot_id))
        if parsed is None:
            log.warning("telegram webhook with a malformed body", extra={"bot_id": bot_id})
            return _answer(400, "not a Telegram update")
        payload, update = parsed
        if not await self.intake.take(bot_id, str(payload["update_id"]), payload, update):
            log.info("telegram update redelivered; dropped",
                     extra={"bot_id": bot_id, "update_id": payload["update_id"]})
        return web.json_response({"ok": True})


async def _parse(request: web.Request, bot: Bot | None) -> tuple[dict[str, Any], Update] | None:
    """The update as sent and as aiogram reads it (for `bot`), or None when it is not one."""
    try:
        payload = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or type(payload.get("update_id")) is not int:
        return None
    try:
        update = Update.model_validate(payload, context={"bot": bot} if bot is not None else None)
    except ValidationError:
        return None
    return payload, update


def _answer(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": f"http_{status}", "message": message}}, status=status)


def add_route(app: web.Application, handler: TelegramWebhook) -> None:
    app.router.add_post(ROUTE, handler.handle, name=ROUTE_NAME)
