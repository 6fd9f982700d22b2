"""Tier re-evaluation after a sale, a refund, or on the schedule."""

from __future__ import annotations

from datetime import datetime

from core.db.models import Customer
from core.db.uow import UnitOfWork
from core.domain.program import Program


def reevaluate_tier(
    uow: UnitOfWork, program: Program, customer: Customer, at: datetime, now: datetime
) -> bool:
    """Move the customer to the tier their spend reaches; a manual tier is left alone."""
    if customer.tier_manual:
        return False
    new = program.tier_for_spend(customer.lifetime_spend_minor)
    if new.id == customer.tier_id:
        return False
    old = customer.tier_id
    customer.tier_id = new.id
    uow.emit(
        customer.merchant_id,
        "TierChanged",
        {"customer_id": customer.id, "from": old, "to": new.id},
        occurred_at=at,
        now=now,
        customer_id=customer.id,
    )
    return True
