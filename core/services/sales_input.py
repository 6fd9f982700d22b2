"""The sale a till sends, as the core sees it (money in kopecks, points in hundredths)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.domain.engine import SaleLine
from core.services.customers import CustomerRef

_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """What dataclasses.asdict makes of a request (the same JSON), without its deep copies."""
    kind = type(value)
    names = _FIELDS.get(kind)
    if names is None and is_dataclass(value):
        names = _FIELDS[kind] = tuple(f.name for f in fields(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if kind is list or kind is tuple:
        return [_plain(item) for item in value]
    if kind is dict:
        return {key: _plain(item) for key, item in value.items()}
    return value


def body_digest(request: Any, *, leave_out: tuple[str, ...] = ()) -> str:
    """SHA-256 of a request dataclass in canonical JSON (datetimes as ISO text)."""
    data = _plain(request)
    for name in leave_out:
        data.pop(name, None)
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class LineInput:
    line_id: str
    amount_minor: int
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    price_minor: int | None = None
    quantity: str | None = None


@dataclass(frozen=True)
class SaleInput:
    receipt_id: str
    total_minor: int
    customer: CustomerRef | None = None
    lines: list[LineInput] = field(default_factory=list)
    redeem_cp: int = 0
    store_code: str | None = None
    cashier_code: str | None = None
    occurred_at: datetime | None = None
    confirmation_code: str | None = None  # the customer's code, where the program asks for one

    def sale_lines(self) -> list[SaleLine]:
        if not self.lines:
            return [SaleLine("1", self.total_minor)]
        return [SaleLine(x.line_id, x.amount_minor, x.sku, x.category, x.price_minor,
                         Decimal(x.quantity or 1)) for x in self.lines]

    def digest(self) -> str:
        """Identity of the request body: a repeated sale must match it exactly.

        The confirmation code is left out: the till repeats a 428'd sale with it.
        """
        return body_digest(self, leave_out=("confirmation_code",))


@dataclass(frozen=True)
class RefundLineInput:
    line_id: str
    quantity: str | None = None
    amount_minor: int | None = None


@dataclass(frozen=True)
class RefundInput:
    refund_key: str
    amount_minor: int | None = None
    lines: list[RefundLineInput] = field(default_factory=list)
    occurred_at: datetime | None = None

    def digest(self) -> str:
        return body_digest(self)
