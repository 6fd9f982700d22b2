"""Evaluating a sale: how much may be paid with points, the discount, and the accrual.

Pure functions over integers: money in kopecks, points in hundredths ("cp").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from core.domain.money import allocate, round_cp
from core.domain.program import Program, Tier
from core.errors import RedeemExceedsLimit, TotalMismatch, ValidationFailed


@dataclass(frozen=True)
class SaleLine:
    line_id: str
    amount_minor: int
    sku: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class LineQuote:
    line_id: str
    amount_minor: int
    discount_minor: int
    redeemed_cp: int
    accrued_cp: int


@dataclass(frozen=True)
class SaleQuote:
    max_redeem_cp: int
    redeem_cp: int
    discount_minor: int
    accrual_cp: int
    lines: list[LineQuote]
    breakdown: dict[str, int] = field(default_factory=dict)


def step_cp(program: Program) -> int:
    """The smallest point amount the program handles, in hundredths."""
    return int(10 ** (2 - program.precision))


def max_redeem_cp(program: Program, tier: Tier, total_minor: int, available_cp: int) -> int:
    """Points that may pay for this receipt: the tier's cap, and no more than the balance."""
    step = step_cp(program)
    cap_money = (total_minor * tier.redeem_cap_percent / 100).to_integral_value(rounding="ROUND_FLOOR")
    cap_cp = round_cp(cap_money / program.point_value, program.precision, "down")
    spendable = max(available_cp, 0) // step * step
    return max(0, min(cap_cp, spendable))


def discount_for(program: Program, redeem_cp: int) -> int:
    """Money (kopecks) that `redeem_cp` points pay for."""
    return int((redeem_cp * program.point_value).to_integral_value(rounding="ROUND_FLOOR"))


def evaluate_sale(
    program: Program,
    tier: Tier,
    lines: list[SaleLine],
    total_minor: int,
    redeem_cp: int,
    available_cp: int,
) -> SaleQuote:
    """Quote a sale; raises RedeemExceedsLimit when `redeem_cp` is over what is allowed."""
    if sum(line.amount_minor for line in lines) != total_minor:
        raise TotalMismatch(
            "total must equal the sum of the lines",
            lines_total=str(Decimal(sum(x.amount_minor for x in lines)) / 100),
        )
    limit = max_redeem_cp(program, tier, total_minor, available_cp)
    step = step_cp(program)
    if redeem_cp % step:
        raise ValidationFailed(
            f"redeem must be a multiple of {Decimal(step) / 100} points in this program"
        )
    if redeem_cp > limit:
        raise RedeemExceedsLimit(
            "redeem is over what this receipt and balance allow",
            max_redeem=str((Decimal(limit) / 100).quantize(Decimal("0.01"))),
        )
    discount = discount_for(program, redeem_cp)
    base = total_minor - discount
    if program.accrue_on == "nothing_when_redeeming" and redeem_cp > 0:
        base = 0
    raw = Decimal(base) * tier.accrual_percent / 100 / program.point_value
    accrual = round_cp(raw, program.precision, program.rounding)
    weights = [line.amount_minor for line in lines]
    discounts = allocate(discount, weights)
    redeemed = allocate(redeem_cp, weights)
    bases = [w - d for w, d in zip(weights, discounts, strict=True)]
    accrued = allocate(accrual, bases)
    quotes = [
        LineQuote(line.line_id, line.amount_minor, d, r, a)
        for line, d, r, a in zip(lines, discounts, redeemed, accrued, strict=True)
    ]
    breakdown = {"base": accrual} if accrual else {}
    return SaleQuote(limit, redeem_cp, discount, accrual, quotes, breakdown)
