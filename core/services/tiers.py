"""Tiers: after a sale (upgrades), after a refund and on the monthly review (may drop)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Customer, Merchant
from core.db.uow import UnitOfWork
from core.domain.program import Program, Tier


def _move(uow: UnitOfWork, customer: Customer, new: Tier, at: datetime, now: datetime) -> bool:
    if new.id == customer.tier_id:
        return False
    old = customer.tier_id
    customer.tier_id = new.id
    uow.emit(customer.merchant_id, "TierChanged",
             {"customer_id": customer.id, "from": old, "to": new.id},
             occurred_at=at, now=now, customer_id=customer.id)
    return True


async def _period_spend(session: AsyncSession, program: Program, customer: Customer,
                        at: datetime, inclusive: bool = True) -> int:
    from core.services.facts import period_start, spend_between

    merchant = await session.get(Merchant, customer.merchant_id)
    assert merchant is not None
    start = period_start(program, at.astimezone(ZoneInfo(merchant.timezone)))
    return await spend_between(session, customer.id, start, at, inclusive=inclusive)


async def measured_tier(uow: UnitOfWork, program: Program, customer: Customer,
                        at: datetime) -> Tier | None:
    """The tier the customer's measure reaches now; None where only a single receipt counts."""
    basis = program.tier_rules.basis
    if basis == "lifetime_spend":
        return program.tier_for(Decimal(customer.lifetime_spend_minor) / 100)
    if basis == "purchase_count":
        return program.tier_for(Decimal(customer.purchase_count))
    if basis == "period_spend":
        spend = await _period_spend(uow.session, program, customer, at)
        return program.tier_for(Decimal(spend) / 100)
    return None


async def tier_before_sale(session: AsyncSession, program: Program, customer: Customer,
                           at: datetime) -> Tier:
    """The tier a sale is rated at: the customer's, or, when every sale is rated by the
    period just before it, the tier that period's spend reaches."""
    current = program.tier(customer.tier_id)
    if (program.tier_rules.changes != "before_each_sale" or customer.tier_manual
            or program.tier_rules.basis != "period_spend"):
        return current
    spend = await _period_spend(session, program, customer, at, inclusive=False)
    return program.tier_for(Decimal(spend) / 100)


def move_tier(uow: UnitOfWork, customer: Customer, new: Tier, at: datetime, now: datetime) -> bool:
    return _move(uow, customer, new, at, now)


async def after_sale(uow: UnitOfWork, program: Program, customer: Customer, receipt_spend: int,
                     at: datetime, now: datetime) -> bool:
    """A sale can only raise the tier; a manual tier, or one changed only on review, stays."""
    if customer.tier_manual or program.tier_rules.changes == "on_review":
        return False
    if program.tier_rules.changes == "before_each_sale":
        # The tier shown after the sale is the rate of the next one, up or down.
        measured = await measured_tier(uow, program, customer, at)
        return measured is not None and _move(uow, customer, measured, at, now)
    if program.tier_rules.basis == "single_receipt":
        reached: Tier | None = program.tier_for(Decimal(receipt_spend) / 100)
    else:
        reached = await measured_tier(uow, program, customer, at)
    current = program.tier(customer.tier_id)
    if reached is None or program.tiers.index(reached) <= program.tiers.index(current):
        return False
    return _move(uow, customer, reached, at, now)


async def reevaluate_tier(uow: UnitOfWork, program: Program, customer: Customer, at: datetime,
                          now: datetime, *, scheduled: bool = False) -> bool:
    """After a refund or on the schedule: the measured tier, up or down; manual tiers stay.

    A program whose tiers change only on review moves them only when `scheduled`.
    """
    if customer.tier_manual or (program.tier_rules.changes == "on_review" and not scheduled):
        return False
    reached = await measured_tier(uow, program, customer, at)
    return False if reached is None else _move(uow, customer, reached, at, now)
