"""The engine on the worked example of docs/rules.md, and mechanic by mechanic."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from core.domain.engine import SaleLine, evaluate
from core.domain.facts import CappedPoints, SaleFacts
from core.domain.program import parse_program
from core.errors import RedeemExceedsLimit

MSK = ZoneInfo("Europe/Moscow")
TUESDAY = datetime(2026, 3, 3, 10, 30, tzinfo=MSK)


def facts(**kw) -> SaleFacts:
    base = {"local_time": TUESDAY, "has_customer": True, "available_cp": 10**7,
            "purchase_count": 4}
    return SaleFacts(**(base | kw))


def program(**kw):
    return parse_program({"tiers": [{"id": "base", "name": "Base", "accrual_percent": 5,
                                     "redeem_cap_percent": 30}]} | kw)


def test_worked_example_of_the_docs():
    p = program(accrual={"excluded_categories": ["tobacco"], "combined_cap_percent": 8},
                redemption={"excluded_categories": ["tobacco"]}, mechanics=[
        {"type": "happy_hours", "weekdays": [1, 2, 3, 4], "start": "09:00", "end": "12:00",
         "extra_percent": 3},
        {"type": "category_bonus", "match": {"categories": ["coffee"]}, "extra_percent": 2},
        {"type": "basket", "all_of": [{"categories": ["wine"]}, {"categories": ["cheese"]}],
         "points": 50}])
    lines = [SaleLine("1", 40000, "LATTE", "coffee"), SaleLine("2", 80000, "MERLOT", "wine"),
             SaleLine("3", 30000, "BRIE", "cheese"), SaleLine("4", 50000, "CIG", "tobacco")]
    q = evaluate(p, p.tiers[0], lines, 200000, 20000, facts())
    assert q.max_redeem_cp == 45000
    assert [x.discount_minor for x in q.lines] == [5333, 10667, 4000, 0]
    assert q.accrual_cp == 15400
    assert q.breakdown == {"tier": 6500, "happy_hours": 3900, "category_bonus": 600,
                           "combined_cap": -700, "basket": 5000, "rounding": 100}
    assert q.lines[3].accrued_cp == 0


def test_happy_hours_outside_the_window_give_nothing_extra():
    p = program(mechanics=[{"type": "happy_hours", "weekdays": [1], "start": "09:00",
                            "end": "12:00", "extra_percent": 3}])
    q = evaluate(p, p.tiers[0], [SaleLine("1", 100000)], 100000, 0, facts())
    assert q.breakdown == {"tier": 5000}


def test_points_per_complete_amount_and_brackets():
    p = parse_program({"tiers": [{"id": "a", "name": "A", "points_per": {"amount": 30}}],
                       "mechanics": [{"type": "receipt_brackets", "brackets": [
                           {"from_amount": 1000, "extra_percent": 1},
                           {"from_amount": 3000, "extra_percent": 2}]}]})
    q = evaluate(p, p.tiers[0], [SaleLine("1", 359900)], 359900, 0, facts())
    # 3599 ₽: 119 complete 30s → 119 points; bracket 3000+: +2% of 3599 = 71.98 → 190.98 → 190
    assert q.accrual_cp == 19000 and q.breakdown["tier"] == 11900


def test_line_promos_and_the_fifth_coffee():
    p = program(mechanics=[
        {"type": "line_promo", "match": {"skus": ["CAKE"]}, "nth_unit": 2, "discount_percent": 50},
        {"type": "nth_purchase_free", "match": {"categories": ["coffee"]}, "every": 5}])
    lines = [SaleLine("1", 60000, "CAKE", "bakery", 20000, 3),
             SaleLine("2", 30000, "LATTE", "coffee", 15000, 2)]
    q = evaluate(p, p.tiers[0], lines, 90000, 0, facts(nth_counts={"nth_purchase_free": 4}))
    assert q.promo_discount_minor == 10000 + 15000  # one cake at half, one latte free
    assert q.breakdown["line_promo_money"] == -10000
    assert q.breakdown["nth_purchase_free_money"] == -15000
    assert q.accrual_cp == 3200  # 5% of the 650.00 paid


def test_capped_lots_pay_only_their_share():
    p = program()
    f = facts(available_cp=0, capped=[CappedPoints(15000, 10000)])
    q = evaluate(p, p.tiers[0], [SaleLine("1", 40000)], 40000, 6000, f)
    assert q.max_redeem_cp == 6000  # 15% of 400.00, though 100 welcome points are there
    with pytest.raises(RedeemExceedsLimit):
        evaluate(p, p.tiers[0], [SaleLine("1", 40000)], 40000, 6100, f)


def test_birthday_window_and_monthly_target_and_discount_program():
    p = parse_program({"kind": "both", "tiers": [{"id": "a", "name": "A", "accrual_percent": 5,
                                                  "discount_percent": 10}],
                       "mechanics": [
                           {"type": "birthday_window", "days_before": 3, "days_after": 3,
                            "extra_percent": 5},
                           {"type": "monthly_target", "spend": 10000, "extra_percent": 2}]})
    f = facts(birth_date=date(1990, 3, 5), last_month_spend_minor=1_000_000)
    q = evaluate(p, p.tiers[0], [SaleLine("1", 100000)], 100000, 0, f)
    assert q.promo_discount_minor == 10000
    assert q.breakdown == {"tier_discount_money": -10000, "tier": 4500, "birthday_window": 4500,
                           "monthly_target": 1800}


def test_event_dates_every_year_or_once():
    p = program(mechanics=[{"type": "event_dates", "dates": ["03-08", "2026-11-27"],
                            "extra_percent": 5}])
    rated = {}
    for day in (datetime(2026, 3, 8, 12, tzinfo=MSK), datetime(2027, 3, 8, 12, tzinfo=MSK),
                datetime(2026, 11, 27, 12, tzinfo=MSK), datetime(2027, 11, 27, 12, tzinfo=MSK)):
        q = evaluate(p, p.tiers[0], [SaleLine("1", 100000)], 100000, 0, facts(local_time=day))
        rated[day.date().isoformat()] = q.accrual_cp
    assert rated == {"2026-03-08": 10000, "2027-03-08": 10000, "2026-11-27": 10000,
                     "2027-11-27": 5000}  # Black Friday 2027 is another date
