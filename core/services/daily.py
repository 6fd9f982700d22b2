"""The daily sweep's extra work: birthday bonuses and expiring-soon reminders."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import extract, select

from core.db.models import Customer, LedgerEntry, Merchant
from core.domain.money import from_minor
from core.services import bonuses
from core.services.context import CoreContext
from core.services.programs import current_program


def celebrated_days(target: date) -> list[tuple[int, int]]:
    """(month, day) of dates celebrated on `target`; 29 February counts on the 28th."""
    days = [(target.month, target.day)]
    leap = target.year % 4 == 0 and (target.year % 100 != 0 or target.year % 400 == 0)
    if (target.month, target.day) == (2, 28) and not leap:
        days.append((2, 29))
    return days


async def birthday_bonuses(ctx: CoreContext, merchant: Merchant, at: datetime) -> int:
    """Credit the birthday bonus `days_before` the birthday, once a year per customer."""
    async with ctx.db.read() as session:
        program = await current_program(session, merchant)
        rule = program.bonuses.birthday
        if rule is None:
            return 0
        target = at.astimezone(ZoneInfo(merchant.timezone)).date() + timedelta(
            days=rule.days_before)
        ids: list[str] = []
        for month, day in celebrated_days(target):
            ids += list(await session.scalars(select(Customer.id).where(
                Customer.merchant_id == merchant.id, Customer.deleted_at.is_(None),
                extract("month", Customer.birth_date) == month,
                extract("day", Customer.birth_date) == day)))
    credited = 0
    for customer_id in ids:
        credited += await bonuses.credit_once(
            ctx, program, customer_id, "birthday", rule, at,
            lambda c: f"birthday:{c.id}:{target.year}")
    return credited


async def reactivation_bonuses(ctx: CoreContext, merchant: Merchant, at: datetime) -> int:
    """A bonus to customers whose last purchase was `after_days` local days ago, once per pause."""
    async with ctx.db.read() as session:
        program = await current_program(session, merchant)
        if not program.bonuses.reactivation:
            return 0
        tz = ZoneInfo(merchant.timezone)
        today = at.astimezone(tz).date()
        due: list[tuple[str, Any]] = []
        for rule in program.bonuses.reactivation:
            day = today - timedelta(days=rule.after_days)
            start = datetime.combine(day, time(0), tzinfo=tz)
            ids = await session.scalars(select(Customer.id).where(
                Customer.merchant_id == merchant.id, Customer.deleted_at.is_(None),
                Customer.last_purchase_at >= start,
                Customer.last_purchase_at < start + timedelta(days=1)))
            due += [(customer_id, rule) for customer_id in ids]
    credited = 0
    for customer_id, rule in due:
        after = rule.after_days
        credited += await bonuses.credit_once(
            ctx, program, customer_id, "reactivation", rule, at,
            lambda c, after=after: (f"reactivation:{c.id}:{after}:"  # type: ignore[misc]
                                    f"{c.last_purchase_at.date().isoformat() if c.last_purchase_at else ''}"))
    return credited


async def expiry_reminders(ctx: CoreContext, merchant: Merchant, at: datetime) -> int:
    """One "expiring soon" event per customer for lots expiring within the lead time."""
    async with ctx.db.read() as session:
        program = await current_program(session, merchant)
    if not program.expiry_reminder_days:
        return 0
    horizon = at + timedelta(days=program.expiry_reminder_days)
    async with ctx.uow() as uow:
        lots = list(await uow.session.scalars(select(LedgerEntry).where(
            LedgerEntry.merchant_id == merchant.id, LedgerEntry.remaining_cp > 0,
            LedgerEntry.expires_at > at, LedgerEntry.expires_at <= horizon,
            LedgerEntry.reminded_at.is_(None))))
        per_customer: dict[str, list[LedgerEntry]] = defaultdict(list)
        for lot in lots:
            per_customer[lot.customer_id].append(lot)
            lot.reminded_at = at
        for customer_id, found in per_customer.items():
            first = min(lot.expires_at for lot in found if lot.expires_at is not None)
            uow.emit(merchant.id, "PointsExpiringSoon",
                     {"customer_id": customer_id,
                      "points": str(from_minor(sum(lot.remaining_cp or 0 for lot in found))),
                      "expires_at": first.isoformat()},
                     occurred_at=at, now=ctx.now(), customer_id=customer_id)
        await uow.commit()
    return len(per_customer)
