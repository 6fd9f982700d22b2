"""A request's identity must not change between releases.

A till that repeats a sale or refund registered by an earlier version must get the first
answer, not a 409 "another body": the stored digests were made by the code of that version.
The values below were made by the first release's digest (dataclasses.asdict, canonical JSON).
"""

from __future__ import annotations

from datetime import UTC, datetime

from core.services.customers import CustomerRef
from core.services.sales_input import LineInput, RefundInput, RefundLineInput, SaleInput


def test_a_full_sale_keeps_its_digest():
    sale = SaleInput("r-1", 125990, CustomerRef(phone="+79161234567"),
                     [LineInput("1", 125990, "sku-1", "Кофе", "drinks", 62995, "2")],
                     1000, "s1", "c1", datetime(2026, 11, 1, 9, 30, tzinfo=UTC), "123456")
    assert sale.digest() == "082bf4070417bfdb0ab8bde362290171b331fb066e9d70b8937b096fd0e1c3a1"


def test_the_confirmation_code_is_not_part_of_a_sale():
    first = SaleInput("r-2", 5000)
    assert first.digest() == "0b155be35cfc39b2a712dd639d51001c0ea71a4abaa5061be1d4a2bf54d7860e"
    assert SaleInput("r-2", 5000, confirmation_code="654321").digest() == first.digest()
    assert SaleInput("r-2", 5001).digest() != first.digest()


def test_a_refund_keeps_its_digest():
    refund = RefundInput("rf-1", None, [RefundLineInput("1", "1")], None)
    assert refund.digest() == "aba14fc1452f461f601819d61f02d0112d9d6888b8139535c3e687f8c91c107c"
