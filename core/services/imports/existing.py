"""What the base already holds for the file: its customers by phone, the owners of its cards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Card, Customer, LedgerEntry
from core.services.imports.batches import chunks
from core.services.imports.results import RowError
from core.services.imports.validation import CustomerRow

OPENING_BALANCE = "opening_balance"


@dataclass(frozen=True)
class Existing:
    """What the import compares a row with: a customer already in the base."""

    id: str
    fields: dict[str, object]
    deleted: bool
    cards: frozenset[str]
    has_opening_balance: bool


@dataclass(frozen=True)
class CardOwner:
    customer_id: str | None
    status: str


async def load_existing(
    session: AsyncSession, merchant_id: str, phones: Sequence[str], *, lock: bool = False
) -> dict[str, tuple[Existing, Customer]]:
    """The customers with these phones, with their active cards and opening-balance flag."""
    found: dict[str, tuple[Existing, Customer]] = {}
    for chunk in chunks(phones):
        query = select(Customer).where(Customer.merchant_id == merchant_id, Customer.phone.in_(chunk))
        if lock:
            query = query.with_for_update()
        customers = list(await session.scalars(query))
        found.update(await _with_states(session, merchant_id, customers))
    return found


async def card_owners(
    session: AsyncSession, merchant_id: str, numbers: Sequence[str]
) -> dict[str, CardOwner]:
    """Who holds each of these card numbers that the base knows, and whether the card is active."""
    owners: dict[str, CardOwner] = {}
    for chunk in chunks(numbers):
        for number, customer_id, status in await session.execute(
            select(Card.number, Card.customer_id, Card.status).where(
                Card.merchant_id == merchant_id, Card.number.in_(chunk)
            )
        ):
            owners[number] = CardOwner(customer_id, status)
    return owners


def check_against_base(
    rows: Sequence[CustomerRow],
    states: dict[str, Existing],
    owners: dict[str, CardOwner],
    errors: list[RowError],
) -> None:
    """A deleted customer's phone, a blocked card or another customer's card is an error."""
    for row in rows:
        state = states.get(row.phone)
        if state is not None and state.deleted:
            errors.append(RowError(row.line, "phone", f"{row.phone} belongs to a deleted customer"))
        owner = owners.get(row.card) if row.card else None
        if owner is None:
            continue
        if owner.status != "active":
            errors.append(RowError(row.line, "card", f"card {row.card} is blocked"))
        elif row.phone and owner.customer_id not in (None, state.id if state else None):
            errors.append(RowError(row.line, "card", f"card {row.card} belongs to another customer"))


async def _with_states(
    session: AsyncSession, merchant_id: str, customers: Sequence[Customer]
) -> dict[str, tuple[Existing, Customer]]:
    """Each customer by phone, with what the import compares a row with."""
    if not customers:
        return {}
    ids = [c.id for c in customers]
    cards = await _active_cards(session, merchant_id, ids)
    opened = await _with_opening_balance(session, merchant_id, ids)
    found: dict[str, tuple[Existing, Customer]] = {}
    for customer in customers:
        assert customer.phone is not None
        state = Existing(
            id=customer.id,
            fields={"name": customer.name, "birth_date": customer.birth_date, "gender": customer.gender,
                    "tier_id": customer.tier_id, "tier_manual": customer.tier_manual},
            deleted=customer.deleted_at is not None,
            cards=frozenset(cards.get(customer.id, ())),
            has_opening_balance=customer.id in opened,
        )
        found[customer.phone] = (state, customer)
    return found


async def _active_cards(session: AsyncSession, merchant_id: str, ids: list[str]) -> dict[str, set[str]]:
    cards: dict[str, set[str]] = {}
    for customer_id, number in await session.execute(
        select(Card.customer_id, Card.number).where(
            Card.merchant_id == merchant_id, Card.customer_id.in_(ids), Card.status == "active"
        )
    ):
        cards.setdefault(str(customer_id), set()).add(number)
    return cards


async def _with_opening_balance(session: AsyncSession, merchant_id: str, ids: list[str]) -> set[str]:
    return set(await session.scalars(
        select(LedgerEntry.customer_id).where(
            LedgerEntry.merchant_id == merchant_id,
            LedgerEntry.customer_id.in_(ids),
            LedgerEntry.kind == OPENING_BALANCE,
        )
    ))
