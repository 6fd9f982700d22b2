"""Group commit: many callers' small writes of one kind, in one transaction.

`await marks.add(item)` returns once the item is written (or raises what the write
raised), exactly as if the caller had written it alone. While one write is in the
database, the items that arrive wait and go together in the next: under load a
transaction carries many items, when idle each goes at once (no timer, no added wait).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(self, write: Callable[[list[T]], Awaitable[None]], *, most: int = 200) -> None:
        self.write = write
        self.most = most
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._batch: list[tuple[T, asyncio.Future[None]]] = []  # being written now
        self._writer: asyncio.Task[None] | None = None

    async def add(self, item: T) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
            self._writer.add_done_callback(self._abandon)
        await asyncio.shield(done)  # a caller cancelled still has its item written

    async def drain(self) -> None:
        """Until what was added so far is written (a stop waits for this before closing)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])

    async def _write_all(self) -> None:
        while self._waiting:
            self._batch, self._waiting = self._waiting[:self.most], self._waiting[self.most:]
            try:
                await self.write([item for item, _ in self._batch])
            except Exception as exc:
                for _, done in self._batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in self._batch:
                    if not done.done():
                        done.set_result(None)
            self._batch = []

    def _abandon(self, writer: asyncio.Task[None]) -> None:
        """The writer was cut short (cancelled, even before it began): nobody waits forever."""
        if not writer.cancelled() and writer.exception() is None:
            return  # it ended with nothing left to write (later items have a writer of their own)
        stale, self._batch = self._batch, []
        if self._writer is writer:
            stale, self._waiting = [*stale, *self._waiting], []
        for _, done in stale:
            if not done.done():
                done.set_exception(RuntimeError("stopped before the write finished"))
