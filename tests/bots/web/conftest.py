"""The web chat through its real entry points: the app, a websocket, the outgoing dispatcher.

The app runs without its background tasks; tests drain the dispatcher themselves
(`drain_once`), or run `Pump` for a browser, so every reply goes through the real
queue and sender, and nothing is cut off in the middle of a database call at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from app.web import CORE_KEY, create_app

FRAME_WAIT = 20.0  # a bound so a broken server fails the test instead of hanging it


@pytest.fixture
async def web_client(core, merchant_id) -> AsyncIterator[TestClient]:
    app = create_app(core, background=False)
    async with TestClient(TestServer(app)) as client:
        yield client


class Pump:
    """The dispatcher's loop for a test: drain until stopped (stopped between drains, never inside one)."""

    def __init__(self, core) -> None:
        self.core = core
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Pump:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            if not await self.core.messengers.dispatcher.drain_once():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.05)


class Widget:
    """A visitor's widget speaking the websocket protocol, as widget.js does."""

    def __init__(self, client: TestClient, slug: str = "coffee") -> None:
        self.client, self.slug = client, slug
        self.core = client.app[CORE_KEY]
        self.ws: Any = None
        self.visitor: str | None = None
        self.last: str | None = None
        self.messages: list[dict[str, Any]] = []  # every message frame received, in order
        self.other: list[dict[str, Any]] = []  # toasts, errors, acks
        self._refs = 0

    async def open(self, *, after: str | None = None, lang: str = "ru-RU", start: str | None = None,
                   headers: dict[str, str] | None = None, visitor: str | None = None) -> dict[str, Any]:
        """Connect and say hello (with our token); returns the hello frame, replayed rows in `replayed`."""
        self.ws = await self.client.ws_connect(f"/chat/{self.slug}/ws", headers=headers or {})
        await self.ws.send_json({"type": "hello", "visitor": visitor or self.visitor, "after": after,
                                 "lang": lang, "start": start})
        hello = await self.next_frame()
        assert hello["type"] == "hello", hello
        self.visitor = hello["visitor"]
        self.replayed: list[dict[str, Any]] = []
        while (frame := await self.next_frame())["type"] != "synced":
            assert frame["type"] == "message", frame
            self.replayed.append(frame)
        self.synced = frame
        return hello

    async def close(self) -> None:
        await self.ws.close()

    async def next_frame(self) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.ws.receive(), FRAME_WAIT)
        assert msg.type == WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame["type"] == "message":
            self.messages.append(frame)
            self.last = frame["id"]
        elif frame["type"] not in ("hello", "synced"):
            self.other.append(frame)
        return frame

    async def drain(self) -> int:
        """The dispatcher sends what is due (to our socket, if it is for us)."""
        return await self.core.messengers.dispatcher.drain_once()

    async def send(self, frame: dict[str, Any]) -> str:
        self._refs += 1
        ref = f"r{self._refs}"
        await self.ws.send_json({**frame, "ref": ref})
        return ref

    async def until(self, ref: str) -> dict[str, Any]:
        """Frames until the ack (or error) of `ref`, then until every reply it names has arrived."""
        while True:
            frame = await self.next_frame()
            if frame.get("ref") == ref and frame["type"] in ("ack", "error"):
                break
        if frame["type"] == "ack":
            await self.drain()
            have = {m["id"] for m in self.messages}
            while not set(frame["messages"]) <= have:
                have.add((await self.next_frame()).get("id", ""))
        return frame

    async def ask(self, frame: dict[str, Any]) -> list[dict[str, Any]]:
        """Send a frame and return the message frames it caused."""
        ack = await self.until(await self.send(frame))
        assert ack["type"] == "ack", ack
        return [m for m in self.messages if m["id"] in ack["messages"]]

    async def press(self, message: dict[str, Any], action_prefix: str) -> list[dict[str, Any]]:
        """Press the button of `message` whose action starts with `action_prefix`."""
        action = button(message, action_prefix)
        return await self.ask({"type": "button", "action": action, "message": message["id"]})


def button(message: dict[str, Any], action_prefix: str) -> str:
    actions = [b["action"] for row in message.get("buttons", []) for b in row if "action" in b]
    found = [a for a in actions if a.startswith(action_prefix)]
    assert found, f"no button {action_prefix!r} in {actions}"
    return found[0]
