"""From validated request schemas to the core's commands (kopecks and point hundredths)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from core.domain.money import to_minor
from core.services.customers import CustomerRef, RegisterCustomer
from core.services.sales_input import LineInput, RefundInput, RefundLineInput, SaleInput
from merchant.api.schemas import CustomerCreate, CustomerRefIn, RefundIn, SaleIn

CENT = Decimal("0.01")


def customer_ref(value: CustomerRefIn) -> CustomerRef:
    return CustomerRef(phone=value.phone, card=value.card, qr=value.qr)


def ref(value: CustomerRefIn | None) -> CustomerRef | None:
    return None if value is None else customer_ref(value)


def register_command(body: CustomerCreate, channel: str = "api") -> RegisterCustomer:
    referrer = None
    if body.referrer is not None:
        referrer = CustomerRef(phone=body.referrer.phone, card=body.referrer.card,
                               code=body.referrer.code)
    return RegisterCustomer(phone=body.phone, name=body.name, birth_date=body.birth_date,
                            card=body.card, referrer=referrer, source=body.source, channel=channel)


def sale_input(body: SaleIn) -> SaleInput:
    lines = [
        LineInput(
            line_id=line.line_id,
            amount_minor=to_minor((line.price * line.quantity).quantize(CENT, ROUND_HALF_UP)),
            sku=line.sku,
            name=line.name,
            category=line.category,
            price_minor=to_minor(line.price),
            quantity=str(line.quantity.normalize()),
        )
        for line in body.lines or []
    ]
    return SaleInput(
        receipt_id=body.receipt_id,
        total_minor=to_minor(body.total),
        customer=ref(body.customer),
        lines=lines,
        redeem_cp=to_minor(body.redeem),
        store_code=body.store_id,
        cashier_code=body.cashier_id,
        occurred_at=body.occurred_at,
        confirmation_code=body.confirmation_code,
    )


def refund_input(body: RefundIn) -> RefundInput:
    return RefundInput(
        refund_key=body.refund_id,
        amount_minor=to_minor(body.amount) if body.amount is not None else None,
        lines=[
            RefundLineInput(
                line_id=line.line_id,
                quantity=str(line.quantity) if line.quantity is not None else None,
                amount_minor=to_minor(line.amount) if line.amount is not None else None,
            )
            for line in body.lines or []
        ],
        occurred_at=body.occurred_at,
    )
