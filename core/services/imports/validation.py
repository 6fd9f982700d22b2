"""Checking the rows: cells to a customer's values, or an error naming the line and the column."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TypeVar
from zoneinfo import ZoneInfo

from core.domain.money import to_minor
from core.errors import InvalidPhone
from core.phones import normalise_phone
from core.services.imports.results import RowError

T = TypeVar("T")

MAX_BALANCE = Decimal("1e12")
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
GENDERS = {"m": "m", "f": "f", "м": "m", "ж": "f"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RU_DATE = re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}$")
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")


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


def check_repeats(rows: Sequence[CustomerRow], errors: list[RowError]) -> None:
    """A phone or a card given twice is an error on the later line."""
    seen: dict[str, dict[str, int]] = {"phone": {}, "card": {}}
    for row in rows:
        for column, value in (("phone", row.phone), ("card", row.card)):
            if not value:
                continue
            first = seen[column].setdefault(value, row.line)
            if first != row.line:
                errors.append(RowError(row.line, column, f"{value} is already on line {first}"))


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
            value = _parse_datetime(raw, timezone)
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{raw} is too far in the future") from None
    if value <= now:
        raise ValueError(f"{raw} is not in the future")
    return value


def _parse_datetime(raw: str, timezone: ZoneInfo) -> datetime:
    """An ISO date and time; without an offset it is the merchant's time."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"{raw!r} is not a date or time; write YYYY-MM-DD, DD.MM.YYYY or YYYY-MM-DDTHH:MM"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone)
