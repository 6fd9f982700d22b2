"""A program in plain words, as structure: the Promotions screen and the console render it.

`describe(program)` returns items with a stable `key` and plain parameters (numbers as
Decimal, names as text); the wording, in Russian and English, lives in templates
(bots/dialog/templates/program.*.j2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.domain.mechanics import (
    Basket,
    BirthdayWindow,
    CategoryBonus,
    EventDates,
    HappyHours,
    LinePromo,
    MonthlyTarget,
    NthPurchaseFree,
    Quantity,
    QuickReturn,
    ReceiptBrackets,
    Selector,
)
from core.domain.program import Program


@dataclass(frozen=True)
class Item:
    key: str
    params: dict[str, Any] = field(default_factory=dict)


def _name(program: Program, category: str) -> str:
    return program.category_names.get(category, category)


def _goods(selector: Selector, program: Program | None = None) -> dict[str, Any]:
    names = program.category_names if program else {}
    return {"skus": list(selector.skus),
            "categories": [names.get(c, c) for c in selector.categories]}


def _tiers(program: Program) -> list[Item]:
    items = []
    basis = program.tier_rules.basis
    for tier in program.tiers:
        params: dict[str, Any] = {
            "name": tier.name, "threshold": tier.threshold, "basis": basis,
            "months": program.tier_rules.period_months,
            "redeem_cap": tier.redeem_cap_percent, "discount": tier.discount_percent,
            "referral": list(tier.referral_percents or []),
        }
        if tier.points_per is not None:
            params |= {"per_amount": tier.points_per.amount, "points": tier.points_per.points}
        else:
            params["percent"] = tier.accrual_percent
        items.append(Item("tier", params))
    return items


def _points_rules(program: Program) -> list[Item]:
    items: list[Item] = []
    if program.redemption.mode == "gifts_only":
        items.append(Item("gifts_only", {"gifts": [
            {"name": g.name, "points": g.points} for g in program.gifts]}))
    caps = program.redemption.cap_by_category
    if caps:
        items.append(Item("category_caps", {"caps": {_name(program, c): v for c, v in caps.items()}}))
    if program.redemption.excluded_categories:
        items.append(Item("no_redeem_on", {"categories": [
            _name(program, c) for c in program.redemption.excluded_categories]}))
    if program.redemption.first_purchase_cap_percent is not None:
        items.append(Item("first_purchase_cap",
                          {"percent": program.redemption.first_purchase_cap_percent}))
    if program.accrual.excluded_categories:
        items.append(Item("no_accrual_on", {"categories": [
            _name(program, c) for c in program.accrual.excluded_categories]}))
    if program.accrual.on == "nothing_when_redeeming":
        items.append(Item("no_accrual_when_redeeming"))
    if program.activation_delay_days or program.activation_at_day_start:
        items.append(Item("activation", {"days": program.activation_delay_days,
                                         "day_start": program.activation_at_day_start}))
    if program.lifetime_days is None:
        items.append(Item("never_expire"))
    else:
        items.append(Item("lifetime", {"days": program.lifetime_days,
                                       "from_last_purchase": program.lifetime_from == "last_purchase"}))
    if program.point_value != 1:
        items.append(Item("point_value", {"value": program.point_value}))
    if program.accrual.combined_cap_percent is not None:
        items.append(Item("combined_cap", {"percent": program.accrual.combined_cap_percent}))
    return items


def _tier_names(program: Program, ids: list[str]) -> list[str]:
    return [program.tier(t).name for t in ids]


def _mechanic(m: object, program: Program) -> Item | None:
    boost = {"extra_percent": getattr(m, "extra_percent", Decimal(0)),
             "points": getattr(m, "points", Decimal(0)),
             "tiers": _tier_names(program, getattr(m, "tiers", [])),
             "present": next((p.name for p in program.presents
                              if p.id == getattr(m, "present", None)), None)}
    if isinstance(m, CategoryBonus):
        return Item("category_bonus", boost | _goods(m.match, program) | {"per_unit": m.per_unit})
    if isinstance(m, Basket):
        return Item("basket", boost | {"groups": [_goods(s, program) for s in m.all_of]})
    if isinstance(m, Quantity):
        return Item("quantity", boost | _goods(m.match, program) | {"min_units": m.min_units})
    if isinstance(m, NthPurchaseFree):
        return Item("nth_free", _goods(m.match, program) | {"every": m.every})
    if isinstance(m, MonthlyTarget):
        return Item("monthly_target", {"spend": m.spend, "extra_percent": m.extra_percent})
    if isinstance(m, EventDates):
        return Item("event_dates", boost | {"dates": list(m.dates)})
    if isinstance(m, ReceiptBrackets):
        return Item("brackets", {"brackets": [
            {"from": b.from_amount, "extra_percent": b.extra_percent, "points": b.points}
            for b in m.brackets]})
    if isinstance(m, HappyHours):
        return Item("happy_hours", boost | {"weekdays": list(m.weekdays), "start": m.start,
                                            "end": m.end})
    if isinstance(m, BirthdayWindow):
        return Item("birthday_window", boost | {"before": m.days_before, "after": m.days_after})
    if isinstance(m, QuickReturn):
        return Item("quick_return", boost | {"days": m.within_days})
    if isinstance(m, LinePromo):
        return Item("line_promo", _goods(m.match, program) | {"nth": m.nth_unit,
                                                     "percent": m.discount_percent})
    return None


def _bonuses(program: Program) -> list[Item]:
    items = []
    b = program.bonuses
    if b.welcome:
        items.append(Item("welcome", {"points": b.welcome.points, "days": b.welcome.lifetime_days,
                                      "cap": b.welcome.redeem_cap_percent,
                                      "on": b.welcome.on,
                                      "tiers": _tier_names(program, b.welcome.tiers)}))
    if b.birthday:
        items.append(Item("birthday", {"points": b.birthday.points,
                                       "days": b.birthday.lifetime_days,
                                       "before": b.birthday.days_before,
                                       "tiers": _tier_names(program, b.birthday.tiers)}))
    if b.review:
        items.append(Item("review", {"points": b.review.points,
                                     "tiers": _tier_names(program, b.review.tiers)}))
    if b.important_dates:
        d = b.important_dates
        items.append(Item("important_dates", {"points": d.points, "days": d.lifetime_days,
                                              "before": d.days_before, "kinds": list(d.kinds),
                                              "tiers": _tier_names(program, d.tiers)}))
    for r in b.reactivation:
        items.append(Item("reactivation", {"after": r.after_days, "points": r.points,
                                           "days": r.lifetime_days,
                                           "tiers": _tier_names(program, r.tiers)}))
    if b.referral and (b.referral.levels or b.referral.friend_bonus):
        levels = [{"percent": lv.percent, "per_amount": lv.per_amount, "points": lv.points}
                  for lv in b.referral.levels]
        friend = b.referral.friend_bonus.points if b.referral.friend_bonus else None
        by_tier = any(t.referral_percents for t in program.tiers)
        items.append(Item("referral", {"levels": levels, "friend_points": friend,
                                       "first_only": b.referral.on == "first_purchase",
                                       "by_tier": by_tier,
                                       "rate_from": b.referral.rate_from}))
    return items


def describe(program: Program) -> list[Item]:
    """The program as items, in the order a customer reads them."""
    items = _tiers(program) + _points_rules(program)
    items += [item for m in program.mechanics if (item := _mechanic(m, program)) is not None]
    return items + _bonuses(program)
