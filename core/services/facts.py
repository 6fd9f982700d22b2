"""Gathering what the engine needs about a customer at a sale's time."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fastload
from core.db.fastload import Reader
from core.db.models import Customer, Merchant, Purchase, PurchaseLine
from core.domain.facts import CappedPoints, SaleFacts
from core.domain.mechanics import MonthlyTarget, NthPurchaseFree, Selector
from core.domain.program import Program
from core.services.ledger import CustomerLedger


def month_start(local: datetime, months_back: int = 0) -> datetime:
    """The first instant of a calendar month in local time, `months_back` months before."""
    year, month = local.year, local.month - months_back
    while month <= 0:
        year, month = year - 1, month + 12
    return local.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0)


def months_before(local: datetime, months: int) -> datetime:
    """The same local day and time `months` months earlier (the month's last day if shorter)."""
    year, month = local.year, local.month - months
    while month <= 0:
        year, month = year - 1, month + 12
    for day in (local.day, 30, 29, 28):
        try:
            return local.replace(year=year, month=month, day=min(local.day, day))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def period_start(program: Program, local: datetime) -> datetime:
    """Where the tier period begins, for a measure taken at `local`."""
    months = program.tier_rules.period_months
    if program.tier_rules.window == "rolling":
        return months_before(local, months)
    return month_start(local, months)


def counted_spend(program: Program, purchase: Purchase) -> int:
    """What one purchase counts for tiers: after promotions, less points when net."""
    spend = purchase.total_minor - purchase.promo_discount_minor
    return spend - purchase.discount_minor if program.tier_rules.spend == "net" else spend


def _spend(inclusive: bool) -> fastload.AnySelect:
    until = (Purchase.occurred_at <= bindparam("end") if inclusive
             else Purchase.occurred_at < bindparam("end"))
    return (select(func.coalesce(func.sum(Purchase.spend_minor - Purchase.refunded_spend_minor), 0))
            .where(Purchase.customer_id == bindparam("customer_id"),
                   Purchase.occurred_at >= bindparam("start"), until))


_SPEND = {inclusive: _spend(inclusive) for inclusive in (False, True)}  # built once (fastload)


async def spend_between(reader: Reader, customer_id: str, start: datetime,
                        end: datetime, *, inclusive: bool = False) -> int:
    """Spend of purchases from `start` to `end` (refunds deducted)."""
    rows = await fastload.fetch_rows(reader, _SPEND[inclusive], {
        "customer_id": customer_id, "start": start, "end": end})
    return int(rows[0][0] or 0) if rows else 0


def _matches(selector: Selector) -> ColumnElement[bool]:
    clauses = []
    if selector.skus:
        clauses.append(PurchaseLine.sku.in_(selector.skus))
    if selector.categories:
        clauses.append(PurchaseLine.category.in_(selector.categories))
    return or_(*clauses) if clauses else true()


async def sale_facts(session: AsyncSession, merchant: Merchant, program: Program,
                     customer: Customer | None, ledger: CustomerLedger | None,
                     at: datetime, spend_at: datetime) -> SaleFacts:
    """Facts as of the sale's time `at`; spendable points as of `spend_at` (the booking time)."""
    local = at.astimezone(ZoneInfo(merchant.timezone))
    if customer is None or ledger is None:
        return SaleFacts(local_time=local)
    uncapped = 0
    capped: dict[int, int] = defaultdict(int)
    for lot in ledger.lots.values():
        if not lot.remaining_cp or lot.available_at is None or lot.available_at > spend_at:
            continue
        if lot.occurred_at > spend_at or (lot.expires_at is not None
                                          and lot.expires_at <= spend_at):
            continue
        if lot.redeem_cap_milli is None:
            uncapped += lot.remaining_cp
        else:
            capped[lot.redeem_cap_milli] += lot.remaining_cp
    last_month = 0
    if any(isinstance(m, MonthlyTarget) for m in program.mechanics):
        last_month = await spend_between(session, customer.id, month_start(local, 1),
                                         month_start(local))
    nth: dict[str, int] = {}
    for m in program.mechanics:
        if isinstance(m, NthPurchaseFree):
            # Units of matching goods bought before, net of refunded lines.
            rows = await session.execute(
                select(PurchaseLine.quantity, PurchaseLine.amount_minor,
                       PurchaseLine.refunded_minor)
                .join(Purchase, PurchaseLine.purchase_id == Purchase.id)
                .where(Purchase.customer_id == customer.id, Purchase.occurred_at < at,
                       _matches(m.match)))
            nth[m.id] = sum(int(Decimal(q or 1)) for q, amount, refunded in rows
                            if refunded < amount)
    return SaleFacts(
        local_time=local, has_customer=True, tier_id=customer.tier_id, available_cp=uncapped,
        capped=[CappedPoints(k, v) for k, v in sorted(capped.items())],
        birth_date=customer.birth_date, purchase_count=customer.purchase_count,
        last_purchase_at=(customer.last_purchase_at.astimezone(local.tzinfo)
                          if customer.last_purchase_at else None),
        last_month_spend_minor=last_month, nth_counts=nth,
    )
