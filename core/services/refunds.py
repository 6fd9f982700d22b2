"""Refunds: full or partial, by amount or by line; idempotent by the integrator's refund_id.

The accrual is taken back in proportion (the buyer's and every referral reward
tagged with the purchase), the redeemed points go back, and the tier is
re-evaluated under the program version the sale was made with. What the balance
cannot cover becomes a debt. Locks: the customer, then the purchase row.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.db.models import Customer, Purchase, PurchaseLine, Refund
from core.domain.engine import discount_for, step_cp
from core.domain.money import from_minor
from core.domain.refunds import LineRequest, LineState, cumulative_delta, plan_refund
from core.errors import PurchaseNotFound, RefundConflict, ValidationFailed
from core.ids import new_id
from core.services.context import CoreContext
from core.services.programs import program_version
from core.services.purchases import SaleAnswer
from core.services.refund_points import buyer_points, fixed_take_back, referral_points
from core.services.sales_input import RefundInput

FUTURE_SLACK = timedelta(minutes=5)


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
            # Rounded as the sale rounded price × quantity: half up, to the kopeck.
            amount = int((Decimal(price) * Decimal(item.quantity)).to_integral_value(ROUND_HALF_UP))
        result.append(LineRequest(item.line_id, None, amount))
    return result


async def _locked_purchase(ctx: CoreContext, uow: Any, merchant_id: str, receipt_id: str
                           ) -> tuple[Purchase, Customer | None]:
    """The purchase row locked, its customer locked first (the order sales use too)."""
    session = uow.session
    query = select(Purchase).where(Purchase.merchant_id == merchant_id,
                                   Purchase.receipt_id == receipt_id)
    found = await session.scalar(query)
    if found is None:
        raise PurchaseNotFound("no purchase with this receipt_id")
    customer = None
    if found.customer_id:
        customer = await session.scalar(
            select(Customer).where(Customer.id == found.customer_id).with_for_update())
    purchase = await session.scalar(
        query.with_for_update().execution_options(populate_existing=True))
    assert purchase is not None
    return purchase, customer


async def _refund_once(
    ctx: CoreContext, merchant_id: str, receipt_id: str, req: RefundInput, digest: str
) -> SaleAnswer:
    now = ctx.now()
    at = req.occurred_at or now
    if at > now + FUTURE_SLACK:
        raise ValidationFailed("occurred_at is in the future", field="occurred_at")
    async with ctx.uow() as uow:
        session = uow.session
        purchase, customer = await _locked_purchase(ctx, uow, merchant_id, receipt_id)
        previous = await session.scalar(
            select(Refund).where(Refund.merchant_id == merchant_id,
                                 Refund.refund_key == req.refund_key))
        if previous is not None:
            if previous.request_digest != digest or previous.purchase_id != purchase.id:
                raise RefundConflict("this refund_id was used with another body")
            return SaleAnswer(False, previous.response)
        if at < purchase.occurred_at:
            raise ValidationFailed("a refund cannot be earlier than its sale", field="occurred_at")
        lines = list(await session.scalars(
            select(PurchaseLine).where(PurchaseLine.purchase_id == purchase.id)
            .order_by(PurchaseLine.position).execution_options(populate_existing=True)))
        program = await program_version(session, merchant_id, purchase.program_version)
        step = step_cp(program)
        states = [LineState(x.line_id, x.amount_minor, x.refunded_minor, x.price_minor)
                  for x in lines]
        plan = plan_refund(states, req.amount_minor, _line_requests(req, lines) or None)
        refund = Refund(id=new_id("ref"), merchant_id=merchant_id, purchase_id=purchase.id,
                        refund_key=req.refund_key, amount_minor=sum(plan.values()),
                        occurred_at=at, created_at=now, request_digest=digest, response={})
        session.add(refund)
        await session.flush()
        returned = taken = spent = 0
        gross = program.tier_rules.spend == "gross"
        for line in lines:
            part = plan.get(line.line_id, 0)
            if part:
                before, after = line.refunded_minor, line.refunded_minor + part
                # The line's share of the spend: its money part (plus points when gross).
                line_spend = line.amount_minor - line.discount_minor + (
                    discount_for(program, line.redeemed_cp) if gross else 0)
                spent += cumulative_delta(line_spend, before, after, line.amount_minor)
                returned += cumulative_delta(line.redeemed_cp, before, after, line.amount_minor,
                                             step)
                taken += cumulative_delta(line.accrued_cp, before, after, line.amount_minor, step)
                line.refunded_minor = after
        total_before = purchase.refunded_minor
        purchase.refunded_minor += refund.amount_minor
        spent = min(spent, purchase.spend_minor - purchase.refunded_spend_minor)
        purchase.refunded_spend_minor += spent
        taken += await fixed_take_back(session, program, purchase, lines, customer)
        body: dict[str, Any] = {
            "refund_id": req.refund_key, "purchase_id": purchase.id,
            "amount": str(from_minor(refund.amount_minor)), "points_returned": "0.00",
            "points_taken_back": "0.00", "debt": "0.00", "balance": None,
        }
        if customer is not None:
            body.update(await buyer_points(uow, customer, purchase, refund, returned, taken,
                                           spent, max(at, now), now))
        await referral_points(uow, purchase, refund, total_before, max(at, now), now)
        refund.response = body
        uow.emit(merchant_id, "PurchaseRefunded",
                 {"purchase_id": purchase.id, "refund_id": refund.id, "amount": body["amount"],
                  "customer_id": purchase.customer_id,
                  "points_returned": body["points_returned"],
                  "points_taken_back": body["points_taken_back"]},
                 occurred_at=at, now=now, customer_id=purchase.customer_id)
        await uow.commit()
    return SaleAnswer(True, body)
