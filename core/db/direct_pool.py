"""The connections behind `Database.direct()` on PostgreSQL: a small pool of our own.

asyncpg's Pool costs about 70 µs of CPU per lease, more than a short statement's own
client-side cost: a task to shield each release, a timeout around each acquire, a proxy
object, an inactivity timer re-armed at every release. "Show my card" takes six or seven
leases. Here, while a connection is free, a lease is a pop and a push.

- Connections are opened as needed, up to `size`, and then kept (no overflow that a busy
  minute opens and closes again); one the server cut while idle is dropped when next taken.
- With every connection in use, a lease waits in line (first come, first served) at most
  ACQUIRE_TIMEOUT, then fails with TimeoutError.
- A connection goes back only when it is known to be clean: the lease ended normally or with
  a database error, and no transaction is open. Anything else (a cancellation in the middle
  of a statement, a commit cut short) closes it: a new one is opened in its place.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from sqlalchemy.exc import DBAPIError

ACQUIRE_TIMEOUT = 30.0  # seconds to wait for a free connection (as SQLAlchemy's pool waits)
CLOSE_GRACE = 10.0  # seconds a closing pool waits for its connections to come back

Connect = Callable[[], Awaitable[Any]]  # opens one asyncpg connection, ready for statements


class Connections:
    """At most `size` asyncpg connections, lent one at a time (see the module's docstring)."""

    def __init__(self, connect: Connect, size: int) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one connection")
        self._connect = connect
        self.size = size
        self._idle: list[Any] = []
        self._lent: set[Any] = set()
        self._opening = 0
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._closed = False
        self._all_back: asyncio.Event | None = None

    @property
    def open_count(self) -> int:
        """Connections open or being opened."""
        return len(self._idle) + len(self._lent) + self._opening

    async def acquire(self) -> Any:
        """A connection for one lease: a free one, a new one, or the next one given back."""
        while True:
            if self._closed:
                raise RuntimeError("the database is closed")
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():  # else the server cut it while it was idle
                    self._lent.add(conn)
                    return conn
            if self.open_count < self.size:
                return await self._open()
            conn = await self._wait()
            if conn is not None:
                return conn
            # None: a connection was closed instead of coming back; there is room to open one

    async def _open(self) -> Any:
        self._opening += 1
        try:
            conn = await self._connect()
        except BaseException:
            self._opening -= 1
            self._hand_on(None)  # the next in line tries in its turn (and fails fast if down)
            raise
        self._opening -= 1
        if self._closed:
            conn.terminate()
            raise RuntimeError("the database is closed")
        self._lent.add(conn)
        return conn

    async def _wait(self) -> Any:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(ACQUIRE_TIMEOUT):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed over as we were cancelled
                if waiter.result() is not None:
                    self.release(waiter.result(), clean=True)
                else:
                    self._hand_on(None)
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            raise

    def release(self, conn: Any, *, clean: bool) -> None:
        """A lease is over; `clean`: the connection may serve the next one (see the module)."""
        self._lent.discard(conn)
        if clean and not self._closed and not conn.is_closed() and not conn.is_in_transaction():
            if not self._hand_on(conn):
                self._idle.append(conn)
        else:
            conn.terminate()
            self._hand_on(None)  # the next in line opens a connection in its place
        if self._all_back is not None and not self._lent:
            self._all_back.set()

    def _hand_on(self, conn: Any) -> bool:
        """To the first one waiting (a connection, or None: "open one"); False: none waits."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    async def close(self) -> None:
        """Refuse new leases; wait CLOSE_GRACE for those in use, then cut what is left."""
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the database is closed"))
        self._waiters.clear()
        idle, self._idle = self._idle, []
        try:
            async with asyncio.timeout(CLOSE_GRACE):
                await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)
        except TimeoutError:
            for conn in idle:
                conn.terminate()
        if self._lent:
            self._all_back = asyncio.Event()
            try:
                async with asyncio.timeout(CLOSE_GRACE):
                    await self._all_back.wait()
            except TimeoutError:
                for conn in list(self._lent):
                    conn.terminate()


def clean_end(exc: BaseException | None) -> bool:
    """Whether a lease that ended with `exc` leaves its connection fit for the next one:
    normally, or after a database error or a refused statement (the server finished with it);
    not after a cancellation or a timeout, which may have cut a statement in the middle."""
    return exc is None or isinstance(exc, DBAPIError | ValueError)


class Lease:
    """A connection for one `direct()` block, in a transaction when `atomic` (a plain class:
    a generator-based context manager costs more than the statement it wraps)."""

    __slots__ = ("pool", "atomic", "conn", "tx")

    def __init__(self, pool: Connections, atomic: bool) -> None:
        self.pool = pool
        self.atomic = atomic
        self.conn: Any = None
        self.tx: Any = None

    async def __aenter__(self) -> Any:
        self.conn = await self.pool.acquire()
        if self.atomic:
            try:  # entered as `async with` does: asyncpg then knows the transaction is managed
                self.tx = self.conn.transaction()
                await self.tx.__aenter__()
            except BaseException as exc:
                self.pool.release(self.conn, clean=clean_end(exc))
                raise
        return self.conn

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        ended = exc
        try:
            if self.tx is not None:  # commit, or roll back on an exception
                await self.tx.__aexit__(exc_type, exc, tb)
        except BaseException as failed:
            ended = failed
            raise
        finally:  # a transaction still open (a commit cut short) closes the connection
            self.pool.release(self.conn, clean=clean_end(ended))
