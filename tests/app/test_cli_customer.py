"""`kartochka customer merge` and `kartochka customer change-phone`, as an operator runs them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.container import build_core
from core.config import Settings
from core.errors import CustomerNotFound
from core.services.customers import CustomerRef, RegisterCustomer, customer_answer, register_customer
from core.services.merchants import get_merchant
from core.services.purchases import register_sale
from core.services.sales_input import SaleInput

PHONES = ("+79161111111", "+79162222222")


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
         ) -> tuple[str, str]:
    """A merchant `shop` with two customers who bought something; (first id, second id)."""
    monkeypatch.setenv("KARTOCHKA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/k.db")
    monkeypatch.delenv("KARTOCHKA_SECRET_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    assert main(["merchant", "create", "--name", "Shop", "--slug", "shop"]) == 0

    async def customers() -> tuple[str, str]:
        core = await build_core(Settings())
        try:
            merchant = await get_merchant(core.ctx, "shop")
            ids = []
            for n, phone in enumerate(PHONES):
                _, body = await register_customer(core.ctx, merchant.id, RegisterCustomer(phone=phone))
                await register_sale(core.ctx, merchant.id, SaleInput(
                    receipt_id=f"r-{n}", total_minor=100_000, customer=CustomerRef(phone=phone)))
                ids.append(body["id"])
            return ids[0], ids[1]
        finally:
            await core.close()

    ids = asyncio.run(customers())
    capsys.readouterr()
    return ids


def read(customer_id: str) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        core = await build_core(Settings())
        try:
            merchant = await get_merchant(core.ctx, "shop")
            return await customer_answer(core.ctx, merchant.id, customer_id)
        finally:
            await core.close()

    return asyncio.run(go())


def test_merge_moves_the_balance_and_prints_one_line(shop, capsys):
    first, second = shop

    code = main(["customer", "merge", "--merchant", "shop", "--from", second, "--into", first])

    out = capsys.readouterr().out
    assert code == 0
    assert out.count("\n") == 1
    assert second in out and first in out and "100.00" in out
    assert read(first)["balance"]["available"] == "100.00"
    with pytest.raises(CustomerNotFound):
        read(second)


def test_merge_of_an_unknown_customer_fails_with_one_line(shop, capsys):
    first, _ = shop

    code = main(["customer", "merge", "--merchant", "shop", "--from", "cus_nope", "--into", first])

    captured = capsys.readouterr()
    assert code != 0
    assert captured.out == ""
    assert captured.err == "error: no such customer\n"
    assert read(first)["balance"]["available"] == "50.00"


def test_merge_into_itself_and_unknown_merchant_fail(shop, capsys):
    first, second = shop
    assert main(["customer", "merge", "--merchant", "shop", "--from", first, "--into", first]) == 1
    assert main(["customer", "merge", "--merchant", "nope", "--from", second, "--into", first]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert read(second)["balance"]["available"] == "50.00"


def test_change_phone_prints_the_masked_number(shop, capsys):
    first, _ = shop

    code = main(["customer", "change-phone", "--merchant", "shop", "--customer", first,
                 "--phone", "+79163333333"])

    out = capsys.readouterr().out
    assert code == 0
    assert out == f"customer {first} now has phone +7916***3333\n"
    assert read(first)["phone"] == "+79163333333"


def test_change_phone_to_a_taken_number_says_merge(shop, capsys):
    first, second = shop

    code = main(["customer", "change-phone", "--merchant", "shop", "--customer", first,
                 "--phone", PHONES[1]])

    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "merge" in err and second in err
    assert read(first)["phone"] == PHONES[0]


def test_change_phone_to_an_invalid_number_fails(shop, capsys):
    first, _ = shop
    code = main(["customer", "change-phone", "--merchant", "shop", "--customer", first,
                 "--phone", "not a phone"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
