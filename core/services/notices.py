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

from sqlalchemy import select

from core.db.models import Bot, ChannelAccount, Customer, LedgerEntry, Merchant, Purchase
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
    return (await recipients(ctx, {(merchant_id, customer_id)})).get((merchant_id, customer_id))


async def recipients(ctx: CoreContext, wanted: set[tuple[str, str]]
                     ) -> dict[tuple[str, str], Recipient | None]:
    """`recipient` for many (merchant, customer) pairs at once: two queries, whatever their number.

    The account chosen: one that pushes (a messenger) before the web chat, then the most
    recently seen, then the newest.
    """
    customer_ids = {customer_id for _merchant, customer_id in wanted}
    async with ctx.db.read() as session:
        customers = {(c.merchant_id, c.id): c for c in (await session.execute(select(
            Customer.merchant_id, Customer.id, Customer.phone, Customer.available_cp,
            Customer.pending_cp).where(Customer.id.in_(customer_ids),
                                       Customer.deleted_at.is_(None)))).all()}
        accounts = (await session.execute(
            select(ChannelAccount.merchant_id, ChannelAccount.customer_id, ChannelAccount.id,
                   ChannelAccount.bot_id, ChannelAccount.chat_id, ChannelAccount.locale,
                   ChannelAccount.channel, ChannelAccount.last_seen_at, ChannelAccount.created_at)
            .join(Bot, Bot.id == ChannelAccount.bot_id)
            .where(ChannelAccount.customer_id.in_(customer_ids),
                   ChannelAccount.blocked_at.is_(None), ChannelAccount.chat_id.is_not(None),
                   Bot.status == "active", Bot.removed_at.is_(None)))).all()
    best: dict[tuple[str, str], Any] = {}
    for row in sorted(accounts, key=_preference):
        best.setdefault((row.merchant_id, row.customer_id), row)
    found: dict[tuple[str, str], Recipient | None] = {}
    merchants: dict[str, tuple[Merchant, Program]] = {}
    for key in wanted:
        customer = customers.get(key)
        if customer is None:  # unknown, another merchant's, or deleted
            found[key] = None
            continue
        if key[0] not in merchants:
            merchants[key[0]] = await merchant_and_program(ctx, key[0])
        merchant, program = merchants[key[0]]
        account = best.get(key)
        found[key] = Recipient(
            merchant_id=key[0], customer_id=key[1], phone=customer.phone,
            account_id=account.id if account else None, bot_id=account.bot_id if account else None,
            chat_id=account.chat_id if account else None,
            locale=account.locale if account else "ru", timezone=merchant.timezone, program=program,
            available=from_minor(customer.available_cp), pending=from_minor(customer.pending_cp))
    return found


def _preference(account: Any) -> tuple[int, float, float]:
    """Sort key: pushing channels first, then the most recently seen, then the newest."""
    seen = account.last_seen_at.timestamp() if account.last_seen_at is not None else float("-inf")
    return (0 if account.channel in PUSH_CHANNELS else 1, -seen, -account.created_at.timestamp())


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
