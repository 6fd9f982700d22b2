"""The fake Bot API of webhook.py in a process of its own: tests/fakes/telegram.py, timed and trimmed.

`FakeTelegram` is used as it is; this wrapper only replaces its call list with a
recorder that stamps every call with `time.monotonic()` (the same clock in every
process of this machine) when the fake has read it, keeps no photo bytes (a long
run would otherwise hold every card it was sent), and streams message sends to
whoever listens. Control routes beside the Bot API's:

* ``POST /_bench/bots?username=U``  -> ``{"token": ...}`` a new bot the fake knows;
* ``GET  /_bench/webhook?token=T``  -> what the bot's last setWebhook said (url, secret_token);
* ``GET  /_bench/events``           -> a stream of lines ``<bot id> <chat id> <method> <monotonic>``,
  one per message sent (sendMessage, sendPhoto, edits), from the moment of connecting;
* ``GET  /_bench/log?since=S``      -> ``{"sends": [[t, bot id, chat id, method], ...],
  "methods": {method: count}}`` every message sent at or after monotonic S, and all calls by method.

    python bench/webhook_fake.py [--port 0]     # prints its base URL on the first line
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import signal
import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for tests.fakes

from tests.fakes.telegram import Call, FakeTelegram  # noqa: E402

SENDS = frozenset({"sendMessage", "sendPhoto", "editMessageText", "editMessageMedia",
                   "editMessageCaption"})
KEEP_FILES = 200  # photos sent are stored as files by the fake; only the latest few are kept
KEEP_MESSAGES = 20_000  # messages it keeps for edits


class CallRecorder(list[Call]):
    """Stands in for FakeTelegram.calls: stamps and counts each call, keeps none of them."""

    def __init__(self, fake: BenchFake) -> None:
        super().__init__()
        self.fake = fake

    def append(self, call: Call) -> None:
        self.fake.record(call, time.monotonic())


class BenchFake(FakeTelegram):
    def __init__(self) -> None:
        super().__init__()
        self.calls = CallRecorder(self)
        self.methods: collections.Counter[str] = collections.Counter()
        self.sends: list[tuple[float, int, int, str]] = []
        self.listeners: set[asyncio.Queue[bytes]] = set()

    def record(self, call: Call, at: float) -> None:
        self.methods[call.method] += 1
        if len(self.files) > KEEP_FILES:
            self.files.clear()
        if len(self.messages) > KEEP_MESSAGES:
            self.messages.clear()
        if call.method not in SENDS:
            return
        bot_id = int(call.token.split(":", 1)[0]) if ":" in call.token else 0
        chat_id = call.chat_id or 0
        self.sends.append((at, bot_id, chat_id, call.method))
        line = f"{bot_id} {chat_id} {call.method} {at:.6f}\n".encode()
        for queue in self.listeners:
            queue.put_nowait(line)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/_bench/bots", self._new_bot)
        app.router.add_get("/_bench/webhook", self._webhook)
        app.router.add_get("/_bench/events", self._events)
        app.router.add_get("/_bench/log", self._log)
        return app

    async def _new_bot(self, request: web.Request) -> web.Response:
        token = self.add_bot(username=request.query.get("username", "bench_bot"))
        self.bots[token].arrived = asyncio.Event()
        return web.json_response({"token": token})

    async def _webhook(self, request: web.Request) -> web.Response:
        bot = self.bots.get(request.query.get("token", ""))
        if bot is None:
            return web.json_response({"error": "no such bot"}, status=404)
        return web.json_response(bot.webhook or {})

    async def _log(self, request: web.Request) -> web.Response:
        since = float(request.query.get("since", "0"))
        sends = [list(s) for s in self.sends if s[0] >= since]
        return web.json_response({"sends": sends, "methods": dict(self.methods)})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.listeners.add(queue)
        try:
            await response.write(b"ready\n")
            while True:
                chunk = [await queue.get()]
                while not queue.empty():
                    chunk.append(queue.get_nowait())
                await response.write(b"".join(chunk))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.listeners.discard(queue)
        return response


async def serve(port: int) -> None:
    fake = BenchFake()
    fake._changed = asyncio.Event()
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{bound}"
    print(fake.url, flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    with contextlib.suppress(Exception):
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description="the fake Bot API for webhook.py")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

