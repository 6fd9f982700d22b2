"""The check that recomputes every customer's running figures from the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from core.db.models import Customer, LedgerEntry, Purchase
from core.services.context import CoreContext
from core.services.ledger import balance_of


@dataclass(frozen=True)
class Mismatch:
    customer_id: str
    figure: str
    cached: int
    from_ledger: int


async def check_figures(ctx: CoreContext, merchant_id: str) -> list[Mismatch]:
    """Compare cached balance, debt, spend and count with the ledger and the purchases.

    Balances are compared as of now; a job that has not yet run (activation,
    expiry) is the only honest reason for a difference, and `jobs run` clears it.
    """
    now = ctx.now()
    found: list[Mismatch] = []
    async with ctx.db.read() as session:
        customers = list(await session.scalars(
            select(Customer).where(Customer.merchant_id == merchant_id,
                                   Customer.merged_into_id.is_(None))
        ))
        spend = dict((await session.execute(
            select(Purchase.customer_id,
                   func.sum(Purchase.total_minor - Purchase.refunded_minor))
            .where(Purchase.merchant_id == merchant_id).group_by(Purchase.customer_id)
        )).all())
        debts = dict((await session.execute(
            select(LedgerEntry.customer_id, func.sum(LedgerEntry.debt_cp))
            .where(LedgerEntry.merchant_id == merchant_id).group_by(LedgerEntry.customer_id)
        )).all())
        for customer in customers:
            balance, _ = await balance_of(session, customer.id, now)
            checks = {
                "available": (customer.available_cp, balance.available_cp),
                "pending": (customer.pending_cp, balance.pending_cp),
                "debt": (customer.debt_cp, int(debts.get(customer.id) or 0)),
            }
            gross = int(spend.get(customer.id) or 0)
            if customer.lifetime_spend_minor > gross:
                checks["lifetime_spend"] = (customer.lifetime_spend_minor, gross)
            for name, (cached, true) in checks.items():
                if cached != true:
                    found.append(Mismatch(customer.id, name, cached, true))
    return found
