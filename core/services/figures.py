"""The check that recomputes every customer's running figures from the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from core.db.models import Customer, LedgerEntry, Purchase, PurchaseLine
from core.services.context import CoreContext
from core.services.ledger import balance_of


@dataclass(frozen=True)
class Mismatch:
    customer_id: str
    figure: str
    cached: int
    from_ledger: int


async def check_figures(ctx: CoreContext, merchant_id: str) -> list[Mismatch]:
    """Compare every cached figure with what the ledger and the purchases say.

    Per customer: available and pending points (from the lots, as of now), debt (the sum of
    the ledger's debt column), lifetime spend (purchases' counted spend less refunds) and
    the purchase count (purchases not refunded in full). Per purchase: its refunded amount
    against its lines'. Balances can differ only while an activation or expiry job is due;
    `kartochka jobs run` clears that.
    """
    now = ctx.now()
    found: list[Mismatch] = []
    async with ctx.db.read() as session:
        customers = list(await session.scalars(
            select(Customer).where(Customer.merchant_id == merchant_id,
                                   Customer.merged_into_id.is_(None))))
        spend = dict((await session.execute(
            select(Purchase.customer_id,
                   func.sum(Purchase.spend_minor - Purchase.refunded_spend_minor))
            .where(Purchase.merchant_id == merchant_id).group_by(Purchase.customer_id))).all())
        counts = dict((await session.execute(
            select(Purchase.customer_id, func.count())
            .where(Purchase.merchant_id == merchant_id,
                   Purchase.refunded_minor < Purchase.total_minor)
            .group_by(Purchase.customer_id))).all())
        debts = dict((await session.execute(
            select(LedgerEntry.customer_id, func.sum(LedgerEntry.debt_cp))
            .where(LedgerEntry.merchant_id == merchant_id)
            .group_by(LedgerEntry.customer_id))).all())
        for customer in customers:
            balance, _ = await balance_of(session, customer.id, now)
            checks = {
                "available": (customer.available_cp, balance.available_cp),
                "pending": (customer.pending_cp, balance.pending_cp),
                "debt": (customer.debt_cp, int(debts.get(customer.id) or 0)),
                "lifetime_spend": (customer.lifetime_spend_minor, int(spend.get(customer.id) or 0)),
                "purchase_count": (customer.purchase_count, int(counts.get(customer.id) or 0)),
            }
            found += [Mismatch(customer.id, name, cached, true)
                      for name, (cached, true) in checks.items() if cached != true]
        lines = (await session.execute(
            select(Purchase.id, Purchase.refunded_minor, func.sum(PurchaseLine.refunded_minor))
            .join(PurchaseLine, PurchaseLine.purchase_id == Purchase.id)
            .where(Purchase.merchant_id == merchant_id)
            .group_by(Purchase.id, Purchase.refunded_minor))).all()
        found += [Mismatch(purchase_id, "purchase_refunds", int(cached), int(true))
                  for purchase_id, cached, true in lines if int(cached) != int(true)]
    return found
