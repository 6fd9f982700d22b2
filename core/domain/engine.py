"""The rules engine: a sale in, discounts, the points it may use and the points it earns out.

Pure functions over integers (money in kopecks, points in hundredths "cp") and
Decimal for exact percentages. The order of evaluation is documented in
core.domain.program and followed step by step below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from core.domain.boosts import fixed_points, line_extra_percents
from core.domain.facts import SaleFacts
from core.domain.money import allocate, round_cp
from core.domain.program import Program, Tier
from core.domain.promotions import line_discounts
from core.errors import RedeemExceedsLimit, TotalMismatch, ValidationFailed


@dataclass(frozen=True)
class SaleLine:
    line_id: str
    amount_minor: int
    sku: str | None = None
    category: str | None = None
    price_minor: int | None = None
    quantity: Decimal = Decimal(1)


@dataclass(frozen=True)
class LineQuote:
    line_id: str
    amount_minor: int
    discount_minor: int  # promotions, the tier's discount and points together
    redeemed_cp: int
    accrued_cp: int


@dataclass(frozen=True)
class SaleQuote:
    max_redeem_cp: int
    redeem_cp: int
    discount_minor: int  # money off for points only
    promo_discount_minor: int  # money off for promotions and the tier's discount
    accrual_cp: int
    lines: list[LineQuote]
    breakdown: dict[str, int] = field(default_factory=dict)
    fixed: dict[str, int] = field(default_factory=dict)  # receipt-level points by mechanic
    presents: list[str] = field(default_factory=list)  # ids of presents the till hands over


def step_cp(program: Program) -> int:
    """The smallest point amount the program handles, in hundredths."""
    return int(10 ** (2 - program.precision))


def _points_for_money(program: Program, money_minor: Decimal) -> Decimal:
    return money_minor / program.point_value


def discount_for(program: Program, redeem_cp: int) -> int:
    """Money (kopecks) that `redeem_cp` points pay for."""
    return int((redeem_cp * program.point_value).to_integral_value(rounding="ROUND_FLOOR"))


def _line_caps(program: Program, tier: Tier, lines: list[SaleLine], payable: list[int],
               facts: SaleFacts) -> list[int]:
    """Money each line may be paid with points (step 2)."""
    rules = program.redemption
    if rules.mode == "gifts_only":
        return [0] * len(lines)
    caps = []
    for line, pay in zip(lines, payable, strict=True):
        category = line.category or ""
        if category in rules.excluded_categories:
            caps.append(0)
            continue
        percent = tier.redeem_cap_by_category.get(category,
                                                  rules.cap_by_category.get(category,
                                                                            tier.redeem_cap_percent))
        caps.append(int((pay * percent / 100).to_integral_value(rounding="ROUND_FLOOR")))
    if facts.first_purchase and rules.first_purchase_cap_percent is not None:
        limit = int((sum(payable) * rules.first_purchase_cap_percent / 100)
                    .to_integral_value(rounding="ROUND_FLOOR"))
        if sum(caps) > limit:
            caps = allocate(limit, caps)
    return caps


def capped_room(program: Program, payable_minor: int, facts: SaleFacts) -> dict[int, int]:
    """How many points lots with a cap of their own may give to this receipt, per cap."""
    room = {}
    for group in facts.capped:
        share = Decimal(payable_minor) * group.cap_percent / 100_000
        share_cp = round_cp(_points_for_money(program, share), program.precision, "down")
        room[group.cap_percent] = min(group.available_cp, share_cp)
    return room


def max_redeem(program: Program, payable_minor: int, cap_money: int, facts: SaleFacts) -> int:
    """Points that may pay: the caps, and no more than the lots allow (capped lots in part)."""
    step = step_cp(program)
    cap_cp = round_cp(_points_for_money(program, Decimal(cap_money)), program.precision, "down")
    spendable = max(facts.available_cp, 0) + sum(capped_room(program, payable_minor, facts).values())
    return max(0, min(cap_cp, spendable // step * step))


def evaluate(program: Program, tier: Tier, lines: list[SaleLine], total_minor: int,
             redeem_cp: int, facts: SaleFacts) -> SaleQuote:
    """Quote a sale; raises RedeemExceedsLimit when `redeem_cp` is over what is allowed."""
    if sum(line.amount_minor for line in lines) != total_minor:
        raise TotalMismatch("total must equal the sum of the lines",
                            lines_total=str(Decimal(sum(x.amount_minor for x in lines)) / 100))
    promo, promo_breakdown = line_discounts(program, tier, lines, facts)
    payable = [line.amount_minor - p for line, p in zip(lines, promo, strict=True)]
    caps = _line_caps(program, tier, lines, payable, facts)
    limit = max_redeem(program, sum(payable), sum(caps), facts) if facts.has_customer else 0
    if redeem_cp % step_cp(program):
        raise ValidationFailed(
            f"redeem must be a multiple of {Decimal(step_cp(program)) / 100} points in this program")
    if redeem_cp > limit:
        raise RedeemExceedsLimit("redeem is over what this receipt and balance allow",
                                 max_redeem=str((Decimal(limit) / 100).quantize(Decimal("0.01"))))
    discount = discount_for(program, redeem_cp)
    point_money = allocate(discount, caps)
    redeemed = allocate(redeem_cp, caps)
    bases = [0 if (line.category or "") in program.accrual.excluded_categories else p - d
             for line, p, d in zip(lines, payable, point_money, strict=True)]
    if not program.accrues or not facts.has_customer or (
            program.accrual.on == "nothing_when_redeeming" and redeem_cp > 0):
        bases = [0] * len(lines)
    percent_part, breakdown, weights = _accrual(program, tier, lines, bases, sum(payable), facts)
    # Lines get whole program units (a whole-point program never splits a point). Fixed
    # points belong to the receipt, not to a line: a refund re-checks whether they still hold.
    accrued = allocate(percent_part, weights if sum(weights) else bases, step_cp(program))
    presents: list[str] = []
    fixed = {name: int(points) for name, points in
             fixed_points(program, lines, bases, sum(payable), facts, presents).items() if points}
    if any(bases):
        breakdown.update({k: breakdown.get(k, 0) + v for k, v in fixed.items()})
    else:
        fixed, presents = {}, []
    accrual = percent_part + sum(fixed.values())
    quotes = [LineQuote(line.line_id, line.amount_minor, p + d, r, a)
              for line, p, d, r, a in zip(lines, promo, point_money, redeemed, accrued,
                                          strict=True)]
    breakdown = {**{k: v for k, v in promo_breakdown.items()}, **breakdown}
    return SaleQuote(limit, redeem_cp, discount, sum(promo), accrual, quotes, breakdown, fixed,
                     presents)


def _accrual(program: Program, tier: Tier, lines: list[SaleLine], bases: list[int],
             receipt_minor: int, facts: SaleFacts) -> tuple[int, dict[str, int], list[int]]:
    """Percent points earned (step 3, 5): (total, breakdown by mechanic in cp, line weights)."""
    if not any(bases):
        return 0, {}, [0] * len(lines)
    exact: dict[str, Decimal] = {}
    per_line = [Decimal(0)] * len(lines)
    extras = line_extra_percents(program, lines, receipt_minor, facts)
    cap = program.accrual.combined_cap_percent
    tier_percent = Decimal(0) if tier.points_per else tier.accrual_percent
    for i, base in enumerate(bases):
        if not base:
            continue
        parts = {"tier": tier_percent, **extras[i]}
        total_percent = sum(parts.values(), Decimal(0))
        for name, percent in parts.items():
            if percent:
                value = _points_for_money(program, Decimal(base) * percent / 100)
                exact[name] = exact.get(name, Decimal(0)) + value
                per_line[i] += value
        if cap is not None and total_percent > cap:
            cut = _points_for_money(program, Decimal(base) * (total_percent - cap) / 100)
            exact["combined_cap"] = exact.get("combined_cap", Decimal(0)) - cut
            per_line[i] -= cut
    if tier.points_per is not None:
        complete = sum(bases) // int(tier.points_per.amount * 100)
        value = Decimal(complete) * tier.points_per.points * 100
        exact["tier"] = exact.get("tier", Decimal(0)) + value
        per_line = [w + value * b / sum(bases) for w, b in zip(per_line, bases, strict=True)]
    total = round_cp(sum(exact.values(), Decimal(0)), program.precision, program.rounding)
    total = max(total, 0)
    breakdown = {name: round_cp(v, program.precision, program.rounding) for name, v in exact.items()}
    breakdown = {k: v for k, v in breakdown.items() if v}
    if sum(breakdown.values()) != total:
        breakdown["rounding"] = total - sum(breakdown.values())
    weights = [int(w) for w in per_line]
    return total, breakdown, weights
