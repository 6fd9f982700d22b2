"""Steps 3-4 of the engine: which extra percents apply to each line, and fixed points."""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from core.domain.facts import SaleFacts, in_birthday_window
from core.domain.mechanics import (
    Basket,
    BirthdayWindow,
    Boost,
    CategoryBonus,
    EventDates,
    HappyHours,
    MonthlyTarget,
    Quantity,
    QuickReturn,
    ReceiptBrackets,
)
from core.domain.program import Program

if TYPE_CHECKING:
    from core.domain.engine import SaleLine


def _now_applies(m: object, facts: SaleFacts) -> bool:
    """Do the time- and customer-dependent boosts apply at this sale?"""
    now = facts.local_time
    if isinstance(m, EventDates):
        return now.strftime("%m-%d") in m.dates or now.strftime("%Y-%m-%d") in m.dates
    if isinstance(m, HappyHours):
        clock = now.time().replace(tzinfo=None)
        end = time.max if m.end == "24:00" else time.fromisoformat(m.end)
        return now.isoweekday() in m.weekdays and (
            time.fromisoformat(m.start) <= clock < end)  # [start, end)
    if isinstance(m, BirthdayWindow):
        return in_birthday_window(facts.birth_date, now.date(), m.days_before, m.days_after)
    if isinstance(m, QuickReturn):
        return facts.last_purchase_at is not None and (
            now - facts.last_purchase_at <= timedelta(days=m.within_days))
    return False


def _receipt_boosts(program: Program, receipt_minor: int, facts: SaleFacts
                    ) -> list[tuple[str, Boost]]:
    """Mechanics that apply to the whole receipt at this moment, as (id, boost)."""
    found: list[tuple[str, Boost]] = []
    for m in program.mechanics:
        if isinstance(m, Boost) and not m.for_tier(facts.tier_id):
            continue
        if isinstance(m, Boost) and _now_applies(m, facts):
            found.append((m.id, m))
        elif isinstance(m, MonthlyTarget) and facts.last_month_spend_minor >= m.spend * 100:
            found.append((m.id, Boost(extra_percent=m.extra_percent)))
        elif isinstance(m, ReceiptBrackets):
            reached = [b for b in m.brackets if receipt_minor >= b.from_amount * 100]
            if reached:
                best = max(reached, key=lambda b: b.from_amount)
                found.append((m.id, Boost(extra_percent=best.extra_percent, points=best.points)))
    return found


def line_extra_percents(program: Program, lines: list[SaleLine], receipt_minor: int,
                        facts: SaleFacts) -> list[dict[str, Decimal]]:
    """Per line, the extra percents by mechanic id (step 3); brackets by the receipt before
    points (`receipt_minor`)."""
    receipt = [(k, b.extra_percent) for k, b in _receipt_boosts(program, receipt_minor, facts)
               if b.extra_percent]
    result: list[dict[str, Decimal]] = []
    for line in lines:
        extras = dict(receipt)
        for m in program.mechanics:
            if (isinstance(m, CategoryBonus) and m.extra_percent and not m.per_unit
                    and m.for_tier(facts.tier_id) and m.match.matches(line.sku, line.category)):
                extras[m.id] = extras.get(m.id, Decimal(0)) + m.extra_percent
        result.append(extras)
    return result


def fixed_points(program: Program, lines: list[SaleLine], bases: list[int], receipt_minor: int,
                 facts: SaleFacts, presents: list[str] | None = None) -> dict[str, Decimal]:
    """Fixed points by mechanic id, in hundredths (step 4): after the combined cap.

    Presents of the mechanics that apply are appended to `presents` when it is given.
    """
    points: dict[str, Decimal] = {}
    by_id = {m.id: m for m in program.mechanics}

    def add(key: str, value: Decimal) -> None:
        present = getattr(by_id.get(key), "present", None)
        if presents is not None and present is not None and present not in presents:
            presents.append(present)
        if value:
            points[key] = points.get(key, Decimal(0)) + value * 100

    paid = [line for line, base in zip(lines, bases, strict=True) if base > 0]
    for key, boost in _receipt_boosts(program, receipt_minor, facts):
        add(key, boost.points)
    for m in program.mechanics:
        if isinstance(m, Boost) and not m.for_tier(facts.tier_id):
            continue
        if isinstance(m, Basket) and all(
                any(sel.matches(x.sku, x.category) for x in paid) for sel in m.all_of):
            add(m.id, m.points)
        elif isinstance(m, Quantity):
            units = sum((x.quantity for x in paid if m.match.matches(x.sku, x.category)),
                        Decimal(0))
            if units > m.min_units:
                add(m.id, m.points)
                # An extra percent for a quantity deal applies to the matching lines.
                base = sum(b for x, b in zip(lines, bases, strict=True)
                           if b > 0 and m.match.matches(x.sku, x.category))
                add(m.id, Decimal(base) * m.extra_percent / 100 / 100 / program.point_value)
        elif isinstance(m, CategoryBonus) and m.per_unit:
            units = sum((x.quantity for x in paid if m.match.matches(x.sku, x.category)),
                        Decimal(0))
            add(m.id, m.points * int(units))
        elif isinstance(m, CategoryBonus) and m.points and any(
                m.match.matches(x.sku, x.category) for x in paid):
            add(m.id, m.points)
    return points
