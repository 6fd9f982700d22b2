"""Read models: what a till, a bot or the console shows of a customer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select

from core.db import fastload
from core.db.fastload import Reader
from core.db.models import Card, Customer, LedgerEntry, Merchant
from core.domain.lots import Balance
from core.domain.money import from_minor
from core.domain.program import Program, Tier
from core.services.ledger import DEBT_LATER, balance_of

EXPIRING_SHOWN = 5
_TIMEZONE = select(Merchant.timezone).where(Merchant.id == bindparam("id"))  # built once


@dataclass(frozen=True)
class TierView:
    id: str
    name: str
    accrual_percent: Decimal
    next_name: str | None
    next_remaining_minor: int | None
    counts_purchases: bool = False

    def to_json(self) -> dict[str, Any]:
        nxt: dict[str, Any] | None = None
        if self.next_name is not None and self.next_remaining_minor is not None:
            nxt = {"name": self.next_name, "remaining_spend": None,
                   "remaining_purchases": None}
            assert nxt is not None
            if self.counts_purchases:
                nxt["remaining_purchases"] = self.next_remaining_minor // 100
            else:
                nxt["remaining_spend"] = str(from_minor(self.next_remaining_minor))
        return {
            "id": self.id,
            "name": self.name,
            "accrual_percent": str(self.accrual_percent.normalize()),
            "next": nxt,
        }


def tier_view(program: Program, tier: Tier, measure_minor: int) -> TierView:
    """The tier and what is left to the next: `measure_minor` is the customer's measure in
    hundredths (money spent, or purchases × 100 when tiers count purchases)."""
    nxt = program.next_tier(tier)
    counts = program.tier_rules.basis == "purchase_count"
    if nxt is None:
        return TierView(tier.id, tier.name, tier.accrual_percent, None, None, counts)
    need = int(nxt.threshold * 100) - measure_minor
    return TierView(tier.id, tier.name, tier.accrual_percent, nxt.name, max(need, 0), counts)


async def tier_measure(session: Reader, program: Program, customer: Customer | None,
                       at: datetime) -> int:
    """The customer's measure for the program's tier basis, in hundredths."""
    if customer is None:
        return 0
    basis = program.tier_rules.basis
    if basis == "purchase_count":
        return customer.purchase_count * 100
    if basis == "single_receipt":
        return 0  # the next tier takes one receipt of its threshold
    if basis == "period_spend":
        from core.services.facts import period_start, spend_between

        zone = await fastload.fetch_rows(session, _TIMEZONE, {"id": customer.merchant_id})
        start = period_start(program, at.astimezone(ZoneInfo(zone[0][0])))
        return await spend_between(session, customer.id, start, at, inclusive=True)
    return customer.lifetime_spend_minor


async def tier_json(session: Reader, program: Program, customer: Customer | None,
                    at: datetime) -> dict[str, Any]:
    tier = program.tier(customer.tier_id) if customer else program.start_tier()
    return tier_view(program, tier, await tier_measure(session, program, customer, at)).to_json()


def balance_json(balance: Balance, debt_cp: int) -> dict[str, Any]:
    return {
        "available": str(from_minor(balance.available_cp)),
        "pending": str(from_minor(balance.pending_cp)),
        "pending_lots": [
            {"amount": str(from_minor(a)), "available_at": _iso(t)} for a, t in balance.pending
        ],
        "expiring": [
            {"amount": str(from_minor(a)), "expires_at": _iso(t)}
            for a, t in balance.expiring[:EXPIRING_SHOWN]
        ],
        "debt": str(from_minor(debt_cp)),
    }


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def iso(value: datetime | None) -> str | None:
    return None if value is None else _iso(value)


def iso_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _active_card(customer_id: Any) -> fastload.AnySelect:
    return (select(Card.number).where(Card.customer_id == customer_id, Card.status == "active")
            .order_by(Card.issued_at.desc()).limit(1))


_ACTIVE_CARD = _active_card(bindparam("customer_id"))  # built once: every card shown runs it
# What customer_json reads besides the lots, for a select of the customer to carry along:
# the active card's number and what entries after `at` added to the debt.
WITH_CUSTOMER = (_active_card(Customer.id).scalar_subquery(), DEBT_LATER)


async def active_card_number(session: Reader, customer_id: str) -> str | None:
    rows = await fastload.fetch_rows(session, _ACTIVE_CARD, {"customer_id": customer_id})
    return str(rows[0][0]) if rows else None


async def customer_json(
    session: Reader, program: Program, customer: Customer, at: datetime,
    extra: Sequence[Any] | None = None, lot_rows: Sequence[Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """The Customer of the REST API, balances computed from the lots as of `at`. `extra`: the
    WITH_CUSTOMER columns, when they were read with the customer (two round trips fewer);
    `lot_rows`: the rows of ledger.LOTS_AT, when read with it too (one more)."""
    debts = None if extra is None else (customer.debt_cp, extra[1])
    balance, debt = await balance_of(session, customer.id, at, debts, lot_rows)
    card_number = await active_card_number(session, customer.id) if extra is None else extra[0]
    return {
        "id": customer.id,
        "phone": customer.phone,
        "card_number": card_number,
        "name": customer.name,
        "birth_date": iso_date(customer.birth_date),
        "referral_code": customer.referral_code,
        "tier": await tier_json(session, program, customer, at),
        "balance": balance_json(balance, debt),
        "created_at": _iso(customer.created_at),
    }


def entry_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": entry.kind,
        "points": str(from_minor(entry.amount_cp)),
        "debt": str(from_minor(entry.debt_cp)),
        "occurred_at": _iso(entry.occurred_at),
        "available_at": iso(entry.available_at),
        "expires_at": iso(entry.expires_at),
        "remaining": None if entry.remaining_cp is None else str(from_minor(entry.remaining_cp)),
        "mechanic": entry.mechanic,
        "purchase_id": entry.purchase_id,
        "refund_id": entry.refund_id,
        "referral_level": entry.referral_level,
        "reason": entry.reason,
    }
