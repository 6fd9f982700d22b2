"""Points lots: what is available, pending and expiring at a given time, and what to spend first.

A lot is one credit (an accrual, a bonus, an adjustment) with an activation time,
an expiry time and a remaining amount. Redemption consumes the lots that expire
first. An expired lot is never spendable, whether or not the expiry job has run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from core.errors import InsufficientPoints


@dataclass(frozen=True)
class Lot:
    id: str
    occurred_at: datetime
    available_at: datetime
    expires_at: datetime | None
    amount_cp: int
    remaining_cp: int
    cap_milli: int | None = None  # may pay only this share of a receipt (welcome bonus)

    def live_at(self, at: datetime) -> bool:
        return self.occurred_at <= at and (self.expires_at is None or at < self.expires_at)

    def spendable_at(self, at: datetime) -> bool:
        return self.live_at(at) and self.available_at <= at


@dataclass
class Balance:
    available_cp: int = 0
    pending_cp: int = 0
    pending: list[tuple[int, datetime]] = field(default_factory=list)
    expiring: list[tuple[int, datetime]] = field(default_factory=list)


def balance_at(lots: Iterable[Lot], at: datetime) -> Balance:
    """Available, pending (with activation times) and expiring (with expiry times) at `at`.

    A lot's `remaining_cp` is what it held at `at` (for a past time, the reader added back
    what was taken after it: core/services/ledger.py).
    """
    balance = Balance()
    pending: dict[datetime, int] = defaultdict(int)
    expiring: dict[datetime, int] = defaultdict(int)
    for lot in lots:
        amount = lot.remaining_cp
        if amount <= 0 or not lot.live_at(at):
            continue
        if lot.available_at <= at:
            balance.available_cp += amount
            if lot.expires_at is not None:
                expiring[lot.expires_at] += amount
        else:
            balance.pending_cp += amount
            pending[lot.available_at] += amount
    balance.pending = sorted(((a, t) for t, a in pending.items()), key=lambda x: x[1])
    balance.expiring = sorted(((a, t) for t, a in expiring.items()), key=lambda x: x[1])
    return balance


def spending_order(lots: Iterable[Lot], at: datetime) -> list[Lot]:
    """Spendable lots, the ones that expire first at the front (never-expiring last)."""
    live = [lot for lot in lots if lot.remaining_cp > 0 and lot.spendable_at(at)]
    return sorted(live, key=lambda lot: (lot.expires_at is None, lot.expires_at or at, lot.id))


def plan_spend(lots: Iterable[Lot], at: datetime, amount_cp: int,
               cap_limits: dict[int, int] | None = None) -> list[tuple[str, int]]:
    """Which lots pay `amount_cp`, first-expiring first; InsufficientPoints if they cannot.

    `cap_limits` says how much lots with a cap of their own may give in total, per cap.
    """
    plan: list[tuple[str, int]] = []
    need = amount_cp
    room = dict(cap_limits or {})
    for lot in spending_order(lots, at):
        if need <= 0:
            break
        take = min(lot.remaining_cp, need)
        if lot.cap_milli is not None:
            take = min(take, room.get(lot.cap_milli, 0))
            room[lot.cap_milli] = room.get(lot.cap_milli, 0) - take
        if take <= 0:
            continue
        plan.append((lot.id, take))
        need -= take
    if need > 0:
        raise InsufficientPoints("not enough points on the balance")
    return plan


def plan_take_back(
    lots: Iterable[Lot], at: datetime, amount_cp: int, first: str | None = None
) -> tuple[list[tuple[str, int]], int]:
    """Take up to `amount_cp` back (lot `first` before the rest); returns (plan, shortfall).

    The shortfall is what the balance cannot cover: it becomes a debt, never a
    negative balance. Pending lots count: a refund takes back points not yet active.
    """
    candidates = [lot for lot in lots if lot.remaining_cp > 0 and lot.live_at(at)]
    candidates.sort(
        key=lambda lot: (lot.id != first, lot.expires_at is None, lot.expires_at or at, lot.id)
    )
    plan: list[tuple[str, int]] = []
    need = amount_cp
    for lot in candidates:
        if need <= 0:
            break
        take = min(lot.remaining_cp, need)
        plan.append((lot.id, take))
        need -= take
    return plan, need
