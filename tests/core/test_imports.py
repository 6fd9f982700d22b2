"""Customer import from CSV, as a merchant moving their base to Kartochka sees it."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from core.db.models import Customer, OutboxEvent
from core.errors import CustomerNotFound
from core.services.customers import (
    CustomerRef,
    RegisterCustomer,
    lookup_answer,
    register_customer,
)
from core.services.history import ledger_page
from core.services.imports import (
    RowError,
    import_customers,
    parse_balance,
    parse_expiry,
    read_csv,
)
from core.services.programs import put_program
from tests.conftest import START

HEADER = "phone,card,name,birth_date,gender,tier,balance,balance_expires_at\n"


def csv_bytes(*lines: str, header: str = HEADER) -> bytes:
    return (header + "".join(line + "\n" for line in lines)).encode("utf-8")


async def customer(core, merchant_id, phone):
    return await lookup_answer(core.ctx, merchant_id, CustomerRef(phone=phone))


async def customer_row(core, merchant_id, phone) -> Customer:
    async with core.ctx.db.read() as session:
        row = await session.scalar(
            select(Customer).where(Customer.merchant_id == merchant_id, Customer.phone == phone))
    assert row is not None
    return row


async def customer_count(core, merchant_id) -> int:
    async with core.ctx.db.read() as session:
        return int(await session.scalar(
            select(func.count()).select_from(Customer).where(Customer.merchant_id == merchant_id)))


async def two_tiers(core, merchant_id):
    await put_program(core.ctx, merchant_id, {"tiers": [
        {"id": "base", "name": "Base"},
        {"id": "gold", "name": "Gold", "accrual_percent": "10", "threshold": "50000"},
    ]})


async def test_utf8_comma_file_creates_customers_with_every_column(core, merchant_id):
    data = csv_bytes(
        "+79161234567,2000000000017,Anna Petrova,1990-05-17,f,,150.50,31.12.2026",
        "8 (916) 765-43-21,,Boris,17.05.1985,M,,,",
    )
    result = await import_customers(core.ctx, merchant_id, data, filename="base.csv")
    assert result.errors == []
    assert (result.created, result.updated, result.unchanged, result.balances_credited) == (2, 0, 0, 1)

    anna = await customer(core, merchant_id, "+79161234567")
    assert anna["name"] == "Anna Petrova"
    assert anna["birth_date"] == "1990-05-17"
    assert anna["card_number"] == "2000000000017"
    assert anna["balance"]["available"] == "150.50"
    boris = await customer(core, merchant_id, "+79167654321")
    assert boris["birth_date"] == "1985-05-17"
    assert boris["card_number"]  # a virtual card, as at registration
    assert boris["balance"]["available"] == "0.00"
    row = await customer_row(core, merchant_id, "+79167654321")
    assert (row.gender, row.registration_channel, row.tier_manual) == ("m", "import", False)


async def test_cp1251_semicolon_file_from_excel(core, merchant_id):
    data = ("Phone;Name;Gender;Balance\r\n"
            "89161234567;Иванова Мария;ж;1 200,50\r\n"
            "+7 916 765 43 21;Сергей Ёлкин;М;\r\n").encode("cp1251")
    result = await import_customers(core.ctx, merchant_id, data, filename="клиенты.csv")
    assert result.errors == []
    assert result.created == 2
    maria = await customer(core, merchant_id, "+79161234567")
    assert maria["name"] == "Иванова Мария"
    assert maria["balance"]["available"] == "1200.50"
    assert (await customer(core, merchant_id, "+79167654321"))["name"] == "Сергей Ёлкин"
    assert (await customer_row(core, merchant_id, "+79161234567")).gender == "f"


async def test_utf8_with_bom_and_a_single_column(core, merchant_id):
    data = "\ufeffPHONE\n+79161234567\n".encode()
    result = await import_customers(core.ctx, merchant_id, data, filename="phones.csv")
    assert (result.errors, result.created) == ([], 1)


async def test_dry_run_reports_every_bad_row_by_its_line_and_writes_nothing(core, merchant_id):
    await register_customer(core.ctx, merchant_id, RegisterCustomer(phone="+79160000001",
                                                                    card="CARD-1"))
    data = csv_bytes(
        "+79161234567,,Good,,,,,",                          # line 2
        "12345,,Bad phone,,,,,",                            # line 3
        "",                                                 # line 4: blank, skipped
        '+79161234568,,"Two-line',                          # line 5
        'name",31.02.1990,x,platinum,-5,',                  # line 6 (same row as line 5)
        "+79161234569,,,,,,10.123,2020-01-01",              # line 7
        "+7 916 123-45-67,,Same phone,,,,,",                # line 8: repeats line 2
        "+79161234570,CARD-1,Card of another,,,,,",         # line 9
        "+79161234571,,,,,,,2027-01-01",                    # line 10: expiry without balance
        ",,No phone,,,,,",                                  # line 11
        "+79161234572,,Too,many,values,,,,,",               # line 12
    )
    result = await import_customers(core.ctx, merchant_id, data, filename="base.csv", dry_run=True)
    assert [(e.line, e.field) for e in result.errors] == [
        (3, "phone"),
        (5, "birth_date"), (5, "gender"), (5, "tier"), (5, "balance"),
        (7, "balance"), (7, "balance_expires_at"),
        (8, "phone"),
        (9, "card"),
        (10, "balance_expires_at"),
        (11, "phone"),
        (12, "row"),
    ]
    messages = {(e.line, e.field): e.message for e in result.errors}
    assert "already on line 2" in messages[(8, "phone")]
    assert "another customer" in messages[(9, "card")]
    assert "base" in messages[(5, "tier")]  # names the tiers there are
    assert str(result.errors[0]).startswith("line 3: phone: ")
    assert result.created == 1  # the one good row, counted but not written
    assert await customer_count(core, merchant_id) == 1

    # Without a dry run the same file writes nothing either: all or nothing.
    again = await import_customers(core.ctx, merchant_id, data, filename="base.csv")
    assert again.errors == result.errors
    assert await customer_count(core, merchant_id) == 1
    with pytest.raises(CustomerNotFound):
        await customer(core, merchant_id, "+79161234567")


async def test_header_problems_are_reported_on_line_one(core, merchant_id):
    result = await import_customers(core.ctx, merchant_id, b"name,email\nAnna,a@b.c\n",
                                    filename="x.csv", dry_run=True)
    assert [(e.line, e.field) for e in result.errors] == [(1, "header"), (1, "phone")]
    assert "'email'" in result.errors[0].message
    empty = await import_customers(core.ctx, merchant_id, b"", filename="x.csv")
    assert [(e.line, e.field) for e in empty.errors] == [(1, "file")]


async def test_dry_run_of_a_good_file_counts_what_would_happen(core, merchant_id):
    await register_customer(core.ctx, merchant_id, RegisterCustomer(phone="+79161234567"))
    data = csv_bytes("+79161234567,,Anna,,,,100,", "+79161234568,,,,,,,")
    result = await import_customers(core.ctx, merchant_id, data, filename="base.csv", dry_run=True)
    assert result.errors == []
    assert (result.created, result.updated, result.balances_credited) == (1, 1, 1)
    assert await customer_count(core, merchant_id) == 1
    assert (await customer(core, merchant_id, "+79161234567"))["balance"]["available"] == "0.00"


async def test_reimport_changes_nothing_and_credits_the_balance_once(core, merchant_id):
    data = csv_bytes("+79161234567,2000000000017,Anna,1990-05-17,f,,250,",
                     "+79161234568,,Boris,,,,,")
    first = await import_customers(core.ctx, merchant_id, data, filename="base.csv")
    assert (first.created, first.balances_credited) == (2, 1)
    second = await import_customers(core.ctx, merchant_id, data, filename="base.csv")
    assert second.errors == []
    assert (second.created, second.updated, second.unchanged, second.balances_credited) == (0, 0, 2, 0)

    anna = await customer(core, merchant_id, "+79161234567")
    assert anna["balance"]["available"] == "250.00"
    page = await ledger_page(core.ctx, merchant_id, anna["id"], None, 50)
    assert [e["kind"] for e in page["items"]] == ["opening_balance"]
    assert await customer_count(core, merchant_id) == 2
    async with core.ctx.db.read() as session:
        events = list(await session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "CustomersImported").order_by(OutboxEvent.id)))
    assert [e.payload["created"] for e in events] == [2, 0]
    assert events[1].payload["unchanged"] == 2


async def test_opening_balance_is_a_tagged_lot_with_its_expiry(core, merchant_id):
    data = csv_bytes("+79161234567,,,,,,1500.5,31.12.2026",
                     "+79161234568,,,,,,\"99,99\",",
                     "+79161234569,,,,,,10,2026-06-01T12:00:00+03:00")
    await import_customers(core.ctx, merchant_id, data, filename="old-crm.csv", actor="cli")

    anna = await customer(core, merchant_id, "+79161234567")
    assert anna["balance"]["available"] == "1500.50"
    assert anna["balance"]["expiring"] == [{"amount": "1500.50", "expires_at": "2026-12-31T21:00:00Z"}]
    [entry] = (await ledger_page(core.ctx, merchant_id, anna["id"], None, 10))["items"]
    assert entry["kind"] == "opening_balance"
    assert entry["mechanic"] == "import"
    assert "old-crm.csv" in entry["reason"]
    # Points last through 31 December in the merchant's time (Moscow, UTC+3).
    assert entry["expires_at"] == "2026-12-31T21:00:00Z"

    boris = await customer(core, merchant_id, "+79161234568")
    [entry] = (await ledger_page(core.ctx, merchant_id, boris["id"], None, 10))["items"]
    assert entry["points"] == "99.99"
    assert entry["expires_at"] == "2027-03-01T09:00:00Z"  # the program's 365 days from now
    third = await customer(core, merchant_id, "+79161234569")
    [entry] = (await ledger_page(core.ctx, merchant_id, third["id"], None, 10))["items"]
    assert entry["expires_at"] == "2026-06-01T09:00:00Z"


async def test_tier_from_the_file_is_a_manual_tier(core, merchant_id):
    await two_tiers(core, merchant_id)
    await register_customer(core.ctx, merchant_id, RegisterCustomer(phone="+79161234568"))
    data = csv_bytes("+79161234567,,,,,gold,,", "+79161234568,,,,,gold,,", "+79161234569,,,,,,,")
    result = await import_customers(core.ctx, merchant_id, data, filename="base.csv")
    assert (result.created, result.updated) == (2, 1)
    for phone in ("+79161234567", "+79161234568"):
        assert (await customer(core, merchant_id, phone))["tier"]["id"] == "gold"
        assert (await customer_row(core, merchant_id, phone)).tier_manual is True
    assert (await customer(core, merchant_id, "+79161234569"))["tier"]["id"] == "base"
    assert (await customer_row(core, merchant_id, "+79161234569")).tier_manual is False


async def test_existing_customer_is_filled_only_where_the_file_says(core, merchant_id, clock):
    await register_customer(core.ctx, merchant_id, RegisterCustomer(
        phone="+79161234567", name="Anna", birth_date=date(1990, 5, 17)))
    clock.advance_to(START + timedelta(days=1))
    data = csv_bytes("+79161234567,PHYS-77,,,f,,,")
    result = await import_customers(core.ctx, merchant_id, data, filename="base.csv")
    assert (result.created, result.updated) == (0, 1)
    anna = await customer(core, merchant_id, "+79161234567")
    assert (anna["name"], anna["birth_date"]) == ("Anna", "1990-05-17")  # empty cells erase nothing
    assert anna["card_number"] == "PHYS-77"  # the newest card is the one shown
    assert (await customer_row(core, merchant_id, "+79161234567")).gender == "f"
    # The card is now hers: the same file again is not "another customer's card".
    again = await import_customers(core.ctx, merchant_id, data, filename="base.csv")
    assert (again.errors, again.unchanged) == ([], 1)


async def test_a_base_larger_than_one_batch(core, merchant_id):
    data = ("phone,card,name\n" + "".join(f"+7916{n:07d},,Customer {n}\n" for n in range(1, 1202))).encode()
    result = await import_customers(core.ctx, merchant_id, data, filename="big.csv")
    assert (result.errors, result.rows, result.created) == ([], 1201, 1201)
    assert await customer_count(core, merchant_id) == 1201


@pytest.mark.parametrize("raw, cp", [
    ("0", 0), ("10", 1000), ("10.5", 1050), ("10.500", 1050), ("1 234,56", 123456),
    ("1\u00a0000", 100000),
])
def test_balance_accepts_decimal_comma_and_thousands(raw, cp):
    assert parse_balance(raw) == cp


@pytest.mark.parametrize("raw, message", [
    ("-1", "negative"), ("1.234", "2 decimals"), ("1e3", "not a number"), ("abc", "not a number"),
    ("1,2.3", "not a number"), ("NaN", "not a number"),
])
def test_balance_refuses(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_balance(raw)


@pytest.mark.parametrize("raw, message", [
    ("2026-02-28", "not in the future"), ("28.02.2026", "not in the future"),
    ("2026-03-01T12:00:00+03:00", "not in the future"),
    ("2026-13-01", "not a date on the calendar"), ("tomorrow", "not a date"),
    ("31.12.9999", "too far"),
])
def test_expiry_refuses(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_expiry(raw, ZoneInfo("Europe/Moscow"), START)


def test_line_numbers_are_physical_lines():
    parsed = read_csv(b'phone;name\r\n\r\n+79161234567;"A\r\nB"\r\n+79161234568;C\r\n')
    assert [line for line, _ in parsed.rows] == [3, 5]
    assert parsed.rows[0][1] == {"phone": "+79161234567", "name": "A\r\nB"}


def test_a_file_in_neither_encoding_names_its_line():
    parsed = read_csv(b"phone\n+79161234567\n\x98\n")
    assert parsed.errors == [RowError(3, "file", "the file is neither UTF-8 nor cp1251 text")]


async def _planner_knows_customers(core) -> bool:
    """Whether PostgreSQL has planner statistics of the customers table."""
    from sqlalchemy import text

    async with core.ctx.db.read() as session:
        return bool(await session.scalar(text(
            "SELECT reltuples > 0 FROM pg_class WHERE relname = 'customers'")))


async def test_a_big_import_leaves_the_planner_knowing_the_new_customers(core, merchant_id,
                                                                          monkeypatch):
    """Tills look the imported customers up at once: the statistics are gathered right after
    a big import, not whenever autovacuum comes round (a small one leaves them alone)."""
    from core.services import imports

    if core.ctx.db.is_sqlite:
        pytest.skip("SQLite's planner takes the unique index without statistics")
    monkeypatch.setattr(imports, "REFRESH_STATISTICS_AFTER", 3)
    await import_customers(core.ctx, merchant_id, csv_bytes(
        "+79160000001,,A,,,,,", "+79160000002,,B,,,,,"), filename="small.csv")
    assert not await _planner_knows_customers(core)
    result = await import_customers(core.ctx, merchant_id, csv_bytes(
        *(f"+7916000001{i},,C{i},,,,," for i in range(3))), filename="big.csv")
    assert result.created == 3
    assert await _planner_knows_customers(core)
