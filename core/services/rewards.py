"""Rewards the till does not carry: the review bonus, and gifts bought with points."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.db.models import LedgerEntry, Merchant
from core.domain.money import from_minor
from core.errors import Conflict, CustomerNotFound, NotFound
from core.services import bonuses, confirmations
from core.services.context import CoreContext
from core.services.customers import CustomerRef, find_customer, get_customer
from core.services.ledger import CustomerLedger
from core.services.programs import current_program
from core.services.views import balance_json, entry_json


async def credit_review_bonus(ctx: CoreContext, merchant_id: str, customer_id: str,
                              review_id: str) -> int:
    """The program's review bonus for a review; once per customer when the program says so."""
    now = ctx.now()
    async with ctx.uow() as uow:
        customer = await get_customer(uow.session, merchant_id, customer_id, lock=True)
        merchant = await uow.session.get(Merchant, merchant_id)
        assert merchant is not None
        program = await current_program(uow.session, merchant)
        rule = program.bonuses.review
        if rule is None:
            return 0
        key = f"review:{customer_id}" if rule.once else f"review:{customer_id}:{review_id}"
        taken = await uow.session.scalar(select(LedgerEntry.id).where(
            LedgerEntry.merchant_id == merchant_id, LedgerEntry.idempotency_key == key))
        if taken:
            return 0
        ledger = await CustomerLedger(uow.session, customer, now).load()
        lot = await bonuses.credit_bonus(uow, program, ledger, "review", rule, now, idempotency_key=key,
                                   reason=f"review {review_id}")
        ledger.refresh_figures(now)
        await uow.commit()
    return lot.amount_cp if lot else 0


async def redeem_gift(ctx: CoreContext, merchant_id: str, ref: CustomerRef, gift_id: str,
                      redemption_id: str, confirmation_code: str | None = None
                      ) -> tuple[bool, dict[str, Any]]:
    """Spend points on a gift from the catalog; idempotent by `redemption_id`.

    Where the program asks the customer to confirm spending, the gift needs their code
    as a sale does (core.services.confirmations).
    """
    now = ctx.now()
    key = f"gift:{redemption_id}"
    confirmation = await _gift_confirmation(ctx, merchant_id, ref, gift_id, key, confirmation_code)
    try:
        async with ctx.uow() as uow:
            merchant = await uow.session.get(Merchant, merchant_id)
            assert merchant is not None
            customer = await find_customer(uow.session, merchant, ref, now, lock=True)
            if customer is None:
                raise CustomerNotFound("no customer with this phone, card or qr", field="customer")
            done = await uow.session.scalar(select(LedgerEntry).where(
                LedgerEntry.merchant_id == merchant_id, LedgerEntry.idempotency_key == key))
            if done is not None:
                if done.customer_id != customer.id or done.reason != gift_id:
                    raise Conflict("this redemption_id was used for another gift or customer")
                return False, _gift_json(done, None)
            program = await current_program(uow.session, merchant)
            gift = program.gift(gift_id)
            if gift is None:
                raise NotFound(f"no gift {gift_id!r} in the catalog", field="gift_id")
            ledger = await CustomerLedger(uow.session, customer, now).load()
            entry = ledger.spend("gift", int(gift.points * 100), now, mechanic="gift",
                                 reason=gift_id, idempotency_key=key)
            if confirmation is not None:
                await confirmations.use_up(uow.session, confirmation)
            ledger.refresh_figures(now)
            uow.emit(merchant_id, "GiftRedeemed",
                     {"customer_id": customer.id, "gift_id": gift_id,
                      "points": str(from_minor(-entry.amount_cp))},
                     occurred_at=now, now=now, customer_id=customer.id)
            await uow.session.flush()
            answer = _gift_json(entry, balance_json(ledger.balance(now), customer.debt_cp))
            await uow.commit()
        return True, answer
    except IntegrityError:
        return await redeem_gift(ctx, merchant_id, ref, gift_id, redemption_id, confirmation_code)


async def _gift_confirmation(ctx: CoreContext, merchant_id: str, ref: CustomerRef, gift_id: str,
                             key: str, code: str | None) -> str | None:
    """The confirmation a gift uses up, where the program asks for one; None for a repeat."""
    now = ctx.now()
    async with ctx.db.read() as session:
        merchant = await session.get(Merchant, merchant_id)
        assert merchant is not None
        program = await current_program(session, merchant)
        gift = program.gift(gift_id)
        if not program.redemption.confirm or gift is None:
            return None
        done = await session.scalar(select(LedgerEntry.id).where(
            LedgerEntry.merchant_id == merchant_id, LedgerEntry.idempotency_key == key))
        customer = await find_customer(session, merchant, ref, now)
        if done is not None or customer is None:
            return None  # the transaction answers these (the first answer, or not found)
        customer_id = customer.id
    return await confirmations.require(ctx, merchant_id, key, customer_id, int(gift.points * 100),
                                       code)


def _gift_json(entry: LedgerEntry, balance: dict[str, Any] | None) -> dict[str, Any]:
    return {"gift_id": entry.reason, "entry": entry_json(entry), "balance": balance}
