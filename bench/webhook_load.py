"""The load generator of webhook.py (its own process: `webhook.py _load ...`): button presses in,
photos out.

Each press is a Telegram update (a callback_query with data "card" from customer
*i*'s private chat) POSTed to the webhook with the secret header, as Telegram would.
Its latency runs from the moment the press was due (just before the POST in the
closed loop; on schedule in the open loop) to the moment the fake Bot API read
the resulting sendPhoto for that chat: the fake streams those (bot, chat, method,
monotonic time) to us, and a chat's photos are matched to its presses in order.
`time.monotonic()` is one clock for every process of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from pos_load import percentile
from webhook_setup import user_id

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
FAILURES_KEPT = 5
POST_TIMEOUT = 30.0


@dataclass
class Press:
    due: float
    arrived: asyncio.Future[float]


@dataclass
class Photos:
    """The fake's stream of sends: each sendPhoto to our bot resolves the chat's oldest press."""

    bot: int
    method: str = "sendPhoto"
    waiting: dict[int, collections.deque[Press]] = field(default_factory=dict)
    unexpected: int = 0
    others: collections.Counter[str] = field(default_factory=collections.Counter)

    async def listen(self, session: aiohttp.ClientSession, url: str, ready: asyncio.Future[None]) -> None:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
            async for line in response.content:
                if line.strip() == b"ready":
                    ready.set_result(None)
                    continue
                bot, chat, method, at = line.split()
                if int(bot) != self.bot:
                    continue
                if method.decode() != self.method:
                    self.others[method.decode()] += 1
                    continue
                queue = self.waiting.get(int(chat))
                while queue:
                    press = queue.popleft()
                    if not press.arrived.done():
                        press.arrived.set_result(float(at))
                        break
                else:
                    self.unexpected += 1

    def expect(self, chat: int, due: float) -> Press:
        press = Press(due, asyncio.get_running_loop().create_future())
        self.waiting.setdefault(chat, collections.deque()).append(press)
        return press

    def forget(self, chat: int, press: Press) -> None:
        queue = self.waiting.get(chat)
        if queue is not None and press in queue:
            queue.remove(press)


@dataclass
class Recorder:
    latencies: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)  # POST -> 200
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    lost: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        if len(self.failures) < FAILURES_KEPT:
            self.failures.append(text)


def press_body(update_id: int, chat: int) -> bytes:
    user = {"id": chat, "is_bot": False, "first_name": "Гость", "language_code": "ru"}
    message = {"message_id": 1, "date": int(time.time()) - 60, "text": "Меню",
               "chat": {"id": chat, "type": "private", "first_name": "Гость"}}
    return json.dumps({"update_id": update_id, "callback_query": {
        "id": str(update_id), "from": user, "message": message, "chat_instance": str(-chat),
        "data": "card"}}).encode()


class Load:
    def __init__(self, args: argparse.Namespace, session: aiohttp.ClientSession, photos: Photos) -> None:
        self.args = args
        self.session = session
        self.photos = photos
        self.recorder = Recorder()
        self.headers = {SECRET_HEADER: args.secret, "Content-Type": "application/json"}

    async def post(self, i: int, chat: int, due: float) -> Press | None:
        """POST press `i` to `chat`; the press to wait for, or None when the webhook refused it."""
        press = self.photos.expect(chat, due)
        sent = time.monotonic()
        try:
            async with self.session.post(self.args.url, data=press_body(self.args.first_update + i, chat),
                                         headers=self.headers) as response:
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, answer = 0, repr(exc).encode()
        self.recorder.statuses[status] += 1
        if status != 200:
            self.photos.forget(chat, press)
            self.recorder.fail(f"{status} {answer[:300].decode(errors='replace')}")
            return None
        self.recorder.answered.append(time.monotonic() - sent)
        return press

    async def wait(self, chat: int, press: Press | None) -> None:
        if press is None:
            return
        try:
            arrived = await asyncio.wait_for(asyncio.shield(press.arrived), self.args.timeout)
        except TimeoutError:
            self.photos.forget(chat, press)
            self.recorder.lost += 1
            self.recorder.fail(f"no {self.photos.method} for chat {chat} within {self.args.timeout:g} s")
            return
        self.recorder.latencies.append(arrived - press.due)

    async def press(self, i: int, chat: int, due: float) -> None:
        await self.wait(chat, await self.post(i, chat, due))

    def chat(self, i: int) -> int:
        return user_id(i % (self.args.customers - self.args.hot_chats))

    async def closed(self) -> None:
        issued = iter(range(self.args.count))

        async def worker() -> None:
            for i in issued:
                await self.press(i, self.chat(i), time.monotonic())

        await asyncio.gather(*(worker() for _ in range(self.args.concurrency)))

    async def open(self) -> None:
        """`rate` presses a second on schedule; hot chats get `hot_presses` each at the start."""
        args = self.args
        count = max(1, int(args.rate * args.seconds))
        started = time.monotonic() + 0.05
        tasks = [asyncio.create_task(self.hot(count + k * args.hot_presses, user_id(args.customers - 1 - k),
                                              started)) for k in range(args.hot_chats)]
        for i in range(count):
            due = started + i / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.press(i, self.chat(i), due)))
        await asyncio.gather(*tasks)

    async def hot(self, first: int, chat: int, due: float) -> None:
        """Several presses in one chat at once (posted in order, not waiting for the photos)."""
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        presses = [await self.post(first + j, chat, due) for j in range(self.args.hot_presses)]
        await asyncio.gather(*(self.wait(chat, press) for press in presses))


def summary(recorder: Recorder, photos: Photos, elapsed: float) -> dict[str, Any]:
    ordered, answered = sorted(recorder.latencies), sorted(recorder.answered)
    ok = len(ordered)
    return {
        "requests": sum(recorder.statuses.values()), "ok": ok, "lost": recorder.lost,
        "statuses": {str(k): v for k, v in sorted(recorder.statuses.items())},
        "elapsed_s": round(elapsed, 3), "per_second": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        **{f"p{p}_ms": round(percentile(ordered, p) * 1000, 2) for p in (50, 90, 99)},
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 2),
        "mean_ms": round(sum(ordered) / ok * 1000, 2) if ok else 0.0,
        "http_p50_ms": round(percentile(answered, 50) * 1000, 2),
        "http_p99_ms": round(percentile(answered, 99) * 1000, 2),
        "unexpected_photos": photos.unexpected, "other_sends": dict(photos.others),
        "failures": recorder.failures,
    }


async def load(args: argparse.Namespace) -> dict[str, Any]:
    photos = Photos(bot=args.bot)
    timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)
    connections = args.concurrency if args.mode == "closed" else 256
    async with aiohttp.ClientSession() as listen_session, aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections), timeout=timeout) as session:
        ready = asyncio.get_running_loop().create_future()
        listener = asyncio.create_task(photos.listen(listen_session, f"{args.fake}/_bench/events", ready))
        await asyncio.wait_for(ready, 10)
        work = Load(args, session, photos)
        started = time.monotonic()
        await (work.closed() if args.mode == "closed" else work.open())
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.2)  # photos of presses given up on may still arrive: counted as unexpected
        listener.cancel()
    return summary(work.recorder, photos, elapsed)


def load_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="webhook.py _load")
    parser.add_argument("--mode", choices=("closed", "open"), required=True)
    parser.add_argument("--url", required=True, help="the webhook to POST presses to")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--fake", required=True, help="the fake Bot API's base URL")
    parser.add_argument("--bot", type=int, required=True, help="the bot's Telegram id (token prefix)")
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--first-update", type=int, required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hot-chats", type=int, default=0)
    parser.add_argument("--hot-presses", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each photo")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(load(args))
    args.out.write_text(json.dumps(result))
    return 0
