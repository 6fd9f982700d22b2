"""Ledger writes for one customer inside one transaction.

Every movement is a LedgerEntry; credits are lots; debits name the lots they took
from (LotAllocation). The customer's running figures are refreshed from the lots
in the same transaction. Callers hold the customer's row lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, bindparam, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fastload
from core.db.fastload import Reader
from core.db.models import Customer, LedgerEntry, LotAllocation, Merchant
from core.domain.lots import Balance, Lot, balance_at, plan_spend, plan_take_back
from core.domain.program import Program
from core.ids import new_id

_LOT_KEYS = ("id", "occurred_at", "available_at", "expires_at", "amount_cp", "remaining_cp",
             "redeem_cap_milli")


def as_lot(entry: LedgerEntry) -> Lot:
    """The lot's figures, from the object's dict when all are set (5x cheaper than the ORM's
    attribute access, and a sale makes a Lot of every open lot several times)."""
    values = entry.__dict__
    try:
        lot = Lot(*[values[key] for key in _LOT_KEYS])
    except KeyError:  # not loaded, or never set on a new object: the ORM's access knows
        lot = Lot(*[getattr(entry, key) for key in _LOT_KEYS])
    assert lot.remaining_cp is not None and lot.available_at is not None
    return lot


_E, _A = LedgerEntry, LotAllocation
# Built once (every card and balance shown runs them); plain rows, no ORM objects: read only.
# What was taken from each lot after `at` (negative: given back), to add to what it holds now.
_TAKEN_LATER = (select(_A.lot_id, func.sum(_A.amount_cp).label("taken"))
                .where(_A.customer_id == bindparam("customer_id"), _A.occurred_at > bindparam("at"))
                .group_by(_A.lot_id).subquery())
# The lots live at `at`, each with what it held then: one round trip.
_LOTS_AT = (select(_E.id, _E.occurred_at, _E.available_at, _E.expires_at, _E.amount_cp,
                   cast(_E.remaining_cp + func.coalesce(_TAKEN_LATER.c.taken, 0), BigInteger)
                   .label("held"), _E.redeem_cap_milli)
            .outerjoin_from(_E, _TAKEN_LATER, _TAKEN_LATER.c.lot_id == _E.id)
            .where(_E.customer_id == bindparam("customer_id"), _E.remaining_cp.is_not(None),
                   _E.occurred_at <= bindparam("at"),
                   _E.expires_at.is_(None) | (_E.expires_at > bindparam("at"))))
# The same as a table to join a select of the customer to (a row per lot, the customer's
# columns on each, one row with no lot when there is none): customer and lots in one trip.
LOTS_AT = _LOTS_AT.subquery("lots")
# What entries after `at` added to the debt (the customer's debt now, less this, is the debt then).
DEBT_LATER = select(func.coalesce(func.sum(_E.debt_cp), 0)).where(
    _E.customer_id == bindparam("customer_id"), _E.occurred_at > bindparam("at")).scalar_subquery()
# The debt now and DEBT_LATER: one round trip for both.
_DEBTS = select(Customer.debt_cp, DEBT_LATER).where(Customer.id == bindparam("customer_id"))


async def balance_of(session: Reader, customer_id: str, at: datetime,
                     debts: tuple[int, int] | None = None,
                     lot_rows: Sequence[Sequence[Any]] | None = None) -> tuple[Balance, int]:
    """(balance, debt) of a customer as of `at`, computed from the lots. `debts`: the debt now
    and DEBT_LATER, `lot_rows`: the rows of LOTS_AT, when the caller read them already (with
    the customer, say)."""
    params = {"customer_id": customer_id, "at": at}
    if lot_rows is None:
        lot_rows = await fastload.fetch_rows(session, _LOTS_AT, params)
    lots = [Lot(*row) for row in lot_rows]
    if debts is None:
        found = await fastload.fetch_rows(session, _DEBTS, params)
        debts = (found[0][0], found[0][1]) if found else (0, 0)
    debt_now, debt_later = debts
    return balance_at(lots, at), int(debt_now or 0) - int(debt_later or 0)


_OPEN_LOTS = select(*LedgerEntry.__table__.c).where(  # built once: the sale's hot path
    LedgerEntry.customer_id == bindparam("customer_id"), LedgerEntry.remaining_cp > 0)


class CustomerLedger:
    """The lots of one customer, loaded once, changed in memory, flushed with the session."""

    def __init__(self, session: AsyncSession, customer: Customer, now: datetime) -> None:
        self.session = session
        self.customer = customer
        self.now = now
        self.lots: dict[str, LedgerEntry] = {}

    async def load(self) -> CustomerLedger:
        # Callers hold the customer's lock: the lots are read afresh (fastload refreshes any
        # already in the session), without the ORM query's overhead.
        rows = await fastload.load(self.session, LedgerEntry, _OPEN_LOTS,
                                   {"customer_id": self.customer.id})
        self.lots = {row.id: row for row in rows}
        return self

    def balance(self, at: datetime) -> Balance:
        return balance_at([as_lot(e) for e in self.lots.values()], at)

    def _entry(self, kind: str, amount_cp: int, occurred_at: datetime, **tags: object) -> LedgerEntry:
        entry = LedgerEntry(
            id=new_id("led"),
            merchant_id=self.customer.merchant_id,
            customer_id=self.customer.id,
            kind=kind,
            amount_cp=amount_cp,
            debt_cp=0,
            occurred_at=occurred_at,
            created_at=self.now,
            **tags,
        )
        self.session.add(entry)
        return entry

    def _allocate(self, entry: LedgerEntry, lot: LedgerEntry, amount_cp: int) -> None:
        assert lot.remaining_cp is not None
        lot.remaining_cp -= amount_cp
        self.session.add(
            LotAllocation(
                merchant_id=entry.merchant_id,
                customer_id=self.customer.id,
                entry=entry,
                lot=lot,
                amount_cp=amount_cp,
                occurred_at=entry.occurred_at,
            )
        )

    def credit(
        self,
        kind: str,
        amount_cp: int,
        occurred_at: datetime,
        *,
        activation_days: int = 0,
        lifetime_days: int | None = None,
        available_at: datetime | None = None,
        **tags: object,
    ) -> LedgerEntry:
        """Add a lot; a debt is paid from it first. Lifetime counts from the accrual."""
        available_at = available_at or occurred_at + timedelta(days=activation_days)
        expires_at = occurred_at + timedelta(days=lifetime_days) if lifetime_days else None
        tags.setdefault("redeem_cap_milli", None)  # set, so as_lot reads it straight
        lot = self._entry(
            kind,
            amount_cp,
            occurred_at,
            available_at=available_at,
            expires_at=expires_at,
            remaining_cp=amount_cp,
            **tags,
        )
        self.lots[lot.id] = lot
        debt = self.customer.debt_cp
        if debt > 0 and amount_cp > 0:
            settle = min(debt, amount_cp)
            entry = self._entry("debt_settlement", -settle, occurred_at, purchase_id=lot.purchase_id)
            entry.debt_cp = -settle
            self.customer.debt_cp -= settle
            self._allocate(entry, lot, settle)
        return lot

    def spend(self, kind: str, amount_cp: int, occurred_at: datetime,
              cap_limits: dict[int, int] | None = None, **tags: object) -> LedgerEntry:
        """Take points from the lots that expire first; InsufficientPoints if short.

        Lots with a cap of their own give at most `cap_limits[cap]` together (none if absent).
        """
        plan = plan_spend([as_lot(e) for e in self.lots.values()], occurred_at, amount_cp,
                          cap_limits)
        entry = self._entry(kind, -amount_cp, occurred_at, **tags)
        for lot_id, take in plan:
            self._allocate(entry, self.lots[lot_id], take)
        return entry

    def take_back(
        self,
        kind: str,
        amount_cp: int,
        occurred_at: datetime,
        first_lot: str | None = None,
        **tags: object,
    ) -> LedgerEntry:
        """Take up to `amount_cp` back; what the balance cannot cover becomes a debt."""
        plan, short = plan_take_back(
            [as_lot(e) for e in self.lots.values()], occurred_at, amount_cp, first_lot
        )
        entry = self._entry(kind, -(amount_cp - short), occurred_at, **tags)
        for lot_id, take in plan:
            self._allocate(entry, self.lots[lot_id], take)
        if short:
            entry.debt_cp = short
            self.customer.debt_cp += short
        return entry

    async def give_back(self, kind: str, spent_entry_ids: list[str], amount_cp: int,
                        occurred_at: datetime, lifetime_days: int | None = None,
                        **tags: Any) -> int:
        """Return points to the lots they were taken from, latest taken first; returns the total.

        Points whose lot has expired since are issued again as a new lot living
        `lifetime_days`: a customer who returns goods gets usable points back.
        """
        if amount_cp <= 0:
            return 0
        allocations = list(await self.session.scalars(
            select(LotAllocation).where(LotAllocation.entry_id.in_(spent_entry_ids))
            .order_by(LotAllocation.id.desc())))
        net: dict[str, int] = {}
        for alloc in allocations:
            net[alloc.lot_id] = net.get(alloc.lot_id, 0) + alloc.amount_cp
        entry = self._entry(kind, 0, occurred_at, **tags)
        left, reissue = amount_cp, 0
        for lot_id in dict.fromkeys(a.lot_id for a in allocations):
            give = min(net[lot_id], left)
            if give <= 0:
                continue
            lot = self.lots.get(lot_id) or await self.session.get(LedgerEntry, lot_id)
            assert lot is not None
            left -= give
            if lot.expires_at is not None and lot.expires_at <= occurred_at:
                reissue += give
                continue
            self.lots[lot_id] = lot
            self._allocate(entry, lot, -give)
            entry.amount_cp += give
        if not entry.amount_cp:
            self.session.expunge(entry)
        if reissue:
            self.credit(kind, reissue, occurred_at, lifetime_days=lifetime_days, **tags)
        elif entry.amount_cp:
            self._settle_debt(occurred_at, purchase_id=tags.get("purchase_id"))
        return entry.amount_cp + reissue

    def _settle_debt(self, at: datetime, **tags: Any) -> None:
        """Points coming back pay an outstanding debt first, as new accruals do."""
        if self.customer.debt_cp <= 0:
            return
        plan, short = plan_take_back([as_lot(e) for e in self.lots.values()], at,
                                     self.customer.debt_cp)
        paid = self.customer.debt_cp - short
        if paid <= 0:
            return
        entry = self._entry("debt_settlement", -paid, at, **tags)
        entry.debt_cp = -paid
        self.customer.debt_cp -= paid
        for lot_id, take in plan:
            self._allocate(entry, self.lots[lot_id], take)

    def refresh_figures(self, at: datetime) -> None:
        """Recompute the customer's cached balance figures from the lots."""
        balance = self.balance(at)
        self.customer.available_cp = balance.available_cp
        self.customer.pending_cp = balance.pending_cp


def activation_time(program: Program, merchant: Merchant, at: datetime,
                    days: int | None = None) -> datetime:
    """When points credited at `at` become spendable: after the delay (the program's, or
    `days` for a bonus with its own), or at a local midnight with activation_at_day_start."""
    delay = program.activation_delay_days if days is None else days
    if not program.activation_at_day_start or delay == 0:
        return at + timedelta(days=delay)
    local = at.astimezone(ZoneInfo(merchant.timezone))
    day = local.date() + timedelta(days=delay)
    return datetime.combine(day, time(0), tzinfo=local.tzinfo).astimezone(UTC)


def lifetime_days(program: Program, tier_id: str) -> int | None:
    return program.lifetime_for(program.tier(tier_id))
