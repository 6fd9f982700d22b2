"""Refunds: full or partial, by amount or by line; idempotent by the integrator's refund_id.

The accrual is taken back in proportion (the buyer's and every referral reward
tagged with the purchase), the redeemed points go back to the lots they came from,
and the tier is re-evaluated. What the balance cannot cover becomes a debt.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Customer, LedgerEntry, Merchant, Purchase, PurchaseLine, Refund
from core.db.uow import UnitOfWork
from core.domain.money import from_minor
from core.domain.refunds import LineRequest, LineState, cumulative_delta, plan_refund
from core.errors import PurchaseNotFound, RefundConflict, ValidationFailed
from core.ids import new_id
from core.services.context import CoreContext
from core.services.facts import counted_spend
from core.services.ledger import CustomerLedger
from core.services.programs import program_version
from core.services.purchases import SaleAnswer
from core.services.sales_input import RefundInput
from core.services.tiers import reevaluate_tier
from core.services.views import balance_json


async def register_refund(
    ctx: CoreContext, merchant_id: str, receipt_id: str, req: RefundInput
) -> SaleAnswer:
    digest = req.digest()
    for attempt in range(2):
        try:
            return await _refund_once(ctx, merchant_id, receipt_id, req, digest)
        except IntegrityError:
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


def _line_requests(req: RefundInput, lines: list[PurchaseLine]) -> list[LineRequest]:
    prices = {line.line_id: line.price_minor for line in lines}
    result = []
    for item in req.lines:
        amount = item.amount_minor
        if amount is None and item.quantity is not None:
            price = prices.get(item.line_id)
            if price is None:
                raise ValidationFailed(f"line {item.line_id!r} has no price: refund it by amount")
            amount = int((Decimal(price) * Decimal(item.quantity)).to_integral_value())
        result.append(LineRequest(item.line_id, None, amount))
    return result


async def _refund_once(
    ctx: CoreContext, merchant_id: str, receipt_id: str, req: RefundInput, digest: str
) -> SaleAnswer:
    now = ctx.now()
    at = req.occurred_at or now
    async with ctx.uow() as uow:
        session = uow.session
        purchase = await session.scalar(
            select(Purchase).where(
                Purchase.merchant_id == merchant_id, Purchase.receipt_id == receipt_id
            )
        )
        if purchase is None:
            raise PurchaseNotFound("no purchase with this receipt_id")
        customer = None
        if purchase.customer_id:
            customer = await session.scalar(
                select(Customer).where(Customer.id == purchase.customer_id).with_for_update()
            )
        previous = await session.scalar(
            select(Refund).where(Refund.merchant_id == merchant_id, Refund.refund_key == req.refund_key)
        )
        if previous is not None:
            if previous.request_digest != digest or previous.purchase_id != purchase.id:
                raise RefundConflict("this refund_id was used with another body")
            return SaleAnswer(False, previous.response)
        lines = list(await session.scalars(
            select(PurchaseLine).where(PurchaseLine.purchase_id == purchase.id)
            .order_by(PurchaseLine.position)
        ))
        states = [LineState(x.line_id, x.amount_minor, x.refunded_minor, x.price_minor) for x in lines]
        plan = plan_refund(states, req.amount_minor, _line_requests(req, lines) or None)
        refund = Refund(id=new_id("ref"), merchant_id=merchant_id, purchase_id=purchase.id,
                        refund_key=req.refund_key, amount_minor=sum(plan.values()),
                        occurred_at=at, created_at=now, request_digest=digest, response={})
        session.add(refund)
        await session.flush()
        returned = taken = 0
        for line in lines:
            part = plan.get(line.line_id, 0)
            if not part:
                continue
            before, after = line.refunded_minor, line.refunded_minor + part
            returned += cumulative_delta(line.redeemed_cp, before, after, line.amount_minor)
            taken += cumulative_delta(line.accrued_cp, before, after, line.amount_minor)
            line.refunded_minor = after
        total_before = purchase.refunded_minor
        purchase.refunded_minor += refund.amount_minor
        body: dict[str, Any] = {
            "refund_id": req.refund_key,
            "purchase_id": purchase.id,
            "amount": str(from_minor(refund.amount_minor)),
            "points_returned": "0.00",
            "points_taken_back": "0.00",
            "debt": "0.00",
            "balance": None,
        }
        if customer is not None:
            body.update(await _buyer_points(uow, customer, purchase, refund, returned, taken,
                                            at, now))
        await _referral_points(uow, purchase, refund, total_before, at, now)
        refund.response = body
        uow.emit(merchant_id, "PurchaseRefunded",
                 {"purchase_id": purchase.id, "refund_id": refund.id, "amount": body["amount"],
                  "customer_id": purchase.customer_id},
                 occurred_at=at, now=now, customer_id=purchase.customer_id)
        await uow.commit()
    return SaleAnswer(True, body)


async def _buyer_points(
    uow: UnitOfWork, customer: Customer, purchase: Purchase, refund: Refund,
    returned: int, taken: int, at: datetime, now: datetime,
) -> dict[str, Any]:
    session = uow.session
    merchant = await session.get(Merchant, purchase.merchant_id)
    assert merchant is not None
    program = await program_version(session, merchant.id, merchant.program_version)
    ledger = await CustomerLedger(session, customer, now).load()
    tags = {"purchase_id": purchase.id, "refund_id": refund.id}
    spent_ids = list(await session.scalars(
        select(LedgerEntry.id).where(
            LedgerEntry.purchase_id == purchase.id, LedgerEntry.customer_id == customer.id,
            LedgerEntry.kind.in_(("redemption", "refund_return")),
        )
    ))
    back = await ledger.give_back("refund_return", spent_ids, returned, at, **tags)
    own_lot = await session.scalar(
        select(LedgerEntry.id).where(
            LedgerEntry.purchase_id == purchase.id, LedgerEntry.customer_id == customer.id,
            LedgerEntry.kind == "accrual",
        )
    )
    debt_before = customer.debt_cp
    if taken:
        ledger.take_back("refund_clawback", taken, at, first_lot=own_lot, **tags)
    spent = cumulative_delta(counted_spend(program, purchase), purchase.refunded_minor
                             - refund.amount_minor, purchase.refunded_minor, purchase.total_minor)
    customer.lifetime_spend_minor = max(0, customer.lifetime_spend_minor - spent)
    if purchase.refunded_minor >= purchase.total_minor:
        customer.purchase_count = max(0, customer.purchase_count - 1)
    ledger.refresh_figures(at)
    await reevaluate_tier(uow, program, customer, at, now)
    return {
        "points_returned": str(from_minor(back.amount_cp if back else 0)),
        "points_taken_back": str(from_minor(taken)),
        "debt": str(from_minor(customer.debt_cp - debt_before)),
        "balance": balance_json(ledger.balance(at), customer.debt_cp),
    }


async def _referral_points(
    uow: UnitOfWork, purchase: Purchase, refund: Refund, total_before: int, at: datetime,
    now: datetime,
) -> None:
    """Take back, in proportion, every reward other customers got for this purchase."""
    session: AsyncSession = uow.session
    rewards = list(await session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.purchase_id == purchase.id,
            LedgerEntry.remaining_cp.is_not(None),
            LedgerEntry.amount_cp > 0,
            (LedgerEntry.customer_id != purchase.customer_id)
            if purchase.customer_id else LedgerEntry.customer_id.is_not(None),
        ).order_by(LedgerEntry.customer_id, LedgerEntry.id)
    ))
    for reward in rewards:
        share = cumulative_delta(reward.amount_cp, total_before, purchase.refunded_minor,
                                 purchase.total_minor)
        if share <= 0:
            continue
        friend = await session.scalar(
            select(Customer).where(Customer.id == reward.customer_id).with_for_update()
        )
        assert friend is not None
        ledger = await CustomerLedger(session, friend, now).load()
        ledger.take_back("refund_clawback", share, at, first_lot=reward.id,
                         purchase_id=purchase.id, refund_id=refund.id,
                         referral_level=reward.referral_level, mechanic=reward.mechanic)
        ledger.refresh_figures(at)
