"""What a notification needs from the core: whom to tell, where, and the figures to tell.

The channel chosen for a notice is the customer's most recently seen account that
has not blocked its bot (and whose bot is still connected): one message, on the
messenger the customer used last — the one they expect to hear from. A customer
with Telegram and the web chat does not want every notice twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, select

from core.db.models import Bot, ChannelAccount, Customer, LedgerEntry, Purchase
from core.domain.money import from_minor
from core.domain.program import Program
from core.services.consents import ADVERTISING, has_consent
from core.services.context import CoreContext
from core.services.programs import merchant_and_program


@dataclass(frozen=True)
class Recipient:
    """A customer to notify: the chosen account (None: no messenger reachable), locale, figures."""

    merchant_id: str
    customer_id: str
    phone: str | None
    account_id: str | None
    bot_id: str | None
    chat_id: str | None
    locale: str
    timezone: str
    program: Program
    available: Decimal
    pending: Decimal


# Channels that reach a person who is not looking (a messenger's push). The web chat only
# shows what waits when its page is open, so it gets notices only when it is all there is.
PUSH_CHANNELS = ("telegram", "vk", "max")


async def recipient(ctx: CoreContext, merchant_id: str, customer_id: str) -> Recipient | None:
    """The customer and the account a notice goes to; None for an unknown or deleted customer."""
    merchant, program = await merchant_and_program(ctx, merchant_id)
    async with ctx.db.read() as session:
        customer = await session.scalar(select(Customer).where(
            Customer.id == customer_id, Customer.merchant_id == merchant_id,
            Customer.deleted_at.is_(None)))
        if customer is None:
            return None
        account = (await session.execute(
            select(ChannelAccount.id, ChannelAccount.bot_id, ChannelAccount.chat_id,
                   ChannelAccount.locale)
            .join(Bot, Bot.id == ChannelAccount.bot_id)
            .where(ChannelAccount.customer_id == customer_id,
                   ChannelAccount.merchant_id == merchant_id,
                   ChannelAccount.blocked_at.is_(None), ChannelAccount.chat_id.is_not(None),
                   Bot.status == "active", Bot.removed_at.is_(None))
            .order_by(case((ChannelAccount.channel.in_(PUSH_CHANNELS), 0), else_=1),
                      ChannelAccount.last_seen_at.desc().nulls_last(),
                      ChannelAccount.created_at.desc())
            .limit(1))).first()
    return Recipient(
        merchant_id=merchant_id, customer_id=customer_id, phone=customer.phone,
        account_id=account.id if account else None, bot_id=account.bot_id if account else None,
        chat_id=account.chat_id if account else None,
        locale=account.locale if account else "ru", timezone=merchant.timezone, program=program,
        available=from_minor(customer.available_cp), pending=from_minor(customer.pending_cp))


@dataclass(frozen=True)
class SaleFigures:
    """One sale as its customer hears of it: points spent and earned, balance after it."""

    redeemed: Decimal
    accrued: Decimal
    bonus: Decimal  # bonuses the sale itself gave (a welcome bonus on the first purchase)
    available_at: datetime | None  # when the accrued points become spendable (None: now)
    balance: Decimal
    pending: Decimal


async def sale_figures(ctx: CoreContext, merchant_id: str, purchase_id: str) -> SaleFigures | None:
    """The figures of a registered sale, the balance as the sale left it (its own answer)."""
    async with ctx.db.read() as session:
        purchase = await session.scalar(select(Purchase).where(
            Purchase.id == purchase_id, Purchase.merchant_id == merchant_id))
        if purchase is None or purchase.customer_id is None:
            return None
        credits = (await session.execute(
            select(LedgerEntry.kind, LedgerEntry.amount_cp, LedgerEntry.available_at).where(
                LedgerEntry.purchase_id == purchase_id, LedgerEntry.customer_id == purchase.customer_id,
                LedgerEntry.kind.in_(("accrual", "bonus"))))).all()
    available_at = next((c.available_at for c in credits if c.kind == "accrual"), None)
    bonus = sum(c.amount_cp for c in credits if c.kind == "bonus")
    balance: dict[str, Any] = purchase.response.get("balance") or {}
    return SaleFigures(
        redeemed=from_minor(purchase.redeemed_cp), accrued=from_minor(purchase.accrued_cp),
        bonus=from_minor(bonus),
        available_at=available_at if available_at and available_at > purchase.occurred_at else None,
        balance=Decimal(balance.get("available", "0")), pending=Decimal(balance.get("pending", "0")))


async def may_advertise(ctx: CoreContext, merchant_id: str, customer_id: str) -> bool:
    """Marketing needs the advertising consent (38-FZ art. 18): the latest word must be a grant."""
    return await has_consent(ctx, merchant_id, customer_id, ADVERTISING)
