"""Sales from a till: preview (writes nothing) and register (one transaction, idempotent)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fastload
from core.db.base import table_of
from core.db.models import Cashier, Customer, Merchant, Purchase, PurchaseLine, Store
from core.db.uow import UnitOfWork
from core.domain.engine import SaleQuote, evaluate
from core.domain.money import from_minor
from core.domain.program import Program, Tier
from core.errors import CustomerNotFound, ReceiptConflict, ValidationFailed
from core.ids import new_id
from core.services import confirmations
from core.services.context import CoreContext
from core.services.customers import CRITERIA, customer_query, find_customer
from core.services.facts import sale_facts
from core.services.ledger import CustomerLedger
from core.services.programs import current_program, merchant_snapshot
from core.services.sale_points import apply_points
from core.services.sales_input import SaleInput
from core.services.tiers import move_tier, tier_before_sale
from core.services.views import balance_json, tier_json

FUTURE_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class SaleAnswer:
    created: bool
    body: dict[str, Any]


def _money(value: int) -> str:
    return str(from_minor(value))


def quote_json(quote: SaleQuote) -> dict[str, Any]:
    """The engine's answer as the API writes it: decimal strings, breakdown by mechanic."""
    return {
        "max_redeem": _money(quote.max_redeem_cp),
        "redeem": _money(quote.redeem_cp),
        "discount": _money(quote.discount_minor + quote.promo_discount_minor),
        "points_discount": _money(quote.discount_minor),
        "promo_discount": _money(quote.promo_discount_minor),
        "accrual": _money(quote.accrual_cp),
        "lines": [
            {"line_id": line.line_id, "amount": _money(line.amount_minor),
             "discount": _money(line.discount_minor), "redeemed": _money(line.redeemed_cp),
             "accrued": _money(line.accrued_cp)}
            for line in quote.lines
        ],
        "breakdown": {k: _money(v) for k, v in quote.breakdown.items()},
    }


async def _quote(session: AsyncSession, merchant: Merchant, program: Program,
                 customer: Customer | None, sale: SaleInput, at: datetime, now: datetime
                 ) -> tuple[SaleQuote, Tier, CustomerLedger | None, Any]:
    """Rules run at the sale's time; points are spendable as the ledger stands now."""
    ledger = await CustomerLedger(session, customer, now).load() if customer else None
    tier = (await tier_before_sale(session, program, customer, at) if customer
            else program.start_tier())
    facts = await sale_facts(session, merchant, program, customer, ledger, at, max(at, now))
    if customer is not None:
        facts = replace(facts, tier_id=tier.id)
    quote = evaluate(program, tier, sale.sale_lines(), sale.total_minor, sale.redeem_cp, facts)
    return quote, tier, ledger, facts


def _sale_time(sale: SaleInput, now: datetime) -> datetime:
    at = sale.occurred_at or now
    if at > now + FUTURE_SLACK:
        raise ValidationFailed("occurred_at is more than 5 minutes in the future",
                               field="occurred_at")
    return at


async def preview_sale(ctx: CoreContext, merchant_id: str, sale: SaleInput) -> dict[str, Any]:
    """What this sale would do, computed exactly as register would; nothing is written."""
    now = ctx.now()
    at = _sale_time(sale, now)
    async with ctx.db.read() as session:
        merchant = await merchant_snapshot(session, merchant_id)
        program = await current_program(session, merchant)
        customer = await _customer_of(session, merchant, sale, at)
        quote, tier, ledger, _ = await _quote(session, merchant, program, customer, sale, at, now)
        body = quote_json(quote)
        body["tier"] = await tier_json(session, program, customer, at)
        body["customer_id"] = customer.id if customer else None
        body["available"] = _money(ledger.balance(max(at, now)).available_cp if ledger else 0)
        return body


async def register_sale(ctx: CoreContext, merchant_id: str, sale: SaleInput) -> SaleAnswer:
    """Register a sale once per receipt_id; a repeat gets the first answer, another body a 409."""
    digest = sale.digest()
    confirmation = await _confirmation(ctx, merchant_id, sale, digest)
    for attempt in range(3):
        try:
            return await _register_once(ctx, merchant_id, sale, digest, confirmation)
        except IntegrityError:
            # A concurrent insert of the same receipt, store or cashier won; look again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _existing(session: AsyncSession, merchant_id: str, receipt_id: str,
                    digest: str) -> SaleAnswer | None:
    found = (await session.execute(
        select(Purchase.id, Purchase.request_digest, Purchase.response).where(
            Purchase.merchant_id == merchant_id, Purchase.receipt_id == receipt_id))).first()
    if found is None:
        return None
    if found.request_digest != digest:
        raise ReceiptConflict("this receipt_id was registered with another body",
                              purchase_id=found.id)
    return SaleAnswer(False, found.response)


async def _confirmation(ctx: CoreContext, merchant_id: str, sale: SaleInput,
                        digest: str) -> str | None:
    """Where the program asks the customer to confirm a redemption: the confirmation to use up.

    Checked before the sale's transaction (it writes tries and codes of its own); a
    repeat of a registered sale needs no code.
    """
    if sale.redeem_cp <= 0 or sale.customer is None:
        return None
    now = ctx.now()
    async with ctx.db.read() as session:
        merchant = await merchant_snapshot(session, merchant_id)
        program = await current_program(session, merchant)
        if not program.redemption.confirm:
            return None
        if await _existing(session, merchant_id, sale.receipt_id, digest) is not None:
            return None
        at = _sale_time(sale, now)
        customer = await _customer_of(session, merchant, sale, at)
        assert customer is not None
        customer_id = customer.id
        if sale.confirmation_code is None:
            # A redemption the rules refuse (over the cap, more than the balance) is refused
            # now: no code goes to the customer for a sale that cannot happen.
            await _quote(session, merchant, program, customer, sale, at, now)
    return await confirmations.require(ctx, merchant_id, sale.receipt_id, customer_id,
                                       sale.redeem_cp, sale.confirmation_code)


async def _customer_of(session: AsyncSession, merchant: Merchant, sale: SaleInput,
                       at: datetime) -> Customer | None:
    if sale.customer is None:
        return None
    customer = await find_customer(session, merchant, sale.customer, at)
    if customer is None:
        raise CustomerNotFound("no customer with this phone, card or qr", field="customer")
    return customer


_WITH_RECEIPT: dict[int, Select[Any]] = {}  # id of the customer's select -> the one below


def _with_receipt(base: Select[Customer]) -> Select[Any]:
    """The customer's columns (a plain select: core.db.fastload), row locked, with the
    purchase of the receipt beside them."""
    query: Select[Any] | None = _WITH_RECEIPT.get(id(base))
    if query is None:
        customers, purchases = table_of(Customer), table_of(Purchase)
        query = _WITH_RECEIPT[id(base)] = (
            select(*customers.c, purchases.c.id, purchases.c.request_digest,
                   purchases.c.response)
            .select_from(customers.outerjoin(
                purchases, (purchases.c.merchant_id == customers.c.merchant_id)
                & (purchases.c.receipt_id == bindparam("receipt_id"))))
            .where(*CRITERIA[id(base)])
            .with_for_update(of=customers))
    return query  # type: ignore[return-value]  # (mypy widens it to Select[Never] above)


async def _locked_customer(session: AsyncSession, merchant: Merchant, sale: SaleInput,
                           digest: str, at: datetime) -> tuple[Customer | None, SaleAnswer | None]:
    """The sale's customer, row locked, or the first answer when the receipt is registered.

    One round trip: the customer's select locks the row and brings the receipt's purchase
    along (as of the statement's start, as a look before the lock would). A repeat gets the
    first answer even if its QR has expired or the card was reissued.
    """
    if sale.customer is None:
        return None, await _existing(session, merchant.id, sale.receipt_id, digest)
    try:
        query = await customer_query(session, merchant, sale.customer, at)
    except ValidationFailed:  # a blocked card, say: a repeat still gets its first answer
        if (previous := await _existing(session, merchant.id, sale.receipt_id, digest)):
            return None, previous
        raise
    found = None
    if query is not None:
        base, params = query
        rows = await fastload.fetch_rows(session, _with_receipt(base),
                                         {**params, "receipt_id": sale.receipt_id})
        found = rows[0] if rows else None
    if found is None:
        if (previous := await _existing(session, merchant.id, sale.receipt_id, digest)):
            return None, previous
        raise CustomerNotFound("no customer with this phone, card or qr", field="customer")
    purchase_id, request_digest, response = found[-3:]
    if purchase_id is None:
        customer = fastload.as_objects(session, Customer, [found])[0]
        return customer, None
    if request_digest != digest:
        raise ReceiptConflict("this receipt_id was registered with another body",
                              purchase_id=purchase_id)
    return None, SaleAnswer(False, response)


async def _register_once(ctx: CoreContext, merchant_id: str, sale: SaleInput,
                         digest: str, confirmation: str | None = None) -> SaleAnswer:
    now = ctx.now()
    at = _sale_time(sale, now)
    async with ctx.uow() as uow:
        session = uow.session
        merchant = await merchant_snapshot(session, merchant_id)
        customer, previous = await _locked_customer(session, merchant, sale, digest, at)
        if previous is not None:
            return previous
        # Two identical sales in flight queue on the lock; a twin that won it meanwhile is
        # caught by the unique receipt: register_sale retries, and the look above finds it.
        # The clock is read again: a sale that waited for the lock sees what was committed
        # before it.
        now = max(now, ctx.now())
        at = sale.occurred_at or now
        program = await current_program(session, merchant)
        quote, tier, ledger, facts = await _quote(session, merchant, program, customer, sale,
                                                  at, now)
        if customer is not None and tier.id != customer.tier_id:
            move_tier(uow, customer, tier, at, now)  # rated by the period just before it
        purchase = Purchase(
            id=new_id("pur"), merchant_id=merchant_id, receipt_id=sale.receipt_id,
            customer_id=customer.id if customer else None,
            store_id=await _code_row(session, Store, merchant_id, sale.store_code, now),
            cashier_id=await _code_row(session, Cashier, merchant_id, sale.cashier_code, now),
            occurred_at=at, created_at=now, total_minor=sale.total_minor,
            discount_minor=quote.discount_minor, promo_discount_minor=quote.promo_discount_minor,
            redeemed_cp=quote.redeem_cp, accrued_cp=quote.accrual_cp, refunded_minor=0,
            program_version=merchant.program_version, tier_id=tier.id if customer else None,
            breakdown={**quote.breakdown, "_fixed": quote.fixed}, request_digest=digest,
            response={},
        )
        session.add(purchase)  # inserted with everything else at commit, answer included
        _add_lines(uow, purchase, sale, quote)
        body = _sale_json(purchase, quote)
        if customer is not None and ledger is not None:
            extra = await apply_points(uow, program, merchant, customer, ledger, purchase, quote,
                                       facts, at, now)
            body["breakdown"].update({k: _money(v) for k, v in extra.items()})
            body["balance"] = balance_json(ledger.balance(max(at, now)), customer.debt_cp)
            body["tier"] = await tier_json(session, program, customer, max(at, now))
        names = {p.id: p.name for p in program.presents}
        body["presents"] = [{"id": p, "name": names.get(p, p)} for p in quote.presents]
        if quote.presents and customer is not None:
            uow.emit(merchant_id, "PresentEarned",
                     {"customer_id": customer.id, "purchase_id": purchase.id,
                      "presents": quote.presents}, occurred_at=at, now=now,
                     customer_id=customer.id)
        purchase.response = body
        if confirmation is not None:
            await confirmations.use_up(session, confirmation)
        uow.emit(merchant_id, "PurchaseRegistered",
                 {"purchase_id": purchase.id, "receipt_id": sale.receipt_id,
                  "customer_id": purchase.customer_id, "total": body["total"],
                  "redeemed": body["redeemed"], "accrued": body["accrued"],
                  "store_id": purchase.store_id},
                 occurred_at=at, now=now, customer_id=purchase.customer_id)
        await uow.commit(plain=True)
    return SaleAnswer(True, body)


def _sale_json(purchase: Purchase, quote: SaleQuote) -> dict[str, Any]:
    quoted = quote_json(quote)
    return {
        "purchase_id": purchase.id,
        "receipt_id": purchase.receipt_id,
        "customer_id": purchase.customer_id,
        "total": _money(purchase.total_minor),
        "redeemed": quoted["redeem"],
        "discount": quoted["discount"],
        "points_discount": quoted["points_discount"],
        "promo_discount": quoted["promo_discount"],
        "accrued": quoted["accrual"],
        "lines": [{k: v for k, v in line.items() if k != "amount"} for line in quoted["lines"]],
        "breakdown": quoted["breakdown"],
        "balance": None,
        "tier": None,
    }


def _add_lines(uow: UnitOfWork, purchase: Purchase, sale: SaleInput, quote: SaleQuote) -> None:
    """The sale's lines, written at commit as plain rows (nothing reads them back here)."""
    details = {x.line_id: x for x in sale.lines}
    rows = []
    for position, line in enumerate(quote.lines):
        given = details.get(line.line_id)
        rows.append({
            "id": new_id("pln"), "merchant_id": purchase.merchant_id,
            "purchase_id": purchase.id, "position": position, "line_id": line.line_id,
            "sku": given.sku if given else None, "name": given.name if given else None,
            "category": given.category if given else None,
            "price_minor": given.price_minor if given else None,
            "quantity": given.quantity if given else None,
            "amount_minor": line.amount_minor, "discount_minor": line.discount_minor,
            "redeemed_cp": line.redeemed_cp, "accrued_cp": line.accrued_cp, "refunded_minor": 0,
        })
    uow.insert_rows(table_of(PurchaseLine), rows)


_CODES: dict[tuple[str, str, str], str] = {}  # (merchant, table, code) -> id; rows never change


async def _code_row(session: AsyncSession, model: type[Store] | type[Cashier], merchant_id: str,
                    code: str | None, now: datetime) -> str | None:
    """The id of the integrator's store or cashier code, created on first use."""
    if not code:
        return None
    key = (merchant_id, model.__tablename__, code)
    if key in _CODES:
        return _CODES[key]
    found: str | None = await session.scalar(
        select(model.id).where(model.merchant_id == merchant_id, model.code == code))
    if found is not None:
        if len(_CODES) > 100_000:
            _CODES.clear()
        _CODES[key] = found
        return found
    row = model(id=new_id("sto" if model is Store else "csh"), merchant_id=merchant_id,
                code=code, created_at=now)
    session.add(row)
    await session.flush()
    return row.id
