"""Step 1 of the engine: promotions and the tier's discount lower what lines cost."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from core.domain.facts import SaleFacts
from core.domain.mechanics import LinePromo, NthPurchaseFree
from core.domain.program import Program, Tier

if TYPE_CHECKING:
    from core.domain.engine import SaleLine


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def _unit_price(line: SaleLine) -> int:
    if line.price_minor is not None:
        return line.price_minor
    return _floor(Decimal(line.amount_minor) / line.quantity) if line.quantity else 0


def line_discounts(program: Program, tier: Tier, lines: list[SaleLine], facts: SaleFacts
                   ) -> tuple[list[int], dict[str, int]]:
    """Money off per line for promotions and the tier's discount; breakdown in kopecks (negative)."""
    off = [0] * len(lines)
    breakdown: dict[str, int] = {}
    for mechanic in program.mechanics:
        if isinstance(mechanic, LinePromo):
            for i, line in enumerate(lines):
                if not mechanic.match.matches(line.sku, line.category):
                    continue
                units = int(line.quantity) // mechanic.nth_unit
                cut = _floor(Decimal(units * _unit_price(line)) * mechanic.discount_percent / 100)
                cut = min(cut, line.amount_minor - off[i])
                off[i] += cut
                breakdown[mechanic.id] = breakdown.get(mechanic.id, 0) - cut
        elif isinstance(mechanic, NthPurchaseFree) and facts.has_customer:
            done = facts.nth_counts.get(mechanic.id, 0)
            matching = [i for i, x in enumerate(lines) if mechanic.match.matches(x.sku, x.category)]
            if matching and (done + 1) % mechanic.every == 0:
                cheapest = min(matching, key=lambda i: _unit_price(lines[i]))
                cut = min(_unit_price(lines[cheapest]), lines[cheapest].amount_minor - off[cheapest])
                off[cheapest] += cut
                breakdown[mechanic.id] = breakdown.get(mechanic.id, 0) - cut
    if tier.discount_percent and program.kind in ("discount", "both") and facts.has_customer:
        total = 0
        for i, line in enumerate(lines):
            cut = _floor(Decimal(line.amount_minor - off[i]) * tier.discount_percent / 100)
            off[i] += cut
            total += cut
        if total:
            breakdown["tier_discount"] = -total
    return off, {f"{k}_money": v for k, v in breakdown.items() if v}
