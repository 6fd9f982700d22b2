"""The points side of a refund: the buyer's, and every referrer's reward for the purchase."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import (
    Customer,
    LedgerEntry,
    LotAllocation,
    Merchant,
    Purchase,
    PurchaseLine,
    Refund,
)
from core.db.uow import UnitOfWork
from core.domain.boosts import fixed_points
from core.domain.engine import SaleLine, step_cp
from core.domain.facts import SaleFacts
from core.domain.mechanics import Basket, CategoryBonus, Quantity, ReceiptBrackets
from core.domain.money import from_minor
from core.domain.program import Program
from core.domain.refunds import cumulative_delta
from core.services.ledger import CustomerLedger
from core.services.programs import program_version
from core.services.tiers import reevaluate_tier
from core.services.views import balance_json

LINE_BOUND = (Basket, Quantity, CategoryBonus, ReceiptBrackets)


async def fixed_take_back(session: AsyncSession, program: Program, purchase: Purchase,
                          lines: list[PurchaseLine], customer: Customer | None) -> int:
    """Receipt-level points (a basket, a quantity deal) that no longer hold after a refund.

    Mechanics that depend on the lines are evaluated again on what is left of the
    receipt; the others (happy hours, event dates...) hold until the receipt is refunded
    in full. What was already taken back is not taken twice.
    """
    fixed: dict[str, int] = dict(purchase.breakdown.get("_fixed") or {})
    if not fixed or customer is None:
        return 0
    taken: dict[str, int] = dict(purchase.breakdown.get("_fixed_taken") or {})
    full = purchase.refunded_minor >= purchase.total_minor
    still: dict[str, Decimal] = {}
    if not full:
        left = [(x, x.amount_minor - x.refunded_minor) for x in lines]
        rest = [SaleLine(x.line_id, part, x.sku, x.category, x.price_minor,
                         Decimal(x.quantity or 1) * part / x.amount_minor if x.amount_minor else
                         Decimal(0)) for x, part in left]
        bases = [(x.amount_minor - x.discount_minor) * part // x.amount_minor
                 if x.amount_minor else 0 for x, part in left]
        merchant = await session.get(Merchant, purchase.merchant_id)
        assert merchant is not None
        facts = SaleFacts(local_time=purchase.occurred_at.astimezone(ZoneInfo(merchant.timezone)),
                          has_customer=True, birth_date=customer.birth_date)
        still = fixed_points(program, rest, bases, sum(part for _, part in left), facts)
    kinds = {m.id: m for m in program.mechanics}
    total = 0
    for name, points in fixed.items():
        if full:
            keep = 0
        elif isinstance(kinds.get(name), LINE_BOUND):
            keep = min(points, int(still.get(name, 0)))
        else:
            keep = points
        due = max(0, points - keep - taken.get(name, 0))
        if due:
            taken[name] = taken.get(name, 0) + due
            total += due
    purchase.breakdown = {**purchase.breakdown, "_fixed_taken": taken}
    return total


async def _expired_unspent(uow: UnitOfWork, lot: LedgerEntry, at: datetime) -> int:
    """Points of a lot that expired without being spent: they can no longer be taken back."""
    if lot.expires_at is None or lot.expires_at > at:
        return 0
    recorded = await uow.session.scalar(
        select(func.coalesce(func.sum(LotAllocation.amount_cp), 0))
        .join(LedgerEntry, LedgerEntry.id == LotAllocation.entry_id)
        .where(LotAllocation.lot_id == lot.id, LedgerEntry.kind == "expiry"))
    return int(recorded or 0) + (lot.remaining_cp or 0)


async def _already_taken(uow: UnitOfWork, customer_id: str, purchase_id: str) -> int:
    value = await uow.session.scalar(
        select(func.coalesce(func.sum(-LedgerEntry.amount_cp + LedgerEntry.debt_cp), 0))
        .where(LedgerEntry.customer_id == customer_id, LedgerEntry.purchase_id == purchase_id,
               LedgerEntry.kind == "refund_clawback"))
    return int(value or 0)


async def buyer_points(uow: UnitOfWork, customer: Customer, purchase: Purchase, refund: Refund,
                       returned: int, taken: int, spent: int, at: datetime,
                       now: datetime) -> dict[str, Any]:
    """Return redeemed points, take back the accrual (never what expired unspent), re-tier."""
    session = uow.session
    program = await program_version(session, purchase.merchant_id, purchase.program_version)
    ledger = await CustomerLedger(session, customer, now).load()
    tags = {"purchase_id": purchase.id, "refund_id": refund.id}
    spent_ids = list(await session.scalars(select(LedgerEntry.id).where(
        LedgerEntry.purchase_id == purchase.id, LedgerEntry.customer_id == customer.id,
        LedgerEntry.kind.in_(("redemption", "refund_return")))))
    returned_cp = await ledger.give_back("refund_return", spent_ids, returned, at,
                                  lifetime_days=program.lifetime_for(program.tier(customer.tier_id)),
                                  **tags)
    own_lot = await session.scalar(select(LedgerEntry).where(
        LedgerEntry.purchase_id == purchase.id, LedgerEntry.customer_id == customer.id,
        LedgerEntry.kind == "accrual"))
    if own_lot is not None and taken:
        allowed = own_lot.amount_cp - await _expired_unspent(uow, own_lot, at)
        taken = min(taken, max(0, allowed - await _already_taken(uow, customer.id, purchase.id)))
    debt_before = customer.debt_cp
    if taken:
        ledger.take_back("refund_clawback", taken, at,
                         first_lot=own_lot.id if own_lot else None, **tags)
        uow.emit(purchase.merchant_id, "PointsTakenBack",
                 {"customer_id": customer.id, "purchase_id": purchase.id,
                  "points": str(from_minor(taken))},
                 occurred_at=at, now=now, customer_id=customer.id)
    customer.lifetime_spend_minor = max(0, customer.lifetime_spend_minor - spent)
    if purchase.refunded_minor >= purchase.total_minor:
        customer.purchase_count = max(0, customer.purchase_count - 1)
    ledger.refresh_figures(now)
    await reevaluate_tier(uow, program, customer, at, now)
    if returned_cp:
        uow.emit(purchase.merchant_id, "PointsReturned",
                 {"customer_id": customer.id, "purchase_id": purchase.id,
                  "points": str(from_minor(returned_cp))},
                 occurred_at=at, now=now, customer_id=customer.id)
    return {
        "points_returned": str(from_minor(returned_cp)),
        "points_taken_back": str(from_minor(taken)),
        "debt": str(from_minor(customer.debt_cp - debt_before)),
        "balance": balance_json(ledger.balance(now), customer.debt_cp),
    }


async def referral_points(uow: UnitOfWork, purchase: Purchase, refund: Refund, total_before: int,
                          at: datetime, now: datetime) -> None:
    """Take back, in proportion, every reward other customers got for this purchase."""
    session = uow.session
    program = await program_version(session, purchase.merchant_id, purchase.program_version)
    step = step_cp(program)
    rewarded = [
        LedgerEntry.purchase_id == purchase.id, LedgerEntry.remaining_cp.is_not(None),
        LedgerEntry.amount_cp > 0,
        LedgerEntry.customer_id != purchase.customer_id if purchase.customer_id
        else LedgerEntry.customer_id.is_not(None),
    ]
    reward_query = select(LedgerEntry).where(*rewarded)
    friend_ids = sorted(set(await session.scalars(select(LedgerEntry.customer_id).where(*rewarded))))
    for friend_id in friend_ids:  # lock every friend, in id order, before reading their lots
        await session.scalar(select(Customer.id).where(Customer.id == friend_id).with_for_update())
    rewards = list(await session.scalars(
        reward_query.order_by(LedgerEntry.customer_id, LedgerEntry.id)
        .execution_options(populate_existing=True)))
    for reward in rewards:
        share = cumulative_delta(reward.amount_cp, total_before, purchase.refunded_minor,
                                 purchase.total_minor, step)
        if share <= 0:
            continue
        friend = await session.scalar(select(Customer).where(Customer.id == reward.customer_id)
                                      .execution_options(populate_existing=True))
        assert friend is not None
        ledger = await CustomerLedger(session, friend, now).load()
        ledger.take_back("refund_clawback", share, at, first_lot=reward.id,
                         purchase_id=purchase.id, refund_id=refund.id,
                         referral_level=reward.referral_level, mechanic=reward.mechanic)
        ledger.refresh_figures(now)
        uow.emit(purchase.merchant_id, "PointsTakenBack",
                 {"customer_id": friend.id, "purchase_id": purchase.id,
                  "points": str(from_minor(share)), "referral_level": reward.referral_level},
                 occurred_at=at, now=now, customer_id=friend.id)
