"""The web chat's sender: pushes saved rows to the visitor's open sockets in this process.

The saved rows are the thread: a visitor with no socket open still counts as sent,
and gets the rows replayed when they come back (see channel.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from typing import Any

from aiohttp import WSCloseCode, web

from bots.web.frames import message_frame
from core.ports import OutgoingEnvelope, SendResult

log = logging.getLogger("kartochka.web")
PUSH_TIMEOUT = 10.0  # a socket that cannot take a frame in this time is dropped
REMEMBERED_REFS = 10_000


class Connection:
    """One open widget socket of one visitor; frames go out one at a time."""

    def __init__(self, ws: web.WebSocketResponse, bot_id: str, chat_id: str) -> None:
        self.ws = ws
        self.bot_id = bot_id
        self.chat_id = chat_id
        self.seen: set[str] = set()  # message ids already on this socket (replay and push may meet)
        self.ended = False  # signed out: nothing more goes out on this socket
        self._lock = asyncio.Lock()

    async def push(self, frame: dict[str, Any]) -> bool:
        """Send one frame; False when the socket is gone or its visitor signed out."""
        if self.ended:
            return False
        return await self._send(frame)

    async def end(self, frame: dict[str, Any]) -> None:
        """The last frame on this socket: whatever is pushed after it is refused."""
        self.ended = True
        await self._send(frame)

    async def _send(self, frame: dict[str, Any]) -> bool:
        if self.ws.closed:
            return False
        try:
            async with self._lock, asyncio.timeout(PUSH_TIMEOUT):
                await self.ws.send_json(frame)
        except (ConnectionError, RuntimeError, TimeoutError):
            return False
        return True

    async def push_message(self, row_id: str, body: dict[str, Any]) -> bool:
        if row_id in self.seen:
            return True
        self.seen.add(row_id)
        return await self.push(message_frame(row_id, body))


class WebSender:
    """The ChannelSender of every web chat bot: one per process, registered for each bot id."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], set[Connection]] = {}
        self._refs: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._ended: OrderedDict[tuple[str, str], None] = OrderedDict()  # visitors signed out here

    def attach(self, conn: Connection) -> None:
        self._open.setdefault((conn.bot_id, conn.chat_id), set()).add(conn)

    def detach(self, conn: Connection) -> None:
        key = (conn.bot_id, conn.chat_id)
        conns = self._open.get(key)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._open[key]

    def connections(self, bot_id: str, chat_id: str) -> list[Connection]:
        return list(self._open.get((bot_id, chat_id), ()))

    async def close_all(self) -> None:
        """Say "going away" to every open socket (a shutdown): widgets reconnect and catch up."""
        for conns in list(self._open.values()):
            for conn in list(conns):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"restarting")

    def sign_out(self, bot_id: str, chat_id: str) -> list[Connection]:
        """A visitor signed out: remembered (a tab saying hello meanwhile is caught by
        `signed_out`), and their open sockets detached and returned, to be ended."""
        self._ended[(bot_id, chat_id)] = None
        if len(self._ended) > REMEMBERED_REFS:
            self._ended.popitem(last=False)
        return list(self._open.pop((bot_id, chat_id), ()))

    def signed_out(self, bot_id: str, chat_id: str) -> bool:
        return (bot_id, chat_id) in self._ended

    def first_time(self, chat_id: str, ref: str) -> bool:
        """Whether a client frame ref is new (a frame resent after a reconnect is acked, not redone)."""
        key = (chat_id, ref)
        if key in self._refs:
            return False
        self._refs[key] = None
        if len(self._refs) > REMEMBERED_REFS:
            self._refs.popitem(last=False)
        return True

    async def send(self, message: OutgoingEnvelope) -> SendResult:
        """Push to every open socket of the chat; the platform id is our row id (an edit keeps its own)."""
        for conn in self.connections(message.bot_id, message.chat_id):
            if not await conn.push_message(message.id, message.body):
                self.detach(conn)
                log.info("web chat socket dropped", extra={"bot_id": message.bot_id})
        replaces = message.body.get("replaces")
        return SendResult.sent(replaces if isinstance(replaces, str) and replaces else message.id)
