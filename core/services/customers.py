"""Customers: registration at a till or in a bot, look-up, adjustments and the ledger."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fastload
from core.db.models import Card, Customer, Merchant, QrToken
from core.domain.money import from_minor
from core.domain.program import Program
from core.errors import CardBlocked, CardTaken, CustomerNotFound, ValidationFailed
from core.ids import new_card_number, new_id, random_code
from core.phones import normalise_phone
from core.services import bonuses
from core.services.context import CoreContext
from core.services.ledger import LOTS_AT, CustomerLedger
from core.services.programs import current_program, merchant_and_program
from core.services.views import WITH_CUSTOMER, customer_json, entry_json


@dataclass(frozen=True)
class CustomerRef:
    """How a till or a friend names a customer: exactly one of these."""

    phone: str | None = None
    card: str | None = None
    qr: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class RegisterCustomer:
    phone: str
    name: str | None = None
    birth_date: date | None = None
    card: str | None = None
    referrer: CustomerRef | None = None
    source: str | None = None
    channel: str = "api"


def _where(column: Any) -> tuple[Any, ...]:
    return (Customer.merchant_id == bindparam("merchant_id"), Customer.deleted_at.is_(None),
            column == bindparam("value"))


# Built once (the sale's hot path): a statement's construction costs more than its run.
BY_PHONE, BY_ID, BY_CODE = (select(Customer).where(*_where(column))
                            for column in (Customer.phone, Customer.id, Customer.referral_code))
# each select's criteria, for plain selects of the same customer (core.db.fastload)
CRITERIA = {id(BY_PHONE): _where(Customer.phone), id(BY_ID): _where(Customer.id),
            id(BY_CODE): _where(Customer.referral_code)}
_LOCKED = {id(q): q.with_for_update() for q in (BY_PHONE, BY_ID, BY_CODE)}
# The customer with what its answer reads (views.WITH_CUSTOMER), worked out once (a
# materialized CTE: not again for each lot), then its lots as of :at, a row per lot
# (ledger.LOTS_AT): a customer's answer in one round trip.
_CUSTOMER = (select(*Customer.__table__.c,
                    *(column.label(f"with_{i}") for i, column in enumerate(WITH_CUSTOMER)))
             .where(*_where(Customer.id)).cte("customer").prefix_with("MATERIALIZED"))
_CUSTOMER_VIEW = select(*_CUSTOMER.c, *LOTS_AT.c).outerjoin_from(_CUSTOMER, LOTS_AT, true())
_LOTS_FROM = len(Customer.__table__.c) + len(WITH_CUSTOMER)  # where a row's lot begins


async def find_customer(
    session: AsyncSession, merchant: Merchant, ref: CustomerRef, now: datetime, *, lock: bool = False
) -> Customer | None:
    """Resolve a reference within one merchant; a blocked card is refused, not ignored."""
    found = await customer_query(session, merchant, ref, now)
    if found is None:
        return None
    query, params = found
    result: Customer | None = await session.scalar(_LOCKED[id(query)] if lock else query, params)
    return result


async def customer_query(
    session: AsyncSession, merchant: Merchant, ref: CustomerRef, now: datetime
) -> tuple[Select[Customer], dict[str, Any]] | None:
    """The customer's select (one of BY_PHONE, BY_ID, BY_CODE) and its parameters; None: no
    such card or QR. The card or QR is looked up here; the caller may add to the select."""
    if ref.phone is not None:
        return BY_PHONE, {"merchant_id": merchant.id,
                          "value": normalise_phone(ref.phone, merchant.country)}
    if ref.card is not None or ref.qr is not None:
        number = (ref.card or ref.qr or "").strip()
        card = await session.scalar(
            select(Card).where(Card.merchant_id == merchant.id, Card.number == number)
        )
        if card is None and ref.qr is not None:
            token = await session.scalar(
                select(QrToken).where(
                    QrToken.merchant_id == merchant.id,
                    QrToken.digest == hashlib.sha256(number.encode()).hexdigest(),
                    QrToken.expires_at > now,
                )
            )
            if token is None:
                return None
            return BY_ID, {"merchant_id": merchant.id, "value": token.customer_id}
        if card is None or card.customer_id is None:
            return None
        if card.status != "active":
            raise CardBlocked("this card is blocked; ask the customer for their new card")
        return BY_ID, {"merchant_id": merchant.id, "value": card.customer_id}
    if ref.code is not None:
        return BY_CODE, {"merchant_id": merchant.id, "value": ref.code.strip().upper()}
    raise ValidationFailed("name the customer by phone, card or qr")


async def get_customer(
    session: AsyncSession, merchant_id: str, customer_id: str, *, lock: bool = False
) -> Customer:
    query = select(Customer).where(
        Customer.id == customer_id, Customer.merchant_id == merchant_id, Customer.deleted_at.is_(None)
    )
    if lock:
        query = query.with_for_update()
    customer = await session.scalar(query)
    if customer is None:
        raise CustomerNotFound("no such customer")
    return customer


async def register_customer(
    ctx: CoreContext, merchant_id: str, cmd: RegisterCustomer
) -> tuple[bool, dict[str, Any]]:
    """Register by phone; (False, existing) when the phone is already a customer."""
    for attempt in (1, 2):
        try:
            return await _register_once(ctx, merchant_id, cmd)
        except IntegrityError:
            # Two registrations of one phone raced; the second now finds the first.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _register_once(
    ctx: CoreContext, merchant_id: str, cmd: RegisterCustomer
) -> tuple[bool, dict[str, Any]]:
    now = ctx.now()
    async with ctx.uow() as uow:
        session = uow.session
        merchant = await session.get(Merchant, merchant_id)
        assert merchant is not None
        program = await current_program(session, merchant)
        phone = normalise_phone(cmd.phone, merchant.country)
        existing = await session.scalar(
            select(Customer).where(Customer.merchant_id == merchant_id, Customer.phone == phone)
        )
        if existing is not None:
            return False, await customer_json(session, program, existing, now)
        referrer = None
        if cmd.referrer is not None:
            referrer = await find_customer(session, merchant, cmd.referrer, now)
            if referrer is None:
                raise CustomerNotFound("the referrer is not a customer", field="referrer")
        customer = new_customer(
            merchant_id, phone, program, now, channel=cmd.channel, name=cmd.name,
            birth_date=cmd.birth_date, referrer_id=referrer.id if referrer else None,
            source=cmd.source,
        )
        session.add(customer)
        await session.flush()
        await attach_card(session, merchant_id, customer.id, cmd.card, now)
        await bonuses.welcome_on_registration(uow, program, customer, referrer is not None, now)
        uow.emit(
            merchant_id,
            "CustomerRegistered",
            {"customer_id": customer.id, "channel": cmd.channel, "source": cmd.source,
             "referrer_id": customer.referrer_id},
            occurred_at=now,
            now=now,
            customer_id=customer.id,
        )
        await session.flush()
        answer = await customer_json(session, program, customer, now)
        await uow.commit()
    return True, answer


def new_customer(
    merchant_id: str,
    phone: str,
    program: Program,
    now: datetime,
    *,
    channel: str,
    name: str | None = None,
    birth_date: date | None = None,
    referrer_id: str | None = None,
    source: str | None = None,
) -> Customer:
    """A new customer row in the program's first tier; the caller adds it to the session."""
    return Customer(
        id=new_id("cus"),
        merchant_id=merchant_id,
        phone=phone,
        name=(name or "").strip() or None,
        birth_date=birth_date,
        tier_id=program.start_tier().id,
        tier_manual=False,
        referrer_id=referrer_id,
        referral_code=random_code(8),
        registration_channel=channel,
        source=source,
        created_at=now,
        available_cp=0,
        pending_cp=0,
        debt_cp=0,
        lifetime_spend_minor=0,
        purchase_count=0,
    )


async def attach_card(
    session: AsyncSession, merchant_id: str, customer_id: str, number: str | None, now: datetime
) -> Card:
    """Give the customer a card: the pre-printed one named, or a new virtual number."""
    if number:
        number = number.strip()
        card = await session.scalar(
            select(Card).where(Card.merchant_id == merchant_id, Card.number == number)
        )
        if card is not None:
            if card.customer_id not in (None, customer_id) or card.status != "active":
                raise CardTaken("this card belongs to another customer or is blocked", field="card")
            card.customer_id = customer_id
            return card
        card = Card(id=new_id("crd"), merchant_id=merchant_id, customer_id=customer_id,
                    number=number, kind="physical", status="active", issued_at=now)
    else:
        card = Card(id=new_id("crd"), merchant_id=merchant_id, customer_id=customer_id,
                    number=new_card_number(), kind="virtual", status="active", issued_at=now)
    session.add(card)
    return card


async def reissue_card(ctx: CoreContext, merchant_id: str, customer_id: str) -> str:
    """Block the customer's active cards and issue a new virtual one (a lost card)."""
    now = ctx.now()
    async with ctx.uow() as uow:
        await get_customer(uow.session, merchant_id, customer_id, lock=True)
        cards = await uow.session.scalars(
            select(Card).where(Card.customer_id == customer_id, Card.status == "active")
        )
        for card in cards:
            card.status = "blocked"
            card.blocked_at = now
        card = await attach_card(uow.session, merchant_id, customer_id, None, now)
        await uow.commit()
    return card.number


async def issue_qr_token(ctx: CoreContext, merchant_id: str, customer_id: str,
                         ttl: timedelta = timedelta(minutes=5)) -> str:
    """A rotating QR code for the customer, valid for `ttl`; only its digest is kept."""
    token = "Q" + random_code(15)
    async with ctx.uow() as uow:
        await get_customer(uow.session, merchant_id, customer_id)
        uow.session.add(QrToken(id=new_id("qrt"), merchant_id=merchant_id, customer_id=customer_id,
                                digest=hashlib.sha256(token.encode()).hexdigest(),
                                expires_at=ctx.now() + ttl))
        await uow.commit()
    return token


async def customer_answer(
    ctx: CoreContext, merchant_id: str, customer_id: str, at: datetime | None = None
) -> dict[str, Any]:
    _merchant, program = await merchant_and_program(ctx, merchant_id)
    at = at or ctx.now()
    async with ctx.db.direct() as db:  # read-only: no session
        found = await db.rows(_CUSTOMER_VIEW, {"merchant_id": merchant_id, "value": customer_id,
                                               "customer_id": customer_id, "at": at})
        if not found:
            raise CustomerNotFound("no such customer")
        row = found[0]
        customer = fastload.detached(Customer, row)
        extra = row[_LOTS_FROM - len(WITH_CUSTOMER):_LOTS_FROM]
        lots = [lot[_LOTS_FROM:] for lot in found if lot[_LOTS_FROM] is not None]
        return await customer_json(db, program, customer, at, extra=extra, lot_rows=lots)


async def lookup_answer(ctx: CoreContext, merchant_id: str, ref: CustomerRef) -> dict[str, Any]:
    now = ctx.now()
    async with ctx.db.read() as session:
        merchant = await session.get(Merchant, merchant_id)
        assert merchant is not None
        customer = await find_customer(session, merchant, ref, now)
        if customer is None:
            raise CustomerNotFound("no customer with this phone, card or code")
        program = await current_program(session, merchant)
        return await customer_json(session, program, customer, now)


async def adjust_points(
    ctx: CoreContext,
    merchant_id: str,
    customer_id: str,
    points_cp: int,
    reason: str,
    lifetime_days: int | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """A manual credit (a lot) or debit; a debit never takes the balance below zero."""
    if points_cp == 0:
        raise ValidationFailed("points must not be zero", field="points")
    now = ctx.now()
    async with ctx.uow() as uow:
        session = uow.session
        customer = await get_customer(session, merchant_id, customer_id, lock=True)
        merchant = await session.get(Merchant, merchant_id)
        assert merchant is not None
        program = await current_program(session, merchant)
        ledger = await CustomerLedger(session, customer, now).load()
        tags: dict[str, Any] = {"reason": reason, "actor": actor, "mechanic": "manual"}
        if points_cp > 0:
            days = lifetime_days or program.lifetime_for(program.tier(customer.tier_id))
            entry = ledger.credit("adjustment", points_cp, now, lifetime_days=days, **tags)
        else:
            entry = ledger.spend("adjustment", -points_cp, now, **tags)
        ledger.refresh_figures(now)
        uow.emit(merchant_id, "PointsAdjusted",
                 {"customer_id": customer_id, "points": str(from_minor(points_cp)), "entry_id": entry.id},
                 occurred_at=now, now=now, customer_id=customer_id)
        await session.flush()
        answer = entry_json(entry)
        await uow.commit()
    return answer
