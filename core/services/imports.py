"""Customer import from CSV: one service for the CLI now and the merchant console later.

A merchant moving to Kartochka brings their base as a spreadsheet: UTF-8 or cp1251
(what Excel saves in Russia), `,` or `;` between values, one customer a line with
the columns phone, card, name, birth_date, gender, tier, balance and
balance_expires_at (only phone is required; header names are case-insensitive).

The import is idempotent by phone: a customer already in the base is updated with
the values the file gives (an empty cell changes nothing), and an opening balance
is credited once per customer, so running the same file twice changes nothing the
second time.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Card, Customer, LedgerEntry, Merchant
from core.domain.money import to_minor
from core.domain.program import Program
from core.errors import Conflict, InvalidPhone, MerchantNotFound
from core.ids import new_id, random_code
from core.phones import normalise_phone
from core.services.context import CoreContext
from core.services.customers import attach_card
from core.services.ledger import CustomerLedger
from core.services.programs import current_program

T = TypeVar("T")

COLUMNS = ("phone", "card", "name", "birth_date", "gender", "tier", "balance", "balance_expires_at")
OPENING_BALANCE = "opening_balance"
BATCH_ROWS = 500
MAX_BALANCE = Decimal("1e12")
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
GENDERS = {"m": "m", "f": "f", "м": "m", "ж": "f"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RU_DATE = re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}$")
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")


class RowError(NamedTuple):
    """One problem of the file: the physical line (the header is line 1), the column, what is wrong."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass
class ImportResult:
    """What an import did (or, on a dry run, would do) and every problem found."""

    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    balances_credited: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def written(self) -> bool:
        return not self.dry_run and not self.errors


@dataclass(frozen=True)
class CustomerRow:
    """A line of the file as read; None means the cell was empty (leave the customer's value)."""

    line: int
    phone: str
    card: str | None = None
    name: str | None = None
    birth_date: date | None = None
    gender: str | None = None
    tier: str | None = None
    balance_cp: int | None = None
    balance_expires_at: datetime | None = None


@dataclass(frozen=True)
class RowRules:
    """What a row is checked against: the merchant's country, time zone, tiers, and now."""

    country: str
    timezone: ZoneInfo
    tier_ids: tuple[str, ...]
    now: datetime


async def import_customers(
    ctx: CoreContext,
    merchant_id: str,
    data: bytes,
    *,
    filename: str,
    dry_run: bool = False,
    actor: str | None = None,
) -> ImportResult:
    """Import customers from the bytes of a CSV file.

    All or nothing: the whole file is validated first, and if any row has an error
    nothing is written and every error is reported (with its line number), so a
    merchant migrating their base fixes the file and runs it again rather than
    hunting for which half went in. A dry run validates and counts the same way
    and never writes.

    A valid file is written in transactions of BATCH_ROWS rows, so tills are not
    held up behind one long write. Should a batch fail after validation (someone
    took a card in between), the batches before it stay; running the file again
    completes the import, since it is idempotent by phone.
    """
    now = ctx.now()
    parsed = read_csv(data)
    errors = parsed.errors
    rows: list[CustomerRow] = []
    async with ctx.db.read() as session:
        merchant = await session.get(Merchant, merchant_id)
        if merchant is None:
            raise MerchantNotFound("no such merchant")
        program = await current_program(session, merchant)
        rules = RowRules(merchant.country, ZoneInfo(merchant.timezone),
                         tuple(t.id for t in program.tiers), now)
        for line, cells in parsed.rows:
            row, row_errors = validate_row(line, cells, rules)
            errors.extend(row_errors)
            rows.append(row)
        _check_repeats(rows, errors)
        states: dict[str, _Existing] = {}
        for chunk in _chunks([r.phone for r in rows if r.phone], BATCH_ROWS):
            found = await _load_existing(session, merchant_id, chunk)
            states.update({phone: state for phone, (state, _) in found.items()})
        owners = await _card_owners(session, merchant_id, [r.card for r in rows if r.card])
    _check_against_base(rows, states, owners, errors)
    bad_lines = {error.line for error in errors}
    rows = [row for row in rows if row.line not in bad_lines]
    result = ImportResult(dry_run=dry_run, rows=parsed.count,
                          errors=sorted(errors, key=lambda e: e.line))
    if result.errors or dry_run:
        for row in rows:
            _count(result, _plan(row, states.get(row.phone)))
        return result
    batches = list(_chunks(rows, BATCH_ROWS)) or [[]]
    reason = f"opening balance, import of {filename}"[:500]
    for index, batch in enumerate(batches):
        async with ctx.uow() as uow:
            await _write_batch(uow.session, merchant_id, program, batch, result,
                               now=now, reason=reason, actor=actor)
            if index == len(batches) - 1:
                uow.emit(
                    merchant_id,
                    "CustomersImported",
                    {"file": filename, "rows": result.rows, "created": result.created,
                     "updated": result.updated, "unchanged": result.unchanged,
                     "balances_credited": result.balances_credited},
                    occurred_at=now,
                    now=now,
                )
            await uow.commit()
    return result


# --- reading the file -------------------------------------------------------------


def decode_csv(data: bytes) -> str | RowError:
    """The text of the file: UTF-8 (with or without a BOM), else cp1251."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return RowError(1, "file", "the file is UTF-16; save it as CSV in UTF-8 or cp1251")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1251")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return RowError(line, "file", "the file is neither UTF-8 nor cp1251 text")


def detect_delimiter(text: str) -> str:
    """`;` or `,`: whichever the header line has more of (`,` for a single column)."""
    header = text.splitlines()[0] if text else ""
    return ";" if header.count(";") > header.count(",") else ","


@dataclass
class CsvRows:
    """The readable rows of a file as (line, {column: stripped cell}), and the file's own errors."""

    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    count: int = 0  # non-blank lines after the header, readable or not


def read_csv(data: bytes) -> CsvRows:
    """Decode, find the delimiter, check the header and split the rows; blank rows are skipped."""
    text = decode_csv(data)
    if isinstance(text, RowError):
        return CsvRows(errors=[text])
    delimiter = detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    parsed = CsvRows()
    errors, rows = parsed.errors, parsed.rows
    columns: list[str | None] | None = None
    consumed = 0
    while True:
        line = consumed + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(line, "file", f"cannot read this line: {exc}"))
            break
        consumed = reader.line_num
        if columns is None:
            columns = _read_header(cells, errors)
            if "phone" not in columns:
                break
            continue
        values = [c.strip() for c in cells]
        if not any(values):
            continue
        parsed.count += 1
        if len(values) > len(columns):
            errors.append(RowError(
                line, "row",
                f"{len(values)} values but the header names {len(columns)} columns; "
                f"put values that contain {delimiter!r} in double quotes",
            ))
            continue
        rows.append((line, {name: value for name, value in zip(columns, values, strict=False)
                            if name is not None and value}))
    if columns is None and not errors:
        errors.append(RowError(1, "file", "the file is empty; the first line must name the columns"))
    return parsed


def _read_header(cells: Sequence[str], errors: list[RowError]) -> list[str | None]:
    """Column names in order; None where a column is unknown or repeated (reported)."""
    columns: list[str | None] = []
    for cell in cells:
        name = cell.strip().lstrip("\ufeff").lower()
        if name not in COLUMNS:
            shown = repr(cell.strip()) if cell.strip() else f"column {len(columns) + 1}"
            errors.append(RowError(1, "header", f"unknown column {shown}; expected {', '.join(COLUMNS)}"))
            columns.append(None)
        elif name in columns:
            errors.append(RowError(1, "header", f"column {name!r} appears twice"))
            columns.append(None)
        else:
            columns.append(name)
    if "phone" not in columns:
        errors.append(RowError(1, "phone", "the header has no 'phone' column; it is required"))
    return columns


# --- checking one row ---------------------------------------------------------------


def validate_row(
    line: int, cells: dict[str, str], rules: RowRules
) -> tuple[CustomerRow, list[RowError]]:
    """The row as far as it reads (phone "" if it does not), and every error of the line.

    The row is fit to import only when the list is empty.
    """
    errors: list[RowError] = []
    today = rules.now.astimezone(rules.timezone).date()

    def check(column: str, parse: Callable[[str], T]) -> T | None:
        raw = cells.get(column)
        if raw is None:
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            errors.append(RowError(line, column, str(exc)))
            return None

    phone = check("phone", lambda raw: parse_phone(raw, rules.country))
    if "phone" not in cells:
        errors.append(RowError(line, "phone", "is empty; every customer needs a phone"))
    row = CustomerRow(
        line=line,
        phone=phone or "",
        card=check("card", parse_card),
        name=check("name", parse_name),
        birth_date=check("birth_date", lambda raw: parse_birth_date(raw, today)),
        gender=check("gender", parse_gender),
        tier=check("tier", lambda raw: parse_tier(raw, rules.tier_ids)),
        balance_cp=check("balance", parse_balance),
        balance_expires_at=check("balance_expires_at",
                                 lambda raw: parse_expiry(raw, rules.timezone, rules.now)),
    )
    if "balance_expires_at" in cells and "balance" not in cells:
        errors.append(RowError(line, "balance_expires_at", "is given without a balance"))
    return row, errors


def parse_phone(raw: str, country: str) -> str:
    try:
        return normalise_phone(raw, country)
    except InvalidPhone as exc:
        raise ValueError(f"{raw!r} is not a valid phone number") from exc


def parse_card(raw: str) -> str:
    if len(raw) > 32:
        raise ValueError("a card number has at most 32 characters")
    return raw


def parse_name(raw: str) -> str:
    if len(raw) > 200:
        raise ValueError("a name has at most 200 characters")
    return raw


def parse_date(raw: str) -> date:
    """YYYY-MM-DD or DD.MM.YYYY."""
    try:
        if _ISO_DATE.match(raw):
            return date.fromisoformat(raw)
        if _RU_DATE.match(raw):
            day, month, year = (int(part) for part in raw.split("."))
            return date(year, month, day)
    except ValueError:
        raise ValueError(f"{raw!r} is not a date on the calendar") from None
    raise ValueError(f"{raw!r} is not a date; write YYYY-MM-DD or DD.MM.YYYY")


def parse_birth_date(raw: str, today: date) -> date:
    value = parse_date(raw)
    if value > today:
        raise ValueError(f"{raw} is in the future")
    if value < EARLIEST_BIRTH_DATE:
        raise ValueError(f"{raw} is before {EARLIEST_BIRTH_DATE.year}")
    return value


def parse_gender(raw: str) -> str:
    value = GENDERS.get(raw.lower())
    if value is None:
        raise ValueError(f"{raw!r} is not a gender; write m or f (м or ж)")
    return value


def parse_tier(raw: str, tier_ids: Sequence[str]) -> str:
    if raw not in tier_ids:
        raise ValueError(f"{raw!r} is not a tier of the current program; tiers: {', '.join(tier_ids)}")
    return raw


def parse_balance(raw: str) -> int:
    """Points in hundredths; a decimal comma and spaces between thousands are fine."""
    text = raw.replace("\u00a0", "").replace(" ", "").replace(",", ".")
    if not _NUMBER.match(text):
        raise ValueError(f"{raw!r} is not a number")
    value = Decimal(text)
    if value < 0:
        raise ValueError(f"{raw} is negative")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{raw} has more than 2 decimals")
    if value >= MAX_BALANCE:
        raise ValueError(f"{raw} is too large")
    return to_minor(value)


def parse_expiry(raw: str, timezone: ZoneInfo, now: datetime) -> datetime:
    """A date (the points last through that day, merchant's time) or an ISO date and time."""
    try:
        if _ISO_DATE.match(raw) or _RU_DATE.match(raw):
            day = parse_date(raw)
            value = datetime.combine(day + timedelta(days=1), time(), timezone)
        else:
            try:
                value = datetime.fromisoformat(raw)
            except ValueError:
                raise ValueError(
                    f"{raw!r} is not a date or time; write YYYY-MM-DD, DD.MM.YYYY or YYYY-MM-DDTHH:MM"
                ) from None
            if value.tzinfo is None:
                value = value.replace(tzinfo=timezone)
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{raw} is too far in the future") from None
    if value <= now:
        raise ValueError(f"{raw} is not in the future")
    return value


# --- checking the file as a whole, against the base ------------------------------------


def _check_repeats(rows: list[CustomerRow], errors: list[RowError]) -> None:
    """A phone or a card given twice is an error on the later line."""
    phones: dict[str, int] = {}
    cards: dict[str, int] = {}
    for row in rows:
        if row.phone:
            first = phones.setdefault(row.phone, row.line)
            if first != row.line:
                errors.append(RowError(row.line, "phone", f"{row.phone} is already on line {first}"))
        if row.card:
            first = cards.setdefault(row.card, row.line)
            if first != row.line:
                errors.append(RowError(row.line, "card", f"{row.card} is already on line {first}"))


@dataclass(frozen=True)
class _Existing:
    """What the import compares a row with: a customer already in the base."""

    id: str
    fields: dict[str, object]
    deleted: bool
    cards: frozenset[str]
    has_opening_balance: bool


@dataclass(frozen=True)
class _CardOwner:
    customer_id: str | None
    status: str


def _check_against_base(
    rows: list[CustomerRow],
    states: dict[str, _Existing],
    owners: dict[str, _CardOwner],
    errors: list[RowError],
) -> None:
    """A deleted customer's phone, a blocked card or another customer's card is an error."""
    for row in rows:
        state = states.get(row.phone)
        if state is not None and state.deleted:
            errors.append(RowError(row.line, "phone", f"{row.phone} belongs to a deleted customer"))
        owner = owners.get(row.card) if row.card else None
        if owner is None:
            continue
        if owner.status != "active":
            errors.append(RowError(row.line, "card", f"card {row.card} is blocked"))
        elif row.phone and owner.customer_id not in (None, state.id if state else None):
            errors.append(RowError(row.line, "card", f"card {row.card} belongs to another customer"))


async def _load_existing(
    session: AsyncSession, merchant_id: str, phones: list[str], *, lock: bool = False
) -> dict[str, tuple[_Existing, Customer]]:
    """The customers with these phones, with their active cards and opening-balance flag."""
    if not phones:
        return {}
    query = select(Customer).where(Customer.merchant_id == merchant_id, Customer.phone.in_(phones))
    if lock:
        query = query.with_for_update()
    customers = list(await session.scalars(query))
    ids = [c.id for c in customers]
    cards: dict[str, set[str]] = {}
    opened: set[str] = set()
    if ids:
        for customer_id, number in await session.execute(
            select(Card.customer_id, Card.number).where(
                Card.merchant_id == merchant_id, Card.customer_id.in_(ids), Card.status == "active"
            )
        ):
            cards.setdefault(str(customer_id), set()).add(number)
        opened = set(await session.scalars(
            select(LedgerEntry.customer_id).where(
                LedgerEntry.merchant_id == merchant_id,
                LedgerEntry.customer_id.in_(ids),
                LedgerEntry.kind == OPENING_BALANCE,
            )
        ))
    found = {}
    for customer in customers:
        assert customer.phone is not None
        state = _Existing(
            id=customer.id,
            fields={"name": customer.name, "birth_date": customer.birth_date, "gender": customer.gender,
                    "tier_id": customer.tier_id, "tier_manual": customer.tier_manual},
            deleted=customer.deleted_at is not None,
            cards=frozenset(cards.get(customer.id, ())),
            has_opening_balance=customer.id in opened,
        )
        found[customer.phone] = (state, customer)
    return found


async def _card_owners(session: AsyncSession, merchant_id: str, numbers: list[str]) -> dict[str, _CardOwner]:
    owners: dict[str, _CardOwner] = {}
    for chunk in _chunks(numbers, BATCH_ROWS):
        for number, customer_id, status in await session.execute(
            select(Card.number, Card.customer_id, Card.status).where(
                Card.merchant_id == merchant_id, Card.number.in_(chunk)
            )
        ):
            owners[number] = _CardOwner(customer_id, status)
    return owners


# --- what a row changes, and writing it ------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    create: bool
    changes: dict[str, object]
    card: str | None
    credit: bool

    @property
    def changed(self) -> bool:
        return self.create or bool(self.changes) or self.card is not None or self.credit


def _plan(row: CustomerRow, state: _Existing | None) -> _Plan:
    """What the row changes: given values that differ, a new card, a first opening balance."""
    given: dict[str, object] = {
        key: value
        for key, value in (("name", row.name), ("birth_date", row.birth_date), ("gender", row.gender))
        if value is not None
    }
    if row.tier is not None:
        given.update(tier_id=row.tier, tier_manual=True)
    credit = bool(row.balance_cp)
    if state is None:
        return _Plan(create=True, changes=given, card=row.card, credit=credit)
    return _Plan(
        create=False,
        changes={key: value for key, value in given.items() if state.fields[key] != value},
        card=row.card if row.card and row.card not in state.cards else None,
        credit=credit and not state.has_opening_balance,
    )


def _count(result: ImportResult, plan: _Plan) -> None:
    if plan.create:
        result.created += 1
    elif plan.changed:
        result.updated += 1
    else:
        result.unchanged += 1
    if plan.credit:
        result.balances_credited += 1


def new_imported_customer(merchant_id: str, phone: str, program: Program, now: datetime) -> Customer:
    """A customer row as registration makes it, from the import channel; the caller adds it."""
    return Customer(
        id=new_id("cus"),
        merchant_id=merchant_id,
        phone=phone,
        tier_id=program.tiers[0].id,
        tier_manual=False,
        referral_code=random_code(8),
        registration_channel="import",
        created_at=now,
        available_cp=0,
        pending_cp=0,
        debt_cp=0,
        lifetime_spend_minor=0,
        purchase_count=0,
    )


async def _write_batch(
    session: AsyncSession,
    merchant_id: str,
    program: Program,
    rows: list[CustomerRow],
    result: ImportResult,
    *,
    now: datetime,
    reason: str,
    actor: str | None,
) -> None:
    """Apply the rows in the caller's transaction, holding the rows of the customers named."""
    found = await _load_existing(session, merchant_id, [r.phone for r in rows], lock=True)
    work: list[tuple[CustomerRow, Customer, _Plan]] = []
    for row in rows:
        state, customer = found.get(row.phone, (None, None))
        if state is not None and state.deleted:
            raise Conflict(f"line {row.line}: the customer {row.phone} was deleted during the import")
        plan = _plan(row, state)
        if customer is None:
            customer = new_imported_customer(merchant_id, row.phone, program, now)
            session.add(customer)
        for key, value in plan.changes.items():
            setattr(customer, key, value)
        work.append((row, customer, plan))
        _count(result, plan)
    await session.flush()
    for row, customer, plan in work:
        if plan.card is not None or plan.create:
            await attach_card(session, merchant_id, customer.id, plan.card, now)
        if plan.credit:
            assert row.balance_cp is not None
            ledger = await CustomerLedger(session, customer, now).load()
            days = None if row.balance_expires_at else program.lifetime_for(program.tier(customer.tier_id))
            lot = ledger.credit(OPENING_BALANCE, row.balance_cp, now, lifetime_days=days,
                                mechanic="import", reason=reason, actor=actor)
            if row.balance_expires_at is not None:
                lot.expires_at = row.balance_expires_at
            ledger.refresh_figures(now)
    await session.flush()


def _chunks(items: Sequence[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
