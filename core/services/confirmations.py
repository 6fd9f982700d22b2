"""Redemption confirmed by the customer (seeds 002, 003): a code bound to (receipt, customer, points).

A sale that redeems points, where the program asks for it, first answers 428 and a
code goes to the customer's messenger (SMS when they have none: the notifications
consumer decides). The till repeats the same sale with `confirmation_code`. Only an
HMAC of the code is kept; five wrong codes burn it, and the till asks for a new one.
A 428 writes no purchase, so the receipt_id stays free.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import RedemptionConfirmation
from core.domain.money import from_minor
from core.errors import ConfirmationInvalid, ConfirmationRequired
from core.ids import new_id
from core.services.context import CoreContext
from core.services.views import iso

LIFETIME = timedelta(minutes=5)
MAX_TRIES = 5
RESEND_AFTER = timedelta(seconds=60)
CODE_DIGITS = 6


def _digest(ctx: CoreContext, merchant_id: str, receipt_id: str, customer_id: str, redeem_cp: int,
            code: str) -> str:
    message = f"{merchant_id}|{receipt_id}|{customer_id}|{redeem_cp}|{code}".encode()
    return ctx.secrets.sign(b"redemption-confirmation", message)


async def require(ctx: CoreContext, merchant_id: str, receipt_id: str, customer_id: str,
                  redeem_cp: int, code: str | None) -> str | None:
    """Check a confirmation before the sale; returns the row id to consume in the sale.

    No code: a new code is issued (at most once a minute per receipt) and
    ConfirmationRequired is raised. A wrong, expired or burnt code raises
    ConfirmationInvalid with the tries left.
    """
    now = ctx.now()
    if code is None:
        await _issue(ctx, merchant_id, receipt_id, customer_id, redeem_cp, now)
        raise ConfirmationRequired(
            "the customer confirms this redemption with the code sent to their messenger; "
            "repeat the sale with confirmation_code", receipt_id=receipt_id)
    async with ctx.uow() as uow:
        row = await uow.session.scalar(select(RedemptionConfirmation).where(
            RedemptionConfirmation.merchant_id == merchant_id,
            RedemptionConfirmation.receipt_id == receipt_id).with_for_update())
        if row is None or row.expires_at <= now or row.tries >= MAX_TRIES:
            raise ConfirmationInvalid("this code has expired or was used up; repeat the sale "
                                      "without confirmation_code to send a new one", tries_left=0)
        expected = _digest(ctx, merchant_id, receipt_id, row.customer_id, row.redeem_cp, code.strip())
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
    """Spend a confirmation inside the sale's transaction (gone only if the sale commits)."""
    with session.no_autoflush:  # the sale's own rows are written together at commit
        await session.execute(delete(RedemptionConfirmation)
                              .where(RedemptionConfirmation.id == row_id))


async def _issue(ctx: CoreContext, merchant_id: str, receipt_id: str, customer_id: str,
                 redeem_cp: int, now: datetime) -> None:
    async with ctx.uow() as uow:
        s = uow.session
        row = await s.scalar(select(RedemptionConfirmation).where(
            RedemptionConfirmation.merchant_id == merchant_id,
            RedemptionConfirmation.receipt_id == receipt_id).with_for_update())
        fresh = row is not None and now - row.created_at < RESEND_AFTER and row.tries < MAX_TRIES
        if fresh and row is not None and row.customer_id == customer_id and row.redeem_cp == redeem_cp:
            return  # a code for exactly this went out a moment ago; the till repeated itself
        code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
        if row is None:
            row = RedemptionConfirmation(id=new_id("rcf"), merchant_id=merchant_id, receipt_id=receipt_id)
            s.add(row)
        row.customer_id, row.redeem_cp, row.tries = customer_id, redeem_cp, 0
        row.digest = _digest(ctx, merchant_id, receipt_id, customer_id, redeem_cp, code)
        row.created_at, row.expires_at = now, now + LIFETIME
        uow.emit(merchant_id, "RedemptionCodeIssued", {
            "customer_id": customer_id, "receipt_id": receipt_id,
            "redeem": str(from_minor(redeem_cp)),
            "code_sealed": ctx.secrets.encrypt(code), "expires_at": iso(row.expires_at),
        }, occurred_at=now, now=now, customer_id=customer_id)
        await uow.commit()
