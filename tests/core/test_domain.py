"""Pure rules: rounding, allocation, sale evaluation, lots and refunds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.domain.engine import SaleLine, evaluate, max_redeem
from core.domain.facts import SaleFacts
from core.domain.lots import Lot, balance_at, plan_spend, plan_take_back
from core.domain.money import allocate, from_minor, round_cp, to_minor
from core.domain.program import Program, Tier, default_program
from core.domain.refunds import LineRequest, LineState, cumulative_delta, plan_refund
from core.errors import InsufficientPoints, RedeemExceedsLimit, RefundExceedsPurchase, TotalMismatch
from core.ids import luhn_digit, new_card_number, new_id

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def facts(available: int = 0) -> SaleFacts:
    return SaleFacts(local_time=NOW, has_customer=True, available_cp=available, purchase_count=3)


def evaluate_sale(program, tier, lines, total, redeem, available):
    return evaluate(program, tier, lines, total, redeem, facts(available))


def max_redeem_cp(program, tier, total, available):
    cap = int(total * tier.redeem_cap_percent / 100)
    return max_redeem(program, total, cap, facts(available))

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("value, precision, mode, expected", [
    (Decimal(6299), 0, "down", 6200), (Decimal(6299), 0, "half_up", 6300),
    (Decimal(6250), 0, "half_up", 6300), (Decimal(6201), 0, "up", 6300),
    (Decimal("6299.5"), 2, "down", 6299), (Decimal(6299), 1, "down", 6290),
    (Decimal(0), 0, "up", 0),
])
def test_round_cp(value, precision, mode, expected):
    assert round_cp(value, precision, mode) == expected


@pytest.mark.parametrize("total, weights, step, expected", [
    (100, [1, 1, 1], 1, [34, 33, 33]),
    (1000, [300, 700], 100, [300, 700]),
    (0, [5, 5], 1, [0, 0]),
    (10, [0, 0], 1, [0, 0]),
    (7, [1, 2, 4], 1, [1, 2, 4]),
    (5, [10, 1], 1, [5, 0]),
])
def test_allocate_adds_up(total, weights, step, expected):
    parts = allocate(total, weights, step)
    assert parts == expected
    if sum(weights):
        assert sum(parts) == total


def test_money_conversions():
    assert to_minor(Decimal("1250.50")) == 125050
    assert str(from_minor(125050)) == "1250.50"
    assert str(from_minor(-5)) == "-0.05"


def test_default_program():
    program = default_program()
    tier = program.tiers[0]
    assert (tier.accrual_percent, tier.redeem_cap_percent) == (5, 30)
    assert (program.lifetime_days, program.activation_delay_days, program.precision) == (365, 0, 0)
    assert program.rounding == "down"


def test_max_redeem_respects_cap_balance_and_point_value():
    program = default_program()
    tier = program.tiers[0]
    assert max_redeem_cp(program, tier, 100_000, 10**9) == 30_000
    assert max_redeem_cp(program, tier, 100_000, 12_345) == 12_300  # whole points only
    cheap = Program(point_value=Decimal("0.1"), tiers=[Tier(id="a", name="A")])
    assert max_redeem_cp(cheap, cheap.tiers[0], 100_000, 10**9) == 300_000  # 300 ₽ = 3000 pts


def test_evaluate_sale_allocates_per_line():
    program = default_program()
    lines = [SaleLine("a", 30_000), SaleLine("b", 70_000)]
    quote = evaluate_sale(program, program.tiers[0], lines, 100_000, 10_000, 50_000)
    assert quote.discount_minor == 10_000 and quote.accrual_cp == 4_500
    assert [x.discount_minor for x in quote.lines] == [3_000, 7_000]
    assert sum(x.accrued_cp for x in quote.lines) == 4_500
    assert quote.breakdown == {"tier": 4_500}


def test_evaluate_sale_errors():
    program = default_program()
    tier = program.tiers[0]
    with pytest.raises(TotalMismatch):
        evaluate_sale(program, tier, [SaleLine("a", 100)], 200, 0, 0)
    with pytest.raises(RedeemExceedsLimit) as exc:
        evaluate_sale(program, tier, [SaleLine("a", 10_000)], 10_000, 3_100, 10**6)
    assert exc.value.details["max_redeem"] == "30.00"
    with pytest.raises(Exception, match="multiple"):
        evaluate_sale(program, tier, [SaleLine("a", 10_000)], 10_000, 150, 10**6)


def test_nothing_accrues_when_redeeming_if_the_program_says_so():
    program = Program(accrual={"on": "nothing_when_redeeming"}, tiers=[Tier(id="a", name="A")])
    quote = evaluate_sale(program, program.tiers[0], [SaleLine("1", 10_000)], 10_000, 100, 1000)
    assert quote.accrual_cp == 0


def _lot(i: int, amount: int, *, avail: int = 0, expires: int | None = 365, at: int = 0) -> Lot:
    occurred = T0 + timedelta(days=at)
    return Lot(f"l{i}", occurred, occurred + timedelta(days=avail),
               None if expires is None else occurred + timedelta(days=expires), amount, amount)


def test_balance_at_splits_available_pending_and_expired():
    lots = [_lot(1, 100), _lot(2, 50, avail=14), _lot(3, 30, expires=10), _lot(4, 7, at=20)]
    b = balance_at(lots, T0 + timedelta(days=12))
    assert (b.available_cp, b.pending_cp) == (100, 50)
    assert b.pending == [(50, T0 + timedelta(days=14))]
    b = balance_at(lots, T0 + timedelta(days=21))
    assert (b.available_cp, b.pending_cp) == (157, 0)


def test_spending_takes_the_first_expiring_lot_first():
    lots = [_lot(1, 100, expires=300), _lot(2, 100, expires=30), _lot(3, 100, expires=None)]
    assert plan_spend(lots, T0, 150) == [("l2", 100), ("l1", 50)]
    with pytest.raises(InsufficientPoints):
        plan_spend(lots, T0, 301)


def test_take_back_starts_with_the_named_lot_and_reports_the_shortfall():
    lots = [_lot(1, 100, expires=30), _lot(2, 20, avail=14)]
    plan, short = plan_take_back(lots, T0, 150, first="l2")
    assert plan == [("l2", 20), ("l1", 100)] and short == 30


def test_cumulative_refund_never_drifts():
    moved = sum(cumulative_delta(49, before, before + 333, 999) for before in (0, 333, 666))
    assert moved == 49


def test_plan_refund():
    lines = [LineState("a", 40_000, 0, 20_000), LineState("b", 60_000, 0, 60_000)]
    assert plan_refund(lines) == {"a": 40_000, "b": 60_000}
    assert plan_refund(lines, 50_000) == {"a": 20_000, "b": 30_000}
    assert plan_refund(lines, requests=[LineRequest("a", amount_minor=20_000)]) == {"a": 20_000}
    with pytest.raises(RefundExceedsPurchase):
        plan_refund(lines, 100_001)


def test_ids_and_card_numbers():
    a, b = new_id("cus"), new_id("cus")
    assert a < b and a.startswith("cus_") and len(a) == 30
    number = new_card_number()
    assert len(number) == 13 and luhn_digit(number[:-1]) == number[-1]
