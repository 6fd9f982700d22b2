"""What a registered sale does to points: spend, accrue, extend lifetimes, tiers, rewards."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.db.models import Customer, Merchant, Purchase
from core.db.uow import UnitOfWork
from core.domain.engine import SaleQuote, capped_room
from core.domain.facts import SaleFacts
from core.domain.money import from_minor
from core.domain.program import Program
from core.services import bonuses
from core.services.facts import counted_spend
from core.services.jobs import add_job
from core.services.ledger import CustomerLedger, activation_time
from core.services.tiers import after_sale


async def apply_points(uow: UnitOfWork, program: Program, merchant: Merchant, customer: Customer,
                       ledger: CustomerLedger, purchase: Purchase, quote: SaleQuote,
                       facts: SaleFacts, at: datetime, now: datetime) -> dict[str, int]:
    """Write the points side of a sale; returns bonus points credited beside the accrual."""
    tier = program.tier(customer.tier_id)
    book = max(at, now)  # a sale sent late by an offline till spends points as they are now
    if quote.redeem_cp:
        payable = purchase.total_minor - purchase.promo_discount_minor
        ledger.spend("redemption", quote.redeem_cp, book, purchase_id=purchase.id,
                     cap_limits=capped_room(program, payable, facts))
        uow.emit(merchant.id, "PointsRedeemed",
                 {"customer_id": customer.id, "purchase_id": purchase.id,
                  "points": str(from_minor(quote.redeem_cp))},
                 occurred_at=at, now=now, customer_id=customer.id)
    if quote.accrual_cp:
        lot = ledger.credit("accrual", quote.accrual_cp, at,
                            available_at=activation_time(program, merchant, at),
                            lifetime_days=program.lifetime_for(tier),
                            mechanic="purchase", purchase_id=purchase.id)
        if program.activation_delay_days and lot.available_at is not None:
            await add_job(uow.session, "points.activate", f"activate:{lot.id}", lot.available_at,
                          merchant.id, {"customer_id": customer.id, "lot_id": lot.id}, now)
        uow.emit(merchant.id, "PointsAccrued",
                 {"customer_id": customer.id, "purchase_id": purchase.id,
                  "points": str(from_minor(quote.accrual_cp)),
                  "available_at": lot.available_at.isoformat() if lot.available_at else None},
                 occurred_at=at, now=now, customer_id=customer.id)
    extra: dict[str, int] = {}
    if facts.first_purchase:
        extra.update(await bonuses.welcome_on_first_purchase(uow, program, ledger, purchase, at))
    spend = purchase.spend_minor = counted_spend(program, purchase)
    customer.lifetime_spend_minor += spend
    customer.purchase_count += 1
    if customer.last_purchase_at is None or customer.last_purchase_at < at:
        customer.last_purchase_at = at
    await after_sale(uow, program, customer, spend, at, now)
    if program.lifetime_from == "last_purchase":
        # The whole balance lives N days from this purchase, N of the tier reached now.
        days = program.lifetime_for(program.tier(customer.tier_id))
        if days:
            _extend_lifetimes(program, ledger, at, days)
    ledger.refresh_figures(book)
    base = sum(line.amount_minor - line.discount_minor for line in quote.lines)
    await bonuses.referral_rewards(uow, program, customer, purchase, base, facts, at, now)
    return extra


def _extend_lifetimes(program: Program, ledger: CustomerLedger, at: datetime, days: int) -> None:
    """Every live lot expires `days` after `at`, but bonuses that have a lifetime of their own."""
    own = {name for name, bonus in (("welcome", program.bonuses.welcome),
                                    ("birthday", program.bonuses.birthday),
                                    ("review", program.bonuses.review))
           if bonus is not None and bonus.lifetime_days}
    for lot in ledger.lots.values():
        if lot.expires_at is None or lot.expires_at <= at or lot.mechanic in own:
            continue
        lot.expires_at = at + timedelta(days=days)
