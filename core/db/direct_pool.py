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
  an error of the caller's or the database's, and no transaction is open. Anything else (a
  cancellation in the middle of a statement, a commit cut short) closes it, and a new one is
  opened in its place. One unused for MAX_IDLE is closed rather than lent.

(It is a connection pool, not a queue of work: ARCHITECTURE's "no home-made queue" is about
work between processes, which stays in PostgreSQL.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

ACQUIRE_TIMEOUT = 30.0  # seconds to wait for a free connection (as SQLAlchemy's pool waits)
CLOSE_GRACE = 10.0  # seconds a closing pool waits for its connections to come back
MAX_IDLE = 300.0  # seconds a connection may sit unused before it is closed (as asyncpg's Pool)

Connect = Callable[[], Awaitable[Any]]  # opens one asyncpg connection, ready for statements
_OPEN = object()  # handed to a waiter instead of a connection: "a slot is yours, open one"


class Connections:
    """At most `size` asyncpg connections, lent one at a time (see the module's docstring)."""

    def __init__(self, connect: Connect, size: int) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one connection")
        self._connect = connect
        self.size = size
        self._idle: list[tuple[Any, float]] = []  # (connection, when it came back), latest last
        self._lent: set[Any] = set()
        self._opening = 0  # slots taken by connections being opened (or promised to a waiter)
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._closed = False
        self._all_back: asyncio.Event | None = None

    @property
    def open_count(self) -> int:
        """Connections open or being opened."""
        return len(self._idle) + len(self._lent) + self._opening

    async def acquire(self) -> Any:
        """A connection for one lease: a free one, a new one, or the next one given back."""
        if self._closed:
            raise RuntimeError("the database is closed")
        now = time.monotonic()
        while self._idle:
            conn, since = self._idle.pop()
            if conn.is_closed():  # the server cut it while it was idle
                continue
            if now - since > MAX_IDLE:  # a firewall may have forgotten it: not worth the risk
                conn.terminate()
                continue
            self._lent.add(conn)
            return conn
        if self.open_count < self.size and not self._waiters:
            self._opening += 1
            return await self._open()
        got = await self._wait()
        return await self._open() if got is _OPEN else got

    async def _open(self) -> Any:
        """Open a connection in a slot already counted in `_opening`."""
        try:
            async with asyncio.timeout(ACQUIRE_TIMEOUT):
                conn = await self._connect()
        except BaseException:
            self._opening -= 1
            self._hand_on(_OPEN)  # the next in line tries in its turn (and fails fast if down)
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
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                got = waiter.result()  # handed over just as this wait ended: pass it on
                if got is _OPEN:
                    self._opening -= 1
                    self._hand_on(_OPEN)
                else:
                    self.release(got, clean=True)
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self, conn: Any, *, clean: bool) -> None:
        """A lease is over; `clean`: the connection may serve the next one (see the module)."""
        self._lent.discard(conn)
        if clean and not self._closed and not conn.is_closed() and not conn.is_in_transaction():
            if not self._hand_on(conn):
                self._idle.append((conn, time.monotonic()))
        else:
            conn.terminate()
            self._hand_on(_OPEN)  # the next in line opens a connection in its place
        if self._all_back is not None and not self._lent:
            self._all_back.set()

    def _hand_on(self, given: Any) -> bool:
        """To the first one waiting: a connection, or _OPEN (its slot is reserved for it, so
        no newcomer takes it meanwhile); False when none waits."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                if given is _OPEN:
                    self._opening += 1
                else:
                    self._lent.add(given)
                waiter.set_result(given)
                return True
        return False

    async def close(self) -> None:
        """Refuse new leases; wait CLOSE_GRACE for those in use, then cut what is left."""
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the database is closed"))
        self._waiters.clear()
        idle, self._idle = [conn for conn, _ in self._idle], []
        try:
            async with asyncio.timeout(CLOSE_GRACE):
                await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)
        except TimeoutError:
            for conn in idle:
                conn.terminate()
        if self._lent:
            if self._all_back is None:
                self._all_back = asyncio.Event()
            try:
                async with asyncio.timeout(CLOSE_GRACE):
                    await self._all_back.wait()
            except TimeoutError:
                for conn in list(self._lent):
                    conn.terminate()


def clean_end(exc: BaseException | None) -> bool:
    """Whether a lease that ended with `exc` leaves its connection fit for the next one.

    Yes when it ended normally, or with an error of the caller's own or of the database (the
    server finished the statement). No after a cancellation, a timeout or a driver's
    connection error, which may have cut a statement in the middle.
    """
    if exc is None:
        return True
    if not isinstance(exc, Exception) or isinstance(exc, TimeoutError | OSError):
        return False
    from asyncpg.exceptions import InterfaceError  # loaded already: a lease ran on asyncpg

    return not isinstance(exc, InterfaceError)


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
