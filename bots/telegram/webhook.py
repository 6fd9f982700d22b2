"""The webhook Telegram posts to: `/webhooks/telegram/{bot_id}`. Thin: check, store, answer.

Unknown or removed bot -> 404; wrong secret header -> 401 (compared in constant
time); not a JSON update -> 400. The update is stored (bot, update_id) before the
200, a redelivered one is dropped, and a worker processes it from the table.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from core.services import bots, updates
from core.services.context import CoreContext

log = logging.getLogger("kartochka.telegram.webhook")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
ROUTE = "/webhooks/telegram/{bot_id}"
ROUTE_NAME = "telegram_webhook"


class TelegramWebhook:
    """The aiohttp handler; `on_stored` wakes the processing worker."""

    def __init__(self, ctx: CoreContext, on_stored: Callable[[], None]) -> None:
        self.ctx = ctx
        self.on_stored = on_stored
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
        payload = await _parse(request)
        if payload is None:
            log.warning("telegram webhook with a malformed body", extra={"bot_id": bot_id})
            return _answer(400, "not a Telegram update")
        if await updates.store(self.ctx, bot_id, str(payload["update_id"]), payload):
            self.on_stored()
        else:
            log.info("telegram update redelivered; dropped",
                     extra={"bot_id": bot_id, "update_id": payload["update_id"]})
        return web.json_response({"ok": True})


async def _parse(request: web.Request) -> dict[str, Any] | None:
    """The update as sent, or None when it is not JSON or not an update."""
    try:
        payload = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or type(payload.get("update_id")) is not int:
        return None
    try:
        Update.model_validate(payload)
    except ValidationError:
        return None
    return payload


def _answer(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": f"http_{status}", "message": message}}, status=status)


def add_route(app: web.Application, handler: TelegramWebhook) -> None:
    app.router.add_post(ROUTE, handler.handle, name=ROUTE_NAME)
