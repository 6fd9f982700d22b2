"""One-off bonuses (welcome, birthday, review), referral rewards and gifts for points."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.db.models import Customer, LedgerEntry, Merchant, Purchase
from core.db.uow import UnitOfWork
from core.domain.facts import SaleFacts
from core.domain.mechanics import Bonus
from core.domain.money import from_minor, round_cp
from core.domain.program import Program
from core.services.context import CoreContext
from core.services.ledger import CustomerLedger, activation_time


async def credit_bonus(uow: UnitOfWork, program: Program, ledger: CustomerLedger, mechanic: str,
                 bonus: Bonus, at: datetime, **tags: Any) -> LedgerEntry | None:
    """Credit a bonus lot with its own lifetime, activation and redemption cap."""
    points = int(bonus.points * 100)
    if points <= 0 or (bonus.tiers and ledger.customer.tier_id not in bonus.tiers):
        return None
    tier = program.tier(ledger.customer.tier_id)
    merchant = await uow.session.get(Merchant, ledger.customer.merchant_id)
    assert merchant is not None
    lot = ledger.credit(
        "bonus", points, at,
        available_at=activation_time(program, merchant, at, bonus.activation_days),
        lifetime_days=bonus.lifetime_days or program.lifetime_for(tier), mechanic=mechanic,
        **tags)
    if bonus.redeem_cap_percent is not None:
        lot.redeem_cap_milli = int(bonus.redeem_cap_percent * 1000)
    uow.emit(ledger.customer.merchant_id, "BonusCredited",
             {"customer_id": ledger.customer.id, "mechanic": mechanic,
              "points": str(from_minor(points))},
             occurred_at=at, now=ledger.now, customer_id=ledger.customer.id)
    return lot


async def credit_once(ctx: CoreContext, program: Program, customer_id: str, mechanic: str,
                      bonus: Bonus, at: datetime, key: Callable[[Customer], str]) -> bool:
    """A scheduled bonus in its own transaction, at most once per `key` (a unique ledger key)."""
    try:
        async with ctx.uow() as uow:
            customer = await uow.session.scalar(select(Customer).where(
                Customer.id == customer_id, Customer.deleted_at.is_(None)).with_for_update())
            if customer is None:
                return False
            ledger = await CustomerLedger(uow.session, customer, ctx.now()).load()
            lot = await credit_bonus(uow, program, ledger, mechanic, bonus, at,
                                     idempotency_key=key(customer))
            ledger.refresh_figures(max(at, ctx.now()))
            await uow.commit()
            return lot is not None
    except IntegrityError:
        return False  # already given: the key says so


async def welcome_on_registration(uow: UnitOfWork, program: Program, customer: Customer,
                                  referred: bool, at: datetime) -> None:
    """The welcome bonus (when it is given at registration) and a referred friend's gift."""
    welcome = program.bonuses.welcome
    referral = program.bonuses.referral
    gives_friend = referred and referral is not None and referral.friend_bonus is not None
    if not ((welcome and welcome.on == "registration") or gives_friend):
        return
    ledger = await CustomerLedger(uow.session, customer, at).load()
    if welcome and welcome.on == "registration":
        await credit_bonus(uow, program, ledger, "welcome", welcome, at)
    if gives_friend and referral is not None and referral.friend_bonus is not None:
        await credit_bonus(uow, program, ledger, "referral_friend", referral.friend_bonus, at)
    ledger.refresh_figures(at)


async def welcome_on_first_purchase(uow: UnitOfWork, program: Program, ledger: CustomerLedger,
                                    purchase: Purchase, at: datetime) -> dict[str, int]:
    welcome = program.bonuses.welcome
    if welcome is None or welcome.on != "first_purchase":
        return {}
    key = f"welcome:{ledger.customer.id}"
    if await uow.session.scalar(select(LedgerEntry.id).where(
            LedgerEntry.merchant_id == purchase.merchant_id, LedgerEntry.idempotency_key == key)):
        return {}  # the first purchase was refunded; the welcome bonus is given once
    lot = await credit_bonus(uow, program, ledger, "welcome", welcome, at,
                             purchase_id=purchase.id, idempotency_key=key)
    return {"welcome": lot.amount_cp} if lot else {}


async def referral_rewards(uow: UnitOfWork, program: Program, buyer: Customer, purchase: Purchase,
                           base_minor: int, facts: SaleFacts, at: datetime, now: datetime) -> None:
    """Rewards up the referrer chain, level by level, on what the friend paid in money."""
    rules = program.bonuses.referral
    if rules is None or not rules.levels or buyer.referrer_id is None or base_minor <= 0:
        return
    if rules.on == "first_purchase" and not facts.first_purchase:
        return
    referrer_id: str | None = buyer.referrer_id
    seen = {buyer.id}
    for level_no, level in enumerate(rules.levels, start=1):
        if referrer_id is None or referrer_id in seen:
            break
        seen.add(referrer_id)
        referrer = await uow.session.scalar(
            select(Customer).where(Customer.id == referrer_id, Customer.deleted_at.is_(None))
            .with_for_update())
        if referrer is None:
            break
        # The buyer's rate is the tier the sale was made at (a crossing sale keeps the old one).
        rate_tier = program.tier(purchase.tier_id if rules.rate_from == "buyer"
                                 else referrer.tier_id)
        percent = level.percent
        if rate_tier.referral_percents and len(rate_tier.referral_percents) >= level_no:
            percent = rate_tier.referral_percents[level_no - 1]
        if level.per_amount is not None:
            complete = Decimal(base_minor) / (level.per_amount * 100)
            raw = complete.to_integral_value(rounding=ROUND_FLOOR) * level.points * 100
        else:
            raw = Decimal(base_minor) * percent / 100 / program.point_value
        points = round_cp(raw, program.precision, program.rounding)
        if points > 0:
            ledger = await CustomerLedger(uow.session, referrer, now).load()
            merchant = await uow.session.get(Merchant, buyer.merchant_id)
            assert merchant is not None
            ledger.credit("referral", points, at,
                          available_at=activation_time(program, merchant, at),
                          lifetime_days=rules.lifetime_days or program.lifetime_for(
                              program.tier(referrer.tier_id)),
                          mechanic="referral", purchase_id=purchase.id, referral_level=level_no)
            ledger.refresh_figures(at)
            uow.emit(buyer.merchant_id, "ReferralRewarded",
                     {"customer_id": referrer.id, "friend_id": buyer.id, "level": level_no,
                      "points": str(from_minor(points)), "purchase_id": purchase.id},
                     occurred_at=at, now=now, customer_id=referrer.id)
        referrer_id = referrer.referrer_id
