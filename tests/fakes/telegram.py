"""A fake Telegram Bot API: a real aiohttp server at /bot<token>/<method>, as aiogram talks to it.

It keeps what the real one keeps for our purposes (bots, chats' messages, files,
webhooks, a getUpdates queue with long polling), answers in the Bot API's shapes
(`{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description"}`),
records every call (photos as bytes) and fails on demand: 429 with retry_after,
403 "bot was blocked by the user", 500.

`Person` builds realistic updates of one user in a private chat.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.telegram_methods import BotApiMethods, Call, Failure, FakeBot, _ApiError
from tests.fakes.telegram_people import Person

__all__ = ["Call", "FakeTelegram", "Person"]
TEXT_FIELDS = {"text", "caption", "description", "secret_token", "url", "callback_query_id", "file_id",
               "inline_message_id", "short_description", "language_code", "title"}


class FakeTelegram(BotApiMethods):
    """The fake server; `await fake.start()` (or `with fake.in_thread():` for sync tests)."""

    def __init__(self) -> None:
        self.bots: dict[str, FakeBot] = {}
        self.calls: list[Call] = []
        self.failures: list[Failure] = []
        self.blocked_chats: set[int] = set()
        self.messages: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self.downloads: list[str] = []
        self._message_ids = itertools.count(5001)
        self._runner: web.AppRunner | None = None
        self._changed: asyncio.Event | None = None
        self.url = ""

    # ---- set-up -------------------------------------------------------------------------------

    def add_bot(self, username: str = "kartochka_test_bot", first_name: str = "Кофейня") -> str:
        """A bot the fake knows; returns its token (`<id>:<secret>`, as Telegram's look)."""
        bot_id = 6_000_000_000 + len(self.bots) + 1
        token = f"{bot_id}:{secrets.token_urlsafe(26)}"
        self.bots[token] = FakeBot(token=token, id=bot_id, username=username, first_name=first_name)
        return token

    def fail(self, method: str | None, status: int, description: str | None = None, *,
             retry_after: int | None = None, times: int = 1, chat_id: int | None = None) -> None:
        """Answer the next `times` calls of `method` (None: any method) with an error."""
        default = {429: f"Too Many Requests: retry after {retry_after}",
                   403: "Forbidden: bot was blocked by the user", 500: "Internal Server Error",
                   400: "Bad Request"}
        self.failures.append(Failure(method, status, description or default.get(status, "Error"),
                                     retry_after, times, chat_id))

    def push_update(self, token: str, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates (long polling)."""
        bot = self.bots[token]
        bot.pending.append(update)
        bot.arrived.set()

    # ---- what was received ----------------------------------------------------------------------

    def calls_of(self, method: str, token: str | None = None, chat_id: int | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and (token is None or c.token == token)
                and (chat_id is None or c.chat_id == chat_id)]

    def sent(self, chat_id: int | None = None) -> list[Call]:
        """Messages sent or edited (what a person sees arrive), in order."""
        kinds = ("sendMessage", "sendPhoto", "editMessageText", "editMessageMedia", "editMessageCaption")
        return [c for c in self.calls if c.method in kinds and (chat_id is None or c.chat_id == chat_id)]

    async def wait_for(self, predicate: Any, within: float = 10.0) -> list[Call]:
        """Wait until `predicate(calls)` is true (returns its truthy value); fails after `within` s."""
        assert self._changed is not None, "start the fake first"
        deadline = asyncio.get_running_loop().time() + within
        while True:
            result = predicate(self.calls)
            if result:
                return result  # type: ignore[no-any-return]
            self._changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                methods = [c.method for c in self.calls]
                raise AssertionError(f"the fake never saw what was expected; calls: {methods}")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_sent(self, chat_id: int, count: int = 1, within: float = 10.0) -> list[Call]:
        """Wait until `count` messages reached the chat; returns all of them."""
        return await self.wait_for(lambda _c: (s := self.sent(chat_id)) and len(s) >= count and s,
                                   within)

    # ---- lifetime -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        return app

    async def start(self) -> str:
        self._changed = asyncio.Event()
        for bot in self.bots.values():
            bot.arrived = asyncio.Event()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @contextmanager
    def in_thread(self) -> Iterator[FakeTelegram]:
        """Serve from a thread of its own: for tests that call the synchronous CLI."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        ready.wait(10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.close(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    # ---- the API ------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        params, files = await _read_params(request)
        call = Call(token=token, method=method, params=params, files=files)
        self.calls.append(call)
        if self._changed is not None:
            self._changed.set()
        bot = self.bots.get(token)
        if bot is None:
            return _error(401, "Unauthorized")
        failure = self._take_failure(method, call.chat_id)
        if failure is not None:
            extra = {"retry_after": failure.retry_after} if failure.retry_after is not None else None
            return _error(failure.status, failure.description, extra)
        if call.chat_id is not None and call.chat_id in self.blocked_chats and method != "getChat":
            return _error(403, "Forbidden: bot was blocked by the user")
        handler = getattr(self, "m_" + method[:1].lower() + method[1:], None)
        if handler is None:
            return _error(404, "Not Found")
        try:
            result = await handler(bot, call)
        except _ApiError as exc:
            return _error(exc.status, exc.description)
        return web.json_response({"ok": True, "result": result})

    def _take_failure(self, method: str, chat_id: int | None) -> Failure | None:
        for failure in self.failures:
            if failure.method in (None, method) and failure.chat_id in (None, chat_id):
                failure.times -= 1
                if failure.times <= 0:
                    self.failures.remove(failure)
                return failure
        return None

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self.bots:
            return _error(401, "Unauthorized")
        path = request.match_info["path"]
        self.downloads.append(path)
        data = self.files.get(path.removeprefix("photos/"))
        if data is None:
            return _error(404, "Not Found")
        return web.Response(body=data, content_type="application/octet-stream")

    # ---- pushing a webhook like Telegram does ----------------------------------------------------

    async def deliver(self, token: str, update: dict[str, Any], url: str | None = None) -> int:
        """POST an update to the bot's webhook with its secret header, as Telegram would."""
        hook = self.bots[token].webhook or {}
        headers = {}
        if hook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(hook["secret_token"])
        async with aiohttp.ClientSession() as session, session.post(
                url or hook["url"], json=update, headers=headers) as response:
            return response.status


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Parameters as the Bot API accepts them: query string, JSON, urlencoded or multipart."""
    params: dict[str, Any] = {k: _decode(k, v) for k, v in request.query.items()}
    files: dict[str, bytes] = {}
    if request.content_type == "application/json":
        body = await request.json()
        params.update(body if isinstance(body, dict) else {})
        return params, files
    if request.method == "POST" and request.content_type in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = value.file.read()
            else:
                params[key] = _decode(key, str(value))
    return params, files


def _decode(key: str, value: str) -> Any:
    """Form values arrive as strings; JSON-serialised objects and numbers are decoded."""
    if key in TEXT_FIELDS:
        return value
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if value in ("true", "false"):
        return value == "true"
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    return value

