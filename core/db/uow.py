"""Unit of work: one write transaction, its outbox events, and what runs after commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.db.engine import Database
from core.db.models import OutboxEvent
from core.db.pending import sorted_tables as _tables
from core.db.pending import write_pending

AfterCommit = Callable[[], Awaitable[None]]
EVENTS = "events"  # the transaction emitted outbox events
OUTGOING = "outgoing"  # the transaction queued outgoing messages


class UnitOfWork:
    """`async with UnitOfWork(db) as uow: ...; await uow.commit()` — rollback unless committed."""

    def __init__(self, db: Database, after_commit: dict[str, list[AfterCommit]] | None = None) -> None:
        self.db = db
        self.session: AsyncSession = db.write_session()
        self._after_commit = after_commit or {}
        self._touched: set[str] = set()
        self._events: list[dict[str, Any]] = []
        self._rows: dict[Table, list[dict[str, Any]]] = {}
        self._locked = False
        self.committed = False

    async def __aenter__(self) -> UnitOfWork:
        if self.db.write_lock is not None:
            await self.db.write_lock.acquire()
            self._locked = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self.committed:
                await self.session.rollback()
        finally:
            await self.session.close()
            if self._locked and self.db.write_lock is not None:
                self._locked = False
                self.db.write_lock.release()
        if self.committed and exc is None:
            for topic in sorted(self._touched):
                for hook in self._after_commit.get(topic, ()):
                    await hook()

    def touch(self, topic: str) -> None:
        """This transaction wrote something of `topic`: its hooks run after the commit.

        Only what a commit wrote wakes anyone: a commit that queued nothing does not send
        the dispatcher looking (every needless wake-up is a query).
        """
        self._touched.add(topic)

    def emit(
        self,
        merchant_id: str,
        type_: str,
        payload: dict[str, Any],
        *,
        occurred_at: datetime,
        now: datetime,
        customer_id: str | None = None,
    ) -> None:
        """Record an event in this transaction: it exists only if the transaction commits."""
        self._touched.add(EVENTS)
        self._events.append({
            "merchant_id": merchant_id, "customer_id": customer_id, "type": type_,
            "payload": payload, "occurred_at": occurred_at, "created_at": now,
        })

    def insert_rows(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Rows to insert at commit, as they are: no ORM object is made for what this
        transaction only writes (a sale's lines, say). Every column the table needs is given."""
        if rows:
            self._rows.setdefault(table, []).extend(rows)

    async def commit(self, *, plain: bool = False) -> None:
        """Write the collected events in one statement, then commit everything together.

        `plain=True`: new and changed rows are written by plain INSERT/UPDATE statements instead
        of the ORM's flush (much less CPU; see core/db/pending.py); the hot sale path uses it.
        """
        if plain:
            await write_pending(self.session, {**self._rows, table_of(OutboxEvent): self._events})
        else:
            await self.session.flush()
            for table in (t for t in _tables() if t in self._rows):
                await self.session.execute(insert(table), self._rows[table])
            if self._events:
                await self.session.execute(insert(OutboxEvent), self._events)
        self._rows.clear()
        self._events.clear()
        await self.session.commit()
        self.committed = True
