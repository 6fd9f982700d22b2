"""Sales from a till: preview (writes nothing) and register (one transaction, idempotent)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Cashier, Customer, Merchant, Purchase, PurchaseLine, Store
from core.db.uow import UnitOfWork
from core.domain.money import from_minor
from core.domain.program import Program
from core.domain.sale import SaleQuote, evaluate_sale
from core.errors import CustomerNotFound, ReceiptConflict
from core.ids import new_id
from core.services.context import CoreContext
from core.services.customers import find_customer
from core.services.jobs import add_job
from core.services.ledger import CustomerLedger
from core.services.programs import current_program
from core.services.sales_input import SaleInput
from core.services.tiers import reevaluate_tier
from core.services.views import balance_json, tier_view


@dataclass(frozen=True)
class SaleAnswer:
    created: bool
    body: dict[str, Any]


def _quote_json(quote: SaleQuote) -> dict[str, Any]:
    return {
        "max_redeem": str(from_minor(quote.max_redeem_cp)),
        "redeem": str(from_minor(quote.redeem_cp)),
        "discount": str(from_minor(quote.discount_minor)),
        "accrual": str(from_minor(quote.accrual_cp)),
        "lines": [
            {
                "line_id": line.line_id,
                "amount": str(from_minor(line.amount_minor)),
                "discount": str(from_minor(line.discount_minor)),
                "redeemed": str(from_minor(line.redeemed_cp)),
                "accrued": str(from_minor(line.accrued_cp)),
            }
            for line in quote.lines
        ],
        "breakdown": {k: str(from_minor(v)) for k, v in quote.breakdown.items()},
    }


async def preview_sale(ctx: CoreContext, merchant_id: str, sale: SaleInput) -> dict[str, Any]:
    """What this sale would do, computed exactly as register would; nothing is written."""
    at = sale.occurred_at or ctx.now()
    async with ctx.db.read() as session:
        merchant = await session.get(Merchant, merchant_id)
        assert merchant is not None
        program = await current_program(session, merchant)
        customer = await _customer_of(session, merchant, sale, at)
        available = 0
        tier = program.tiers[0]
        if customer is not None:
            ledger = await CustomerLedger(session, customer, at).load()
            available = ledger.balance(at).available_cp
            tier = program.tier(customer.tier_id)
        quote = evaluate_sale(
            program, tier, sale.sale_lines(), sale.total_minor, sale.redeem_cp, available
        )
        body = _quote_json(quote)
        body["tier"] = tier_view(
            program, tier, customer.lifetime_spend_minor if customer else 0
        ).to_json()
        body["customer_id"] = customer.id if customer else None
        body["available"] = str(from_minor(available))
        return body


async def register_sale(ctx: CoreContext, merchant_id: str, sale: SaleInput) -> SaleAnswer:
    """Register a sale once per receipt_id; a repeat gets the first answer, another body a 409."""
    digest = sale.digest()
    for attempt in range(3):
        try:
            return await _register_once(ctx, merchant_id, sale, digest)
        except IntegrityError:
            # A concurrent insert of the same receipt, store or cashier won; look again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _existing(session: AsyncSession, merchant_id: str, receipt_id: str,
                    digest: str) -> SaleAnswer | None:
    found = await session.scalar(
        select(Purchase).where(Purchase.merchant_id == merchant_id, Purchase.receipt_id == receipt_id)
    )
    if found is None:
        return None
    if found.request_digest != digest:
        raise ReceiptConflict("this receipt_id was registered with another body",
                              purchase_id=found.id)
    return SaleAnswer(False, found.response)


async def _customer_of(
    session: AsyncSession, merchant: Merchant, sale: SaleInput, at: datetime, lock: bool = False
) -> Customer | None:
    if sale.customer is None:
        return None
    customer = await find_customer(session, merchant, sale.customer, at, lock=lock)
    if customer is None:
        raise CustomerNotFound("no customer with this phone, card or qr", field="customer")
    return customer


async def _register_once(
    ctx: CoreContext, merchant_id: str, sale: SaleInput, digest: str
) -> SaleAnswer:
    now = ctx.now()
    at = sale.occurred_at or now
    async with ctx.uow() as uow:
        session = uow.session
        merchant = await session.get(Merchant, merchant_id)
        assert merchant is not None
        # Lock the customer before looking for the receipt: two identical sales in
        # flight then queue here, and the second finds the first's purchase.
        customer = await _customer_of(session, merchant, sale, at, lock=True)
        previous = await _existing(session, merchant_id, sale.receipt_id, digest)
        if previous is not None:
            return previous
        program = await current_program(session, merchant)
        ledger = None
        available = 0
        tier = program.tiers[0]
        if customer is not None:
            ledger = await CustomerLedger(session, customer, now).load()
            available = ledger.balance(at).available_cp
            tier = program.tier(customer.tier_id)
        quote = evaluate_sale(
            program, tier, sale.sale_lines(), sale.total_minor, sale.redeem_cp, available
        )
        purchase = Purchase(
            id=new_id("pur"),
            merchant_id=merchant_id,
            receipt_id=sale.receipt_id,
            customer_id=customer.id if customer else None,
            store_id=await _code_row(session, Store, merchant_id, sale.store_code, now),
            cashier_id=await _code_row(session, Cashier, merchant_id, sale.cashier_code, now),
            occurred_at=at,
            created_at=now,
            total_minor=sale.total_minor,
            discount_minor=quote.discount_minor,
            redeemed_cp=quote.redeem_cp,
            accrued_cp=quote.accrual_cp if customer else 0,
            refunded_minor=0,
            program_version=merchant.program_version,
            tier_id=tier.id if customer else None,
            breakdown={k: v for k, v in quote.breakdown.items()} if customer else {},
            request_digest=digest,
            response={},
        )
        session.add(purchase)
        await session.flush()
        _add_lines(session, purchase, sale, quote, with_points=customer is not None)
        body = _quote_json(quote)
        body.pop("max_redeem")
        body.pop("redeem")
        body = {
            "purchase_id": purchase.id,
            "receipt_id": sale.receipt_id,
            "customer_id": customer.id if customer else None,
            "total": str(from_minor(sale.total_minor)),
            "redeemed": str(from_minor(quote.redeem_cp)),
            "discount": body["discount"],
            "accrued": body["accrual"] if customer else "0.00",
            "lines": [
                {k: v for k, v in line.items() if k != "amount"} for line in body["lines"]
            ],
            "breakdown": body["breakdown"] if customer else {},
            "balance": None,
            "tier": None,
        }
        if customer is not None and ledger is not None:
            await _apply_points(uow, program, merchant, customer, ledger, purchase, quote, at, now)
            body["balance"] = balance_json(ledger.balance(at), customer.debt_cp)
            body["tier"] = tier_view(
                program, program.tier(customer.tier_id), customer.lifetime_spend_minor
            ).to_json()
        else:
            for line in body["lines"]:
                line["accrued"] = "0.00"
        purchase.response = body
        uow.emit(merchant_id, "PurchaseRegistered",
                 {"purchase_id": purchase.id, "receipt_id": sale.receipt_id,
                  "customer_id": purchase.customer_id, "total": body["total"],
                  "redeemed": body["redeemed"], "accrued": body["accrued"],
                  "store_id": purchase.store_id},
                 occurred_at=at, now=now, customer_id=purchase.customer_id)
        await uow.commit()
    return SaleAnswer(True, body)


def _add_lines(session: AsyncSession, purchase: Purchase, sale: SaleInput, quote: SaleQuote,
               *, with_points: bool) -> None:
    details = {x.line_id: x for x in sale.lines}
    for position, line in enumerate(quote.lines):
        given = details.get(line.line_id)
        session.add(PurchaseLine(
            id=new_id("pln"),
            merchant_id=purchase.merchant_id,
            purchase_id=purchase.id,
            position=position,
            line_id=line.line_id,
            sku=given.sku if given else None,
            name=given.name if given else None,
            category=given.category if given else None,
            price_minor=given.price_minor if given else None,
            quantity=given.quantity if given else None,
            amount_minor=line.amount_minor,
            discount_minor=line.discount_minor,
            redeemed_cp=line.redeemed_cp,
            accrued_cp=line.accrued_cp if with_points else 0,
            refunded_minor=0,
        ))


async def _apply_points(
    uow: UnitOfWork, program: Program, merchant: Merchant, customer: Customer,
    ledger: CustomerLedger, purchase: Purchase, quote: SaleQuote, at: datetime, now: datetime,
) -> None:
    tier = program.tier(customer.tier_id)
    if quote.redeem_cp:
        ledger.spend("redemption", quote.redeem_cp, at, purchase_id=purchase.id)
        uow.emit(merchant.id, "PointsRedeemed",
                 {"customer_id": customer.id, "purchase_id": purchase.id,
                  "points": str(from_minor(quote.redeem_cp))},
                 occurred_at=at, now=now, customer_id=customer.id)
    if quote.accrual_cp:
        lot = ledger.credit("accrual", quote.accrual_cp, at,
                            activation_days=program.activation_delay_days,
                            lifetime_days=program.lifetime_for(tier),
                            mechanic="base", purchase_id=purchase.id)
        if program.activation_delay_days and lot.available_at is not None:
            await add_job(uow.session, "points.activate", f"activate:{lot.id}", lot.available_at,
                          merchant.id, {"customer_id": customer.id, "lot_id": lot.id}, now)
        uow.emit(merchant.id, "PointsAccrued",
                 {"customer_id": customer.id, "purchase_id": purchase.id,
                  "points": str(from_minor(quote.accrual_cp)),
                  "available_at": lot.available_at.isoformat() if lot.available_at else None},
                 occurred_at=at, now=now, customer_id=customer.id)
    spent = purchase.total_minor if program.spend_basis == "gross" else (
        purchase.total_minor - purchase.discount_minor)
    customer.lifetime_spend_minor += spent
    customer.purchase_count += 1
    if customer.last_purchase_at is None or customer.last_purchase_at < at:
        customer.last_purchase_at = at
    ledger.refresh_figures(at)
    reevaluate_tier(uow, program, customer, at, now)


async def _code_row(session: AsyncSession, model: type[Store] | type[Cashier], merchant_id: str,
                    code: str | None, now: datetime) -> str | None:
    """The id of the integrator's store or cashier code, created on first use."""
    if not code:
        return None
    found: str | None = await session.scalar(
        select(model.id).where(model.merchant_id == merchant_id, model.code == code)
    )
    if found is not None:
        return found
    row = model(id=new_id("sto" if model is Store else "csh"), merchant_id=merchant_id,
                code=code, created_at=now)
    session.add(row)
    await session.flush()
    return row.id
