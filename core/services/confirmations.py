"""Redemption confirmed by the customer (seeds 002, 003): a code bound to (receipt, customer, points).

A sale (or a gift) that spends points, where the program asks for it, first answers
428 and a code goes to the customer's messenger (SMS when they have none: the
notifications consumer decides). The till repeats the request with
`confirmation_code`. Only an HMAC of the code is kept; five wrong codes burn it.

Guessing is bounded per customer, whatever the receipts or amounts the till tries:
one new code a minute, DAILY_CODES codes and DAILY_FAILURES wrong codes a day (a
six-digit code then holds against a stolen till key), and every code issued is a
message to the customer, who sees someone is trying. A 428 writes no purchase, so
the receipt_id stays free.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import RedemptionConfirmation
from core.domain.money import from_minor
from core.errors import ConfirmationInvalid, ConfirmationLimit, ConfirmationRequired
from core.ids import new_id
from core.services.context import CoreContext
from core.services.views import iso

LIFETIME = timedelta(minutes=5)
MAX_TRIES = 5
RESEND_AFTER = timedelta(seconds=60)
DAY = timedelta(hours=24)
DAILY_CODES = 10
DAILY_FAILURES = 15
CODE_DIGITS = 6


def _digest(ctx: CoreContext, merchant_id: str, key: str, customer_id: str, redeem_cp: int,
            code: str) -> str:
    message = f"{merchant_id}|{key}|{customer_id}|{redeem_cp}|{code}".encode()
    return ctx.secrets.sign(b"redemption-confirmation", message)


async def require(ctx: CoreContext, merchant_id: str, key: str, customer_id: str,
                  redeem_cp: int, code: str | None) -> str:
    """Check a confirmation before spending; returns the row id to use up in that transaction.

    `key` names what is paid for: the receipt_id, or "gift:<redemption_id>". No code: a
    new code is issued and ConfirmationRequired raised. A wrong, expired or burnt code
    raises ConfirmationInvalid with the tries left; past the daily caps, ConfirmationLimit.
    """
    now = ctx.now()
    if code is None:
        await _issue(ctx, merchant_id, key, customer_id, redeem_cp, now)
        raise ConfirmationRequired(
            "the customer confirms this with the code sent to their messenger; "
            "repeat the request with confirmation_code", receipt_id=key)
    async with ctx.uow() as uow:
        s = uow.session
        await _within_limits(s, merchant_id, customer_id, now, codes=False)
        row = await s.scalar(select(RedemptionConfirmation).where(
            RedemptionConfirmation.merchant_id == merchant_id, RedemptionConfirmation.receipt_id == key)
            .order_by(RedemptionConfirmation.created_at.desc()).limit(1).with_for_update())
        if row is None or row.expires_at <= now or row.tries >= MAX_TRIES:
            raise ConfirmationInvalid("this code has expired or was used up; repeat the request "
                                      "without confirmation_code to send a new one", tries_left=0)
        expected = _digest(ctx, merchant_id, key, row.customer_id, row.redeem_cp, code.strip())
        bound = row.customer_id == customer_id and row.redeem_cp == redeem_cp
        if not (hmac.compare_digest(expected, row.digest) and bound):
            row.tries += 1
            tries_left = MAX_TRIES - row.tries
            await uow.commit()
            raise ConfirmationInvalid("the confirmation code is wrong" if bound else
                                      "the code was sent for another customer or amount",
                                      tries_left=tries_left)
        return row.id


async def use_up(session: AsyncSession, row_id: str) -> None:
    """Spend a confirmation inside the paying transaction (gone only if that commits)."""
    with session.no_autoflush:  # the sale's own rows are written together at commit
        await session.execute(delete(RedemptionConfirmation)
                              .where(RedemptionConfirmation.id == row_id))


async def _within_limits(s: AsyncSession, merchant_id: str, customer_id: str, now: datetime, *,
                         codes: bool) -> None:
    of_customer = (RedemptionConfirmation.merchant_id == merchant_id,
                   RedemptionConfirmation.customer_id == customer_id,
                   RedemptionConfirmation.created_at > now - DAY)
    issued, failures = (await s.execute(select(
        func.count(RedemptionConfirmation.id), func.coalesce(func.sum(RedemptionConfirmation.tries), 0))
        .where(*of_customer))).one()
    if failures >= DAILY_FAILURES or (codes and issued >= DAILY_CODES):
        raise ConfirmationLimit("too many confirmation codes or wrong codes for this customer "
                                "today; the customer can pay with points again tomorrow")


async def _issue(ctx: CoreContext, merchant_id: str, key: str, customer_id: str,
                 redeem_cp: int, now: datetime) -> None:
    async with ctx.uow() as uow:
        s = uow.session
        latest = await s.scalar(select(RedemptionConfirmation).where(
            RedemptionConfirmation.merchant_id == merchant_id,
            RedemptionConfirmation.customer_id == customer_id)
            .order_by(RedemptionConfirmation.created_at.desc()).limit(1).with_for_update())
        if latest is not None and now - latest.created_at < RESEND_AFTER:
            if (latest.receipt_id, latest.redeem_cp) == (key, redeem_cp) and latest.tries < MAX_TRIES:
                return  # a code for exactly this went out a moment ago; the till repeated itself
            wait = int((latest.created_at + RESEND_AFTER - now).total_seconds()) + 1
            raise ConfirmationRequired(
                f"a code went to this customer less than a minute ago; repeat the request "
                f"without confirmation_code in {wait} s for a new one", receipt_id=key,
                retry_after=wait)
        await _within_limits(s, merchant_id, customer_id, now, codes=True)
        code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
        row = RedemptionConfirmation(
            id=new_id("rcf"), merchant_id=merchant_id, receipt_id=key, customer_id=customer_id,
            redeem_cp=redeem_cp, tries=0, created_at=now, expires_at=now + LIFETIME,
            digest=_digest(ctx, merchant_id, key, customer_id, redeem_cp, code))
        s.add(row)
        uow.emit(merchant_id, "RedemptionCodeIssued", {
            "customer_id": customer_id, "receipt_id": key, "redeem": str(from_minor(redeem_cp)),
            "code_sealed": ctx.secrets.encrypt(code), "expires_at": iso(row.expires_at),
        }, occurred_at=now, now=now, customer_id=customer_id)
        await uow.commit()
