"""Exact money and points: integers of hundredths, Decimal at the edges, never float.

Money is kept in minor units (kopecks); points in hundredths of a point ("cp"),
so "points are always written with two decimals" holds whatever the precision.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

HUNDRED = Decimal(100)
_ROUNDING = {"down": ROUND_FLOOR, "up": ROUND_CEILING, "half_up": ROUND_HALF_UP}


def to_minor(value: Decimal) -> int:
    """Decimal currency or points -> integer hundredths (exact; callers validate scale)."""
    return int((value * HUNDRED).to_integral_value(rounding=ROUND_HALF_UP))


def from_minor(value: int) -> Decimal:
    """Integer hundredths -> Decimal with two places."""
    return (Decimal(value) / HUNDRED).quantize(Decimal("0.01"))


def round_cp(value: Decimal, precision: int, mode: str) -> int:
    """Round a point amount given in hundredths to `precision` decimals (0..2), as hundredths."""
    step: int = 10 ** max(0, 2 - precision)
    units = int((value / step).to_integral_value(rounding=_ROUNDING[mode]))
    return units * step


def allocate(total: int, weights: list[int], step: int = 1) -> list[int]:
    """Split `total` over `weights` in proportion, in multiples of `step`, exactly.

    Largest remainder: the parts always add up to `total` (when it is a multiple
    of `step`), and the rounding crumbs go to the largest fractions first.
    """
    weight_sum = sum(weights)
    if not weights:
        return []
    if weight_sum <= 0 or total == 0:
        return [0] * len(weights)
    units, crumb = divmod(total, step)
    shares = [units * w for w in weights]
    parts = [s // weight_sum for s in shares]
    left = units - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(shares[i] % weight_sum), i))
    for i in order[:left]:
        parts[i] += 1
    result = [p * step for p in parts]
    if crumb:
        biggest = max(range(len(weights)), key=lambda i: weights[i])
        result[biggest] += crumb
    return result
