"""The one aiohttp application: /healthz, /metrics, /api/v1 (later: webhooks, console...)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy import text

from app.container import Core
from bots.telegram.runtime import TelegramRuntime
from bots.telegram.webhook import add_route as add_telegram_webhook
from bots.web.routes import add_web_chat
from bots.web.setup import WebChat
from merchant.api import create_api
from merchant.api.http import MERCHANT_ID, Handler

log = logging.getLogger("kartochka.http")
CORE_KEY = web.AppKey("core", Core)
TELEGRAM_KEY = web.AppKey("telegram", TelegramRuntime)


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One structured line and one metric sample per request."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = request.match_info.route.name or "unmatched"
        core = request.app[CORE_KEY]
        core.metrics.requests.labels(route, request.method, str(status)).inc()
        core.metrics.latency.labels(route).observe(elapsed)
        log.info("request", extra={
            "method": request.method, "route": route, "status": status,
            "duration_ms": round(elapsed * 1000, 2),
            "merchant_id": request.get(MERCHANT_ID),
            "request_id": request.headers.get("X-Request-Id"),
        })


async def healthz(request: web.Request) -> web.Response:
    core = request.app[CORE_KEY]
    try:
        async with core.ctx.db.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # the database is what health means here
        return web.json_response({"status": "unavailable", "error": type(exc).__name__}, status=503)
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    body = request.app[CORE_KEY].metrics.render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type": "text/plain; version=0.0.4"})


def create_app(core: Core, *, background: bool = True) -> web.Application:
    """The application; `background` starts the outbox drain and the scheduler with it."""
    app = web.Application(middlewares=[access_log], client_max_size=1024 * 1024)
    app[CORE_KEY] = core
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/metrics", metrics, name="metrics")
    api = create_api(core.ctx, core.auth)
    api[CORE_KEY] = core
    app.add_subapp("/api/v1", api)
    messengers = core.messengers
    web_chat = add_web_chat(app, WebChat(core.ctx, core.settings, messengers.dialog, messengers.dispatcher))
    messengers.deep_links["web"] = web_chat.deep_link
    telegram = TelegramRuntime(core.ctx, core.settings, messengers)
    add_telegram_webhook(app, telegram.webhook)
    app[TELEGRAM_KEY] = telegram

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        if background:
            await core.start_background()
            await telegram.start()
        yield
        # By now aiohttp has stopped listening, said "going away" to the web chat sockets and
        # waited for requests in flight. Then: no new Telegram updates; the dispatcher ends the
        # sends in flight while the senders still work; the outbox and scheduler stop between
        # database calls; the senders' sessions; the database last. Each step is bounded.
        await telegram.stop_receiving()
        await core.stop_background()
        await telegram.stop()
        await core.close()

    app.cleanup_ctx.append(lifetime)
    return app
