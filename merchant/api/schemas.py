"""Request and response schemas of the REST API: they validate requests and make the OpenAPI."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

MAX_MONEY = Decimal("1000000000")


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a time zone, e.g. 2026-03-08T12:00:00+03:00")
    if not EARLIEST <= value <= LATEST:
        raise ValueError("must be between 2000 and 2100")
    return value


Money = Annotated[Decimal, Field(ge=0, le=MAX_MONEY, decimal_places=2, allow_inf_nan=False,
                                 description="Money as a decimal string, e.g. \"1250.00\"")]
PositiveMoney = Annotated[Decimal, Field(gt=0, le=MAX_MONEY, decimal_places=2,
                                         allow_inf_nan=False)]
Points = Annotated[Decimal, Field(ge=0, le=Decimal("100000000"), decimal_places=2,
                                  allow_inf_nan=False, description="Points, e.g. \"150.00\"")]
AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w.:/-]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CustomerRefIn(Strict):
    """Exactly one of phone, card or qr."""

    phone: str | None = Field(default=None, max_length=32)
    card: str | None = Field(default=None, max_length=64)
    qr: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _one(self) -> CustomerRefIn:
        if sum(v is not None for v in (self.phone, self.card, self.qr)) != 1:
            raise ValueError("give exactly one of phone, card, qr")
        return self


class ReferrerIn(Strict):
    """Exactly one of phone, card or the friend's referral code."""

    phone: str | None = Field(default=None, max_length=32)
    card: str | None = Field(default=None, max_length=64)
    code: str | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _one(self) -> ReferrerIn:
        if sum(v is not None for v in (self.phone, self.card, self.code)) != 1:
            raise ValueError("give exactly one of phone, card, code")
        return self


class CustomerCreate(Strict):
    phone: str = Field(min_length=3, max_length=32)
    name: str | None = Field(default=None, max_length=200)
    birth_date: date | None = None
    card: str | None = Field(default=None, min_length=4, max_length=32, pattern=r"^[0-9A-Za-z-]+$")
    referrer: ReferrerIn | None = None
    source: str | None = Field(default=None, max_length=64)


class AdjustmentIn(Strict):
    points: Annotated[Decimal, Field(ge=Decimal("-10000000"), le=Decimal("10000000"),
                                     decimal_places=2, allow_inf_nan=False)]
    reason: str = Field(min_length=1, max_length=500)
    lifetime_days: int | None = Field(default=None, ge=1, le=3650)


class LineIn(Strict):
    line_id: Code
    sku: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=64)
    price: Money
    quantity: Annotated[Decimal, Field(gt=0, le=100000, decimal_places=3, allow_inf_nan=False)]


ConfirmationCode = Annotated[str, Field(
    min_length=4, max_length=12, pattern=r"^\s*\d+\s*$",
    description="The code the customer received after a 428 confirmation_required; "
                "left out when comparing a repeated request's body")]


class SaleIn(Strict):
    receipt_id: Annotated[str, Field(min_length=1, max_length=128)]
    customer: CustomerRefIn | None = None
    total: PositiveMoney
    lines: list[LineIn] | None = Field(default=None, max_length=1000)
    redeem: Points = Decimal(0)
    store_id: Code | None = None
    cashier_id: Code | None = None
    occurred_at: AwareDatetime | None = None
    confirmation_code: ConfirmationCode | None = None

    @model_validator(mode="after")
    def _lines(self) -> SaleIn:
        if self.lines is not None:
            ids = [line.line_id for line in self.lines]
            if len(set(ids)) != len(ids):
                raise ValueError("lines: line_id must be unique within a receipt")
            if not ids:
                raise ValueError("lines: give at least one line, or leave lines out")
        if self.redeem > 0 and self.customer is None:
            raise ValueError("redeem needs a customer")
        return self


class RefundLineIn(Strict):
    line_id: Code
    quantity: Annotated[Decimal, Field(gt=0, le=100000, decimal_places=3)] | None = None
    amount: PositiveMoney | None = None


class RefundIn(Strict):
    refund_id: Annotated[str, Field(min_length=1, max_length=128)]
    amount: PositiveMoney | None = None
    lines: list[RefundLineIn] | None = Field(default=None, min_length=1, max_length=1000)
    occurred_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _either(self) -> RefundIn:
        if self.amount is not None and self.lines is not None:
            raise ValueError("give amount or lines, not both (neither refunds in full)")
        return self


# --- responses (documented; tests check every answer against them) -------------------

DecimalStr = Annotated[str, Field(pattern=r"^-?\d+\.\d{2}$")]


class ErrorBody(BaseModel):
    code: str
    message: str
    model_config = ConfigDict(extra="allow")


class ErrorOut(BaseModel):
    error: ErrorBody


class NextTierOut(BaseModel):
    name: str
    remaining_spend: DecimalStr | None
    remaining_purchases: int | None = None


class TierOut(BaseModel):
    id: str
    name: str
    accrual_percent: str
    next: NextTierOut | None


class AmountAt(BaseModel):
    amount: DecimalStr
    expires_at: str


class PendingAt(BaseModel):
    amount: DecimalStr
    available_at: str


class BalanceOut(BaseModel):
    available: DecimalStr
    pending: DecimalStr
    pending_lots: list[PendingAt]
    expiring: list[AmountAt]
    debt: DecimalStr


class CustomerOut(BaseModel):
    id: str
    phone: str | None
    card_number: str | None
    name: str | None
    birth_date: str | None
    referral_code: str
    tier: TierOut
    balance: BalanceOut
    created_at: str


class LedgerEntryOut(BaseModel):
    id: str
    kind: str
    points: DecimalStr
    debt: DecimalStr
    occurred_at: str
    available_at: str | None
    expires_at: str | None
    remaining: DecimalStr | None
    mechanic: str | None
    purchase_id: str | None
    refund_id: str | None
    referral_level: int | None
    reason: str | None


class LedgerPageOut(BaseModel):
    items: list[LedgerEntryOut]
    next_cursor: str | None


class QuoteLineOut(BaseModel):
    line_id: str
    amount: DecimalStr
    discount: DecimalStr
    redeemed: DecimalStr
    accrued: DecimalStr


class PreviewOut(BaseModel):
    max_redeem: DecimalStr
    redeem: DecimalStr
    discount: DecimalStr
    accrual: DecimalStr
    lines: list[QuoteLineOut]
    breakdown: dict[str, DecimalStr]
    tier: TierOut
    customer_id: str | None
    available: DecimalStr


class SaleLineOut(BaseModel):
    line_id: str
    discount: DecimalStr
    redeemed: DecimalStr
    accrued: DecimalStr


class PresentOut(BaseModel):
    id: str
    name: str


class SaleOut(BaseModel):
    purchase_id: str
    receipt_id: str
    customer_id: str | None
    total: DecimalStr
    redeemed: DecimalStr
    discount: DecimalStr
    accrued: DecimalStr
    lines: list[SaleLineOut]
    breakdown: dict[str, DecimalStr]
    balance: BalanceOut | None
    tier: TierOut | None
    presents: list[PresentOut] = []


class RefundOut(BaseModel):
    refund_id: str
    purchase_id: str
    amount: DecimalStr
    points_returned: DecimalStr
    points_taken_back: DecimalStr
    debt: DecimalStr
    balance: BalanceOut | None


class ImportantDateIn(Strict):
    kind: str = Field(pattern=r"^(relative_birthday|anniversary|other)$")
    date: str = Field(pattern=r"^(\d{4}-)?\d{2}-\d{2}$", description="MM-DD or YYYY-MM-DD")
    label: str | None = Field(default=None, max_length=100)


class DatesIn(Strict):
    dates: list[ImportantDateIn] = Field(max_length=10)


class DatesOut(BaseModel):
    dates: list[dict[str, str | None]]


class GiftRedeemIn(Strict):
    customer: CustomerRefIn
    gift_id: str = Field(min_length=1, max_length=32)
    redemption_id: str = Field(min_length=1, max_length=128)
    confirmation_code: ConfirmationCode | None = None


class GiftOut(BaseModel):
    gift_id: str
    entry: LedgerEntryOut
    balance: BalanceOut | None


class ProgramOut(BaseModel):
    version: int
    document: dict[str, Any]


class ProgramIn(BaseModel):
    """A program document; its own JSON Schema is published at /api/v1/program/schema.json."""

    model_config = ConfigDict(extra="allow")
