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


def _cheapest_units(lines: list[SaleLine], matching: list[int], count: int) -> list[int]:
    """Line indexes of the `count` cheapest matching units (a line appears once per unit)."""
    units = sorted((_unit_price(lines[i]), i) for i in matching
                   for _ in range(int(lines[i].quantity)))
    return [i for _, i in units[:count]]


def _discount_units(lines: list[SaleLine], off: list[int], picks: list[int],
                    percent: Decimal) -> int:
    """Take `percent` off one unit of each picked line; returns the money taken off."""
    total = 0
    for i in picks:
        cut = min(_floor(Decimal(_unit_price(lines[i])) * percent / 100),
                  lines[i].amount_minor - off[i])
        off[i] += cut
        total += cut
    return total


def line_discounts(program: Program, tier: Tier, lines: list[SaleLine], facts: SaleFacts
                   ) -> tuple[list[int], dict[str, int]]:
    """Money off per line for promotions and the tier's discount; breakdown in kopecks (negative).

    "1+1" and "second item −50%" count units across all matching lines of the receipt and
    discount the cheapest; "every Nth free" counts units across the customer's purchases.
    """
    off = [0] * len(lines)
    breakdown: dict[str, int] = {}
    for m in program.mechanics:
        if not isinstance(m, LinePromo | NthPurchaseFree):
            continue
        matching = [i for i, x in enumerate(lines) if m.match.matches(x.sku, x.category)]
        units = sum(int(lines[i].quantity) for i in matching)
        if isinstance(m, LinePromo):
            cut = _discount_units(lines, off, _cheapest_units(lines, matching, units // m.nth_unit),
                                  m.discount_percent)
        elif facts.has_customer:
            done = facts.nth_counts.get(m.id, 0)
            free = (done + units) // m.every - done // m.every
            cut = _discount_units(lines, off, _cheapest_units(lines, matching, free), Decimal(100))
        else:
            cut = 0
        if cut:
            breakdown[m.id] = breakdown.get(m.id, 0) - cut
    if tier.discount_percent and program.kind in ("discount", "both") and facts.has_customer:
        total = 0
        for i, line in enumerate(lines):
            cut = _floor(Decimal(line.amount_minor - off[i]) * tier.discount_percent / 100)
            off[i] += cut
            total += cut
        if total:
            breakdown["tier_discount"] = -total
    return off, {f"{k}_money": v for k, v in breakdown.items() if v}
