"""Registration in a messenger: a confirmed phone links the account to its customer.

The phone is confirmed by the platform (the person's own contact) or by an SMS code
(core.services.otp, purpose PURPOSE). A customer already registered with that phone
(at a till, in another messenger) is linked, never duplicated; otherwise a new one is
registered with the account's channel, the deep link's source and referrer. On
linking, the account's consents and earlier messages join the customer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from core.db.models import ChannelAccount, Customer
from core.errors import CustomerNotFound, InvalidBirthDate, InvalidName, NotFound, ValidationFailed
from core.services import conversations
from core.services.consents import attach_account_consents
from core.services.context import CoreContext
from core.services.customers import CustomerRef, RegisterCustomer, customer_answer, register_customer
from core.services.programs import merchant_and_program

log = logging.getLogger("kartochka.registration")
PURPOSE = "register"  # the OTP purpose of a registration code
GENDERS = ("m", "f")
NAME_MAX = 100
OLDEST_YEARS = 120
_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DATE = re.compile(r"^\s*(\d{1,2})[./\-\s](\d{1,2})[./\-\s](\d{4})\s*$")


def parse_start_payload(payload: str | None) -> dict[str, str]:
    """A deep-link payload: {"ref": CODE} for "ref_<CODE>", {"source": tag} for another tag
    ([A-Za-z0-9_-], at most 64); anything else is ignored."""
    if not payload or not _PAYLOAD.match(payload):
        return {}
    if payload.startswith("ref_") and len(payload) > 4:
        return {"ref": payload[4:].upper()}
    return {"source": payload}


@dataclass(frozen=True)
class Linked:
    """The account now belongs to `customer_id`; `created`: a new customer (else an existing one)."""

    customer_id: str
    created: bool


async def confirm_phone(
    ctx: CoreContext, account_id: str, phone: str, *, source: str | None = None,
    referral_code: str | None = None,
) -> Linked:
    """Link the account to the customer with this (confirmed) phone, registering one if none."""
    async with ctx.db.read() as session:
        account = await session.get(ChannelAccount, account_id)
        if account is None:
            raise NotFound("no such channel account")
        merchant_id, channel, linked_to = account.merchant_id, account.channel, account.customer_id
    if linked_to is not None:
        return Linked(linked_to, created=False)
    cmd = RegisterCustomer(phone=phone, channel=channel, source=source,
                           referrer=CustomerRef(code=referral_code) if referral_code else None)
    try:
        created, customer = await register_customer(ctx, merchant_id, cmd)
    except CustomerNotFound:  # the referral code names nobody: register without a referrer
        log.info("unknown referral code ignored",
                 extra={"merchant_id": merchant_id, "account_id": account_id})
        created, customer = await register_customer(
            ctx, merchant_id, RegisterCustomer(phone=phone, channel=channel, source=source))
    customer_id = str(customer["id"])
    async with ctx.uow() as uow:
        s = uow.session
        row = await s.get(ChannelAccount, account_id, with_for_update=True)
        assert row is not None
        if row.customer_id is not None:  # another event of this account linked it first
            return Linked(row.customer_id, created=False)
        row.customer_id = customer_id
        await attach_account_consents(s, account_id, customer_id)
        await conversations.link_account_messages(s, account_id, customer_id)
        now = ctx.now()
        uow.emit(merchant_id, "ChannelAccountLinked",
                 {"customer_id": customer_id, "account_id": account_id, "channel": channel,
                  "new_customer": created}, occurred_at=now, now=now, customer_id=customer_id)
        await uow.commit()
    log.info("account linked", extra={"merchant_id": merchant_id, "account_id": account_id,
                                      "customer_id": customer_id, "new_customer": created})
    return Linked(customer_id, created)


def clean_name(raw: str) -> str:
    """A name as typed, spaces tidied; InvalidName(reason="empty"|"too_long"|"no_letters")."""
    name = " ".join((raw or "").split())
    if not name:
        raise InvalidName("the name is empty", reason="empty")
    if len(name) > NAME_MAX:
        raise InvalidName(f"the name is longer than {NAME_MAX} characters", reason="too_long")
    if not any(ch.isalpha() for ch in name):
        raise InvalidName("a name has letters", reason="no_letters")
    return name


def parse_birth_date(text: str, today: date) -> date:
    """DD.MM.YYYY (or with / - or spaces between); InvalidBirthDate with a `reason`.

    Reasons: "format", "no_such_day", "future", "too_old".
    """
    match = _DATE.match(text or "")
    if match is None:
        raise InvalidBirthDate("write the date as DD.MM.YYYY", reason="format")
    day, month, year = (int(part) for part in match.groups())
    try:
        value = date(year, month, day)
    except ValueError as exc:
        raise InvalidBirthDate("there is no such day", reason="no_such_day") from exc
    if value > today:
        raise InvalidBirthDate("the date is in the future", reason="future")
    if today.year - value.year > OLDEST_YEARS:
        raise InvalidBirthDate("the date is too long ago", reason="too_old")
    return value


async def set_name(ctx: CoreContext, merchant_id: str, customer_id: str, raw: str) -> str:
    name = clean_name(raw)
    await _update(ctx, merchant_id, customer_id, name=name)
    return name


async def set_birth_date(ctx: CoreContext, merchant_id: str, customer_id: str, value: date) -> None:
    await _update(ctx, merchant_id, customer_id, birth_date=value)


async def set_gender(ctx: CoreContext, merchant_id: str, customer_id: str, gender: str | None) -> None:
    """"m", "f", or None (not said)."""
    if gender is not None and gender not in GENDERS:
        raise ValidationFailed("gender is m or f", field="gender")
    await _update(ctx, merchant_id, customer_id, gender=gender)


async def _update(ctx: CoreContext, merchant_id: str, customer_id: str, **values: Any) -> None:
    async with ctx.uow() as uow:
        customer = await uow.session.scalar(select(Customer).where(
            Customer.id == customer_id, Customer.merchant_id == merchant_id,
            Customer.deleted_at.is_(None)).with_for_update())
        if customer is None:
            raise CustomerNotFound("no such customer")
        for key, value in values.items():
            setattr(customer, key, value)
        await uow.commit()


@dataclass(frozen=True)
class WelcomeView:
    """What the welcome screen shows (the card, the balance with the welcome bonus), and what
    the profile still lacks (a customer found by phone may have it from the till)."""

    card_number: str | None
    name: str | None
    birth_date: date | None
    gender: str | None
    tier_name: str
    available: Decimal
    pending: Decimal
    first_purchase_bonus: Decimal | None  # a welcome bonus still to come with the first purchase


async def welcome_view(ctx: CoreContext, merchant_id: str, customer_id: str) -> WelcomeView:
    answer = await customer_answer(ctx, merchant_id, customer_id)
    _merchant, program = await merchant_and_program(ctx, merchant_id)
    async with ctx.db.read() as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        welcome = program.bonuses.welcome
        later = (welcome.points if welcome is not None and welcome.on == "first_purchase"
                 and customer.purchase_count == 0 else None)
        return WelcomeView(
            card_number=answer["card_number"], name=customer.name, birth_date=customer.birth_date,
            gender=customer.gender, tier_name=answer["tier"]["name"],
            available=Decimal(answer["balance"]["available"]),
            pending=Decimal(answer["balance"]["pending"]), first_purchase_bonus=later or None)
