"""Stopping the whole app while it is busy: it stops, promptly, and leaves nothing half sent.

The app runs with its background tasks (outbox, scheduler, dispatcher, Telegram polling
and update worker) while sales come in through the REST API, a registered web chat visitor
gets their notifications over the websocket and a Telegram user keeps writing. Then the
server is closed the way `kartochka serve` closes it. A hang fails the test (after
HANG_BOUND seconds, with where every task was stuck) instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from app.container import Core
from app.web import create_app
from core.config import Settings
from core.db.engine import Database
from core.db.models import OutgoingMessage, Purchase
from core.services import bots
from tests.bots.web.conftest import Widget
from tests.bots.web.test_journey import register
from tests.fakes.telegram import FakeTelegram, Person

ROUNDS = 10
HANG_BOUND = 30.0  # far above a normal stop; only a hang gets here
PHONE = "+79161234567"
CANCEL_PATH = ("did not stop in time", "ignored their cancel", "left behind")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def settings(database_url: str, fake: FakeTelegram) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key-" + "x" * 32,
        api_key_cache_seconds=0,
        telegram_api_url=fake.url,
        public_url=None,  # long polling: a poller per bot runs too
        telegram_poll_seconds=1,
        telegram_worker_poll_seconds=0.2,
        scheduler_interval_seconds=0.05,
        _env_file=None,  # type: ignore[call-arg]
    )


def _stack(coro: Any) -> list[str]:
    """Where a task's coroutine chain is suspended, innermost last."""
    lines = []
    while coro is not None and len(lines) < 80:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) \
            or getattr(coro, "ag_frame", None)
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
                     if frame is not None else repr(coro)[:120])
        nxt = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) \
            or getattr(coro, "ag_await", None)
        coro = nxt if nxt is not coro else None
    return lines


def _dump(tasks: set[asyncio.Task[Any]]) -> str:
    return "\n".join(f"{task.get_name()}:\n    " + "\n    ".join(_stack(task.get_coro()))
                     for task in tasks)


async def _stops(closing: Coroutine[Any, Any, None], what: str) -> None:
    """Run a stop with a bound; a hang fails with where every task is (not relying on the stop
    to take a cancel: the old close swallowed one)."""
    task = asyncio.ensure_future(closing)
    done, _ = await asyncio.wait([task], timeout=HANG_BOUND)
    if not done:
        report = _dump(asyncio.all_tasks())
        task.cancel()
        await asyncio.wait([task], timeout=1)
        pytest.fail(f"{what} did not stop:\n{report}")
    task.result()


async def _nothing_left_running() -> None:
    """Every task the app started has ended (one still running would hang the event loop's close)."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if not others:
        return
    _, stuck = await asyncio.wait(others, timeout=HANG_BOUND)
    if stuck:
        report = _dump(stuck)
        for _ in range(3):  # so the rest of the suite can run: cancel them, harder than the loop's close
            for task in stuck:
                task.cancel()
            if stuck:
                _, stuck = await asyncio.wait(stuck, timeout=1)
        pytest.fail("tasks left running after the app stopped:\n" + report)


class Load:
    """Sales at the till, a visitor reading their chat, a Telegram user writing: until the server goes."""

    def __init__(self, client: TestClient, auth: dict[str, str], widget: Widget,  # type: ignore[type-arg]
                 fake: FakeTelegram, token: str) -> None:
        self.client, self.auth, self.widget, self.fake, self.token = client, auth, widget, fake, token
        self.sales = 0
        self.notices: list[str] = []  # sale notifications that reached the visitor's socket
        self._noticed = asyncio.Event()
        self.closed_with: int | None = None  # the close code the server sent the widget
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._seller(n)) for n in range(3)]
        self._tasks += [asyncio.create_task(self._reader()), asyncio.create_task(self._telegram())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _seller(self, n: int) -> None:
        receipt = 0
        with contextlib.suppress(aiohttp.ClientError):
            while True:
                receipt += 1
                response = await self.client.post("/api/v1/purchases", headers=self.auth, json={
                    "receipt_id": f"r-{n}-{receipt}", "customer": {"phone": PHONE}, "total": "200.00"})
                if response.status == 201:
                    self.sales += 1
                await response.release()
                await asyncio.sleep(0.1)

    async def _reader(self) -> None:
        """The visitor's widget: reads every frame (and so answers the server's close)."""
        while True:
            msg = await self.widget.ws.receive()
            if msg.type == aiohttp.WSMsgType.CLOSE:
                self.closed_with = msg.data
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            frame = msg.json()
            if frame.get("type") == "message" and "Спасибо за покупку" in frame.get("text", ""):
                self.notices.append(frame["id"])
                self._noticed.set()

    async def notified(self, count: int) -> None:
        """Until `count` sale notifications arrived (a bound fails the test instead of hanging it)."""
        try:
            async with asyncio.timeout(HANG_BOUND):
                while len(self.notices) < count:
                    self._noticed.clear()
                    await self._noticed.wait()
        except TimeoutError:
            pytest.fail("no sale notification arrived; the tasks:\n" + _dump(asyncio.all_tasks()))

    async def _telegram(self) -> None:
        boris = Person(user_id=222_333_444, first_name="Борис", last_name=None)
        while True:
            self.fake.push_update(self.token, boris.start())
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_the_busy_app_stops_promptly_and_leaves_nothing_half_sent(
        round_, core: Core, merchant_id, auth, fake, settings, caplog):
    caplog.set_level(logging.WARNING)
    token = fake.add_bot(username="coffee_club_bot")
    fake_bot = fake.bots[token]
    await bots.add_bot(core.ctx, merchant_id, "telegram", token, username=fake_bot.username,
                       platform_bot_id=str(fake_bot.id))
    server = TestServer(create_app(core))  # background tasks on, as `kartochka serve` runs it
    client = TestClient(server)
    await client.start_server()
    load: Load | None = None
    try:
        silent = await client.ws_connect("/chat/coffee/ws")  # a widget that has not said hello yet
        told = asyncio.create_task(silent.receive())
        widget = Widget(client)
        await widget.open()
        await register(widget, core, PHONE)
        load = Load(client, auth, widget, fake, token)
        load.start()
        # Busy for real: sales became notifications on the visitor's socket, replies went to Telegram.
        await load.notified(1 + round_ % 3)
        await fake.wait_for(lambda calls: [c for c in calls if c.method == "sendMessage"], HANG_BOUND)
        await asyncio.sleep(0.03 * round_)  # a different moment of the work each round
        await _stops(server.close(), "the app")  # stop listening, "going away" to sockets, cleanup
    finally:
        await client.close()
        if load is not None:
            await load.stop()
    await _nothing_left_running()
    # Both widgets were told "going away" (they reconnect to the next process), none just cut off.
    assert load is not None and load.closed_with == WSCloseCode.GOING_AWAY
    assert told.result().type == aiohttp.WSMsgType.CLOSE and told.result().data == WSCloseCode.GOING_AWAY
    # The loops stopped when asked, between database calls; none had to be cancelled.
    assert not [r.getMessage() for r in caplog.records if any(p in r.getMessage() for p in CANCEL_PATH)]
    assert load.sales > 0
    # No message was cut off mid-send: each one was sent or is queued for the next start.
    db = Database(settings.database_url)
    try:
        async with db.read() as session:
            statuses = dict((await session.execute(
                select(OutgoingMessage.status, func.count()).group_by(OutgoingMessage.status))).all())
    finally:
        await db.close()
    assert "sending" not in statuses, statuses
    assert statuses.get("sent", 0) > 0, statuses


# ---- `kartochka serve` as a process --------------------------------------------------------------

EXIT_BOUND = 30.0  # far above a normal stop; only a hang gets here


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(url: str, body: dict[str, Any], key: str) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class Till(threading.Thread):
    """A cash register selling in a loop until told to stop or the server is gone."""

    def __init__(self, base: str, key: str, n: int) -> None:
        super().__init__(daemon=True)
        self.base, self.key, self.n = base, key, n
        self.done: list[str] = []  # receipts answered 201
        self.stopping = threading.Event()

    def run(self) -> None:
        receipt = 0
        while not self.stopping.is_set():
            receipt += 1
            receipt_id = f"t{self.n}-{receipt}"
            try:
                status = _call(f"{self.base}/api/v1/purchases", {
                    "receipt_id": receipt_id, "customer": {"phone": PHONE}, "total": "150.00"}, self.key)
            except OSError:
                return
            if status == 201:
                self.done.append(receipt_id)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_serve_stops_on_a_signal_while_sales_come_in(tmp_path, database_url, signum):
    bindir = str(Path(sys.executable).parent) + "/"
    port = _free_port()
    env = {**os.environ, "KARTOCHKA_PORT": str(port), "KARTOCHKA_LOG_LEVEL": "INFO",
           "KARTOCHKA_DATABASE_URL": database_url, "KARTOCHKA_SECRET_KEY": "test-secret-key-" + "x" * 32}
    cli = [bindir + "kartochka"]
    subprocess.run([*cli, "merchant", "create", "--name", "Кофейня", "--slug", "corner"], cwd=tmp_path,
                   env=env, check=True, capture_output=True, timeout=60)
    key = subprocess.run([*cli, "apikey", "create", "--merchant", "corner"], cwd=tmp_path, env=env,
                         check=True, capture_output=True, text=True, timeout=60).stdout.split()[-1]
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen([*cli, "serve"], cwd=tmp_path, env=env, stdout=log_file,
                                  stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    tills: list[Till] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve did not come up:\n" + log_path.read_text()
                assert server.poll() is None, log_path.read_text()
                time.sleep(0.2)
        assert _call(f"{base}/api/v1/customers", {"phone": PHONE}, key) in (200, 201)
        tills = [Till(base, key, n) for n in range(4)]
        for till in tills:
            till.start()
        while sum(len(till.done) for till in tills) < 30:  # the server is busy selling
            assert server.poll() is None, log_path.read_text()
            time.sleep(0.05)

        server.send_signal(signum)
        try:
            code = server.wait(EXIT_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not stop on {signum.name}:\n" + log_path.read_text()[-4000:])
    finally:
        for till in tills:
            till.stopping.set()
        if server.poll() is None:
            server.kill()
            server.wait()
        for till in tills:
            till.join(timeout=15)
    log = log_path.read_text()
    # It stopped itself, through the app's cleanup, rather than being killed by the signal.
    assert code == 0, log[-4000:]  # a stop asked for is a clean exit
    assert "background tasks stopped" in log
    assert not [line for line in log.splitlines() if any(p in line for p in CANCEL_PATH)]
    # Every sale the tills were told about is there after the stop.
    sold = {receipt for till in tills for receipt in till.done}
    assert sold and sold <= asyncio.run(_receipts(database_url))


async def _receipts(database_url: str) -> set[str]:
    db = Database(database_url)
    try:
        async with db.read() as session:
            return set(await session.scalars(select(Purchase.receipt_id)))
    finally:
        await db.close()


# ---- a stop that meets a wake-up -----------------------------------------------------------------

@pytest.mark.parametrize("woken", ["outbox", "dispatcher", "both"])
async def test_a_stop_right_after_a_commit_still_stops(core: Core, merchant_id, woken):
    """Every commit wakes the outbox and the dispatcher; a stop arriving at that very moment must
    not be lost (before Python 3.12 `asyncio.wait_for` loses a cancel that meets its wake-up)."""
    await core.start_background()
    await asyncio.sleep(0.2)  # both loops are waiting for work
    if woken in ("outbox", "both"):
        await core.outbox.kick()
    if woken in ("dispatcher", "both"):
        await core.messengers.dispatcher.kick()
    await _stops(core.close(), "the core")
    await _nothing_left_running()
