"""What every service needs: the database, the clock, the secret box, the outbox kick."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from core.db.engine import Database
from core.db.uow import UnitOfWork
from core.ports import Clock
from core.secrets_store import SecretBox


@dataclass
class CoreContext:
    db: Database
    clock: Clock
    secrets: SecretBox
    # Topic (core.db.uow.EVENTS, OUTGOING) -> what runs after a commit that wrote it.
    after_commit: dict[str, list[Callable[[], Awaitable[None]]]] = field(default_factory=dict)

    def uow(self) -> UnitOfWork:
        """A new write unit of work; after a commit that wrote events it wakes the outbox drain."""
        return UnitOfWork(self.db, self.after_commit)

    def on_commit(self, topic: str, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` after every commit that wrote something of `topic`."""
        self.after_commit.setdefault(topic, []).append(hook)

    async def committed(self, topic: str) -> None:
        """A write of `topic` made outside a unit of work (core/db/direct.py) committed: run
        its hooks, as a unit of work's commit does."""
        for hook in self.after_commit.get(topic, ()):
            await hook()

    def now(self) -> datetime:
        return self.clock.now()
