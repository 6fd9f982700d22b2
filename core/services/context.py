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
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def uow(self) -> UnitOfWork:
        """A new write unit of work; after commit it wakes the outbox drain."""
        return UnitOfWork(self.db, self.after_commit)

    def now(self) -> datetime:
        return self.clock.now()
