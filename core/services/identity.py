"""Identity: merging two customers who are one person, and changing a customer's phone.

A merge moves every row that references the source customer to the target. The
referencing columns are discovered from the table metadata, so a table added
later that points at customers.id is moved without anyone remembering to list
it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Column, CursorResult, Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import Base
from core.db.models import Customer, Merchant
from core.errors import MerchantNotFound, PhoneTaken, ValidationFailed
from core.phones import normalise_phone
from core.services.context import CoreContext
from core.services.customers import get_customer
from core.services.ledger import CustomerLedger
from core.services.programs import current_program
from core.services.tiers import reevaluate_tier
from core.services.views import customer_json

# customers.merged_into_id records a merge: it is history, never moved.
NOT_MOVED = frozenset({(Customer.__tablename__, "merged_into_id")})


@dataclass(frozen=True)
class MergeAnswer:
    """The target as the REST API shows it, and how many rows moved, per "table.column"."""

    customer: dict[str, Any]
    moved: dict[str, int]


def customer_references() -> list[tuple[Table, Column[Any]]]:
    """Every (table, column) whose foreign key points at customers.id, in dependency order."""
    customers_id = Customer.__table__.c.id
    found: list[tuple[Table, Column[Any]]] = []
    for table in Base.metadata.sorted_tables:
        for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name):
            if fk.column is customers_id:
                found.append((table, fk.parent))
    return found


async def _merchant(session: AsyncSession, merchant_id: str) -> Merchant:
    merchant = await session.get(Merchant, merchant_id)
    if merchant is None:
        raise MerchantNotFound("no such merchant")
    return merchant


async def _move_references(
    session: AsyncSession, merchant_id: str, source: Customer, target: Customer
) -> dict[str, int]:
    """UPDATE every referencing column from source to target, within the merchant."""
    moved: dict[str, int] = {}
    for table, column in customer_references():
        if (table.name, column.name) in NOT_MOVED:
            continue
        query = update(table).where(column == source.id).values({column.name: target.id})
        if "merchant_id" in table.c:
            query = query.where(table.c.merchant_id == merchant_id)
        if table is Customer.__table__:
            # The two merged rows themselves are settled by hand: no self-referral.
            query = query.where(table.c.id.not_in([source.id, target.id]))
        result = cast(CursorResult[Any], await session.execute(query))
        moved[f"{table.name}.{column.name}"] = max(result.rowcount, 0)
    return moved


async def merge_customers(
    ctx: CoreContext, merchant_id: str, source_id: str, target_id: str
) -> MergeAnswer:
    """Merge customer `source_id` into `target_id`: rows, figures and profile; the source is gone."""
    if source_id == target_id:
        raise ValidationFailed("a customer cannot be merged into itself", field="into")
    now = ctx.now()
    async with ctx.uow() as uow:
        session = uow.session
        merchant = await _merchant(session, merchant_id)
        # Lock both rows in id order, so two merges of the same pair cannot deadlock.
        locked = {
            cid: await get_customer(session, merchant_id, cid, lock=True)
            for cid in sorted((source_id, target_id))
        }
        source, target = locked[source_id], locked[target_id]
        moved = await _move_references(session, merchant_id, source, target)

        referrer = target.referrer_id
        if referrer in (None, source.id):
            referrer = source.referrer_id
        target.referrer_id = None if referrer in (source.id, target.id) else referrer

        target.debt_cp += source.debt_cp
        target.lifetime_spend_minor += source.lifetime_spend_minor
        target.purchase_count += source.purchase_count
        if source.last_purchase_at is not None and (
            target.last_purchase_at is None or target.last_purchase_at < source.last_purchase_at
        ):
            target.last_purchase_at = source.last_purchase_at
        target.name = target.name or source.name
        target.birth_date = target.birth_date or source.birth_date
        target.gender = target.gender or source.gender

        source.merged_into_id = target.id
        source.deleted_at = now
        source.phone = None
        # Its ledger now belongs to the target: the source's figures agree with an empty one.
        source.available_cp = source.pending_cp = source.debt_cp = 0
        source.lifetime_spend_minor = source.purchase_count = 0
        source.last_purchase_at = None

        ledger = await CustomerLedger(session, target, now).load()
        ledger.refresh_figures(now)
        program = await current_program(session, merchant)
        await reevaluate_tier(uow, program, target, now, now)
        uow.emit(merchant_id, "CustomersMerged", {"from": source.id, "into": target.id},
                 occurred_at=now, now=now, customer_id=target.id)
        await session.flush()
        answer = await customer_json(session, program, target, now)
        await uow.commit()
    return MergeAnswer(answer, moved)


async def change_phone(
    ctx: CoreContext, merchant_id: str, customer_id: str, raw_phone: str
) -> dict[str, Any]:
    """Give the customer another phone; PhoneTaken when it is another customer's (merge them)."""
    now = ctx.now()
    try:
        async with ctx.uow() as uow:
            session = uow.session
            merchant = await _merchant(session, merchant_id)
            phone = normalise_phone(raw_phone, merchant.country)
            customer = await get_customer(session, merchant_id, customer_id, lock=True)
            if customer.phone != phone:
                holder = (await session.execute(
                    select(Customer.id, Customer.deleted_at).where(
                        Customer.merchant_id == merchant_id, Customer.phone == phone,
                        Customer.id != customer.id)
                )).first()
                if holder is not None:
                    if holder.deleted_at is not None:
                        raise PhoneTaken("this phone belongs to a deleted customer", field="phone")
                    raise PhoneTaken(
                        f"this phone belongs to customer {holder.id}; merge the two customers instead",
                        field="phone", customer_id=holder.id)
                customer.phone = phone
                # The number itself stays out of the event: events reach logs and webhooks.
                uow.emit(merchant_id, "CustomerPhoneChanged", {"customer_id": customer.id},
                         occurred_at=now, now=now, customer_id=customer.id)
                await session.flush()
            program = await current_program(session, merchant)
            answer = await customer_json(session, program, customer, now)
            await uow.commit()
    except IntegrityError as exc:
        # Another customer took the number between our check and the commit.
        raise PhoneTaken("this phone was just given to another customer; merge the two instead",
                         field="phone") from exc
    return answer
