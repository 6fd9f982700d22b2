"""Writing the checked rows: customers created or updated, cards attached, opening balances credited."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Customer
from core.domain.program import Program
from core.errors import Conflict
from core.services.context import CoreContext
from core.services.customers import attach_card, new_customer
from core.services.imports.batches import chunks
from core.services.imports.existing import OPENING_BALANCE, Existing, load_existing
from core.services.imports.planning import Plan, count_plan, plan_row
from core.services.imports.results import ImportResult
from core.services.imports.validation import CustomerRow
from core.services.ledger import CustomerLedger, lifetime_days


async def write_rows(
    ctx: CoreContext,
    merchant_id: str,
    program: Program,
    rows: Sequence[CustomerRow],
    result: ImportResult,
    *,
    now: datetime,
    filename: str,
    actor: str | None,
) -> None:
    """Write valid rows in transactions of BATCH_ROWS; the last one records CustomersImported."""
    batches = list(chunks(rows)) or [[]]
    reason = f"opening balance, import of {filename}"[:500]
    for index, batch in enumerate(batches):
        async with ctx.uow() as uow:
            await write_batch(uow.session, merchant_id, program, batch, result,
                              now=now, reason=reason, actor=actor)
            if index == len(batches) - 1:
                uow.emit(
                    merchant_id,
                    "CustomersImported",
                    {"file": filename, "rows": result.rows, "created": result.created,
                     "updated": result.updated, "unchanged": result.unchanged,
                     "balances_credited": result.balances_credited},
                    occurred_at=now,
                    now=now,
                )
            await uow.commit()


async def write_batch(
    session: AsyncSession,
    merchant_id: str,
    program: Program,
    rows: Sequence[CustomerRow],
    result: ImportResult,
    *,
    now: datetime,
    reason: str,
    actor: str | None,
) -> None:
    """Apply the rows in the caller's transaction, holding the rows of the customers named."""
    found = await load_existing(session, merchant_id, [r.phone for r in rows], lock=True)
    work: list[tuple[CustomerRow, Customer, Plan]] = []
    for row in rows:
        customer, plan = _apply(session, merchant_id, program, row, found.get(row.phone), now)
        count_plan(result, plan)
        work.append((row, customer, plan))
    await session.flush()  # the new customers' rows exist before their cards and lots refer to them
    for row, customer, plan in work:
        if plan.card is not None or plan.create:
            await attach_card(session, merchant_id, customer.id, plan.card, now)
        if plan.credit:
            await _credit_opening_balance(session, program, customer, row,
                                          now=now, reason=reason, actor=actor)
    await session.flush()


def new_imported_customer(merchant_id: str, phone: str, program: Program, now: datetime) -> Customer:
    """A customer row as registration makes it, from the import channel; the caller adds it."""
    return new_customer(merchant_id, phone, program, now, channel="import")


def _apply(
    session: AsyncSession,
    merchant_id: str,
    program: Program,
    row: CustomerRow,
    existing: tuple[Existing, Customer] | None,
    now: datetime,
) -> tuple[Customer, Plan]:
    """The row's customer, added if new, with the row's changed values set; and the row's plan."""
    state, customer = existing or (None, None)
    if state is not None and state.deleted:
        raise Conflict(f"line {row.line}: the customer {row.phone} was deleted during the import")
    plan = plan_row(row, state)
    if customer is None:
        customer = new_imported_customer(merchant_id, row.phone, program, now)
        session.add(customer)
    for key, value in plan.changes.items():
        setattr(customer, key, value)
    return customer, plan


async def _credit_opening_balance(
    session: AsyncSession,
    program: Program,
    customer: Customer,
    row: CustomerRow,
    *,
    now: datetime,
    reason: str,
    actor: str | None,
) -> None:
    """The row's balance as one lot: until the file's expiry if given, else for the tier's lifetime."""
    assert row.balance_cp is not None
    ledger = await CustomerLedger(session, customer, now).load()
    days = None if row.balance_expires_at else lifetime_days(program, customer.tier_id)
    lot = ledger.credit(OPENING_BALANCE, row.balance_cp, now, lifetime_days=days,
                        mechanic="import", reason=reason, actor=actor)
    if row.balance_expires_at is not None:
        lot.expires_at = row.balance_expires_at
    ledger.refresh_figures(now)
