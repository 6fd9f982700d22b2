"""The daily sweep's extra work: birthday bonuses and expiring-soon reminders."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import extract, select
from sqlalchemy.exc import IntegrityError

from core.db.models import Customer, LedgerEntry, Merchant
from core.domain.money import from_minor
from core.services import bonuses
from core.services.context import CoreContext
from core.services.ledger import CustomerLedger
from core.services.programs import current_program


def _birthday_days(target: date) -> list[tuple[int, int]]:
    """(month, day) of births celebrated on `target`; 29 February counts on the 28th."""
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
        for month, day in _birthday_days(target):
            ids += list(await session.scalars(select(Customer.id).where(
                Customer.merchant_id == merchant.id, Customer.deleted_at.is_(None),
                extract("month", Customer.birth_date) == month,
                extract("day", Customer.birth_date) == day)))
    credited = 0
    for customer_id in ids:
        try:
            async with ctx.uow() as uow:
                customer = await uow.session.scalar(
                    select(Customer).where(Customer.id == customer_id).with_for_update())
                assert customer is not None
                ledger = await CustomerLedger(uow.session, customer, ctx.now()).load()
                lot = await bonuses.credit_bonus(uow, program, ledger, "birthday", rule, at,
                                           idempotency_key=f"birthday:{customer_id}:{target.year}")
                ledger.refresh_figures(max(at, ctx.now()))
                await uow.commit()
                credited += 1 if lot else 0
        except IntegrityError:
            continue  # already given this year: the key says so
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
        try:
            async with ctx.uow() as uow:
                customer = await uow.session.scalar(
                    select(Customer).where(Customer.id == customer_id).with_for_update())
                assert customer is not None and customer.last_purchase_at is not None
                key = (f"reactivation:{customer_id}:{rule.after_days}:"
                       f"{customer.last_purchase_at.date().isoformat()}")
                ledger = await CustomerLedger(uow.session, customer, ctx.now()).load()
                lot = await bonuses.credit_bonus(uow, program, ledger, "reactivation", rule, at,
                                                 idempotency_key=key)
                ledger.refresh_figures(max(at, ctx.now()))
                await uow.commit()
                credited += 1 if lot else 0
        except IntegrityError:
            continue
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
