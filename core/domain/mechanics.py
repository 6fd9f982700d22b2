"""Mechanics of the program document: boosts, baskets, line promotions and bonuses.

Each mechanic is a small validated model with a `type`; the engine
(core.domain.engine) evaluates them in the order documented there.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=6, decimal_places=3)]
Amount = Annotated[Decimal, Field(ge=0, le=Decimal("1e12"), decimal_places=2)]
PointsAmount = Annotated[Decimal, Field(ge=0, le=Decimal("1e9"), decimal_places=2)]
Days = Annotated[int, Field(ge=0, le=3650)]
HHMM = Annotated[str, Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")]
# "03-08" every year, or "2026-11-27" once (a movable date such as Black Friday).
MonthDay = Annotated[str, Field(
    pattern=r"^(\d{4}-)?(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selector(Model):
    """Which receipt lines a mechanic looks at: by SKU or by category (empty = every line)."""

    skus: list[str] = Field(default_factory=list, max_length=500)
    categories: list[str] = Field(default_factory=list, max_length=100)

    def matches(self, sku: str | None, category: str | None) -> bool:
        if not self.skus and not self.categories:
            return True
        return (sku is not None and sku in self.skus) or (
            category is not None and category in self.categories
        )


class Boost(Model):
    """What a mechanic gives: extra accrual percent, or fixed points; only to some tiers."""

    extra_percent: Percent = Decimal(0)
    points: PointsAmount = Decimal(0)
    tiers: list[str] = Field(default_factory=list)  # empty: every tier
    present: str | None = None  # a present from `presents`, handed over at the till

    def for_tier(self, tier_id: str | None) -> bool:
        return not self.tiers or tier_id in self.tiers


class CategoryBonus(Boost):
    """More for some goods: +x% on matching lines, or points per matching unit."""

    type: Literal["category_bonus"]
    id: str = "category_bonus"
    match: Selector
    per_unit: bool = False


class Basket(Boost):
    """Cross-sell: points when the receipt holds something from every group (wine and cheese)."""

    type: Literal["basket"]
    id: str = "basket"
    all_of: list[Selector] = Field(min_length=2, max_length=10)


class Quantity(Boost):
    """More than N units of matching goods in one receipt."""

    type: Literal["quantity"]
    id: str = "quantity"
    match: Selector
    min_units: int = Field(ge=1, le=10000)


class NthPurchaseFree(Model):
    """Every Nth purchase of matching goods is free ("the 5th coffee"): its cheapest unit."""

    type: Literal["nth_purchase_free"]
    id: str = "nth_purchase_free"
    match: Selector
    every: int = Field(ge=2, le=100)


class MonthlyTarget(Model):
    """Spend at least `spend` in a calendar month and earn `extra_percent` more next month."""

    type: Literal["monthly_target"]
    id: str = "monthly_target"
    spend: Amount
    extra_percent: Percent


class EventDates(Boost):
    """Dates in the merchant's time zone (8 March, New Year, the store's birthday)."""

    type: Literal["event_dates"]
    id: str = "event_dates"
    dates: list[MonthDay] = Field(min_length=1, max_length=50)


class Bracket(Model):
    from_amount: Amount
    extra_percent: Percent = Decimal(0)
    points: PointsAmount = Decimal(0)


class ReceiptBrackets(Model):
    """The larger the receipt, the more: the highest bracket the receipt reaches applies."""

    type: Literal["receipt_brackets"]
    id: str = "receipt_brackets"
    brackets: list[Bracket] = Field(min_length=1, max_length=20)


class HappyHours(Boost):
    """Extra on some days of the week and hours (merchant's time; ISO weekdays 1=Mon)."""

    type: Literal["happy_hours"]
    id: str = "happy_hours"
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    start: HHMM = "00:00"
    end: HHMM = "24:00"  # exclusive: [start, end)


class BirthdayWindow(Boost):
    """Extra for purchases from `days_before` to `days_after` the customer's birthday."""

    type: Literal["birthday_window"]
    id: str = "birthday_window"
    days_before: Days = 0
    days_after: Days = 0


class QuickReturn(Boost):
    """A purchase within `within_days` of the previous one."""

    type: Literal["quick_return"]
    id: str = "quick_return"
    within_days: int = Field(ge=1, le=365)


class LinePromo(Model):
    """Line promotions: "1+1" (every second unit free) or "second item −50%"."""

    type: Literal["line_promo"]
    id: str = "line_promo"
    match: Selector
    nth_unit: int = Field(default=2, ge=2, le=20)
    discount_percent: Percent = Decimal(100)


Mechanic = Annotated[
    CategoryBonus | Basket | Quantity | NthPurchaseFree | MonthlyTarget | EventDates
    | ReceiptBrackets | HappyHours | BirthdayWindow | QuickReturn | LinePromo,
    Field(discriminator="type"),
]


class Bonus(Model):
    """A one-off credit with its own lifetime, activation and redemption cap; only to some
    tiers when `tiers` is given."""

    points: PointsAmount
    lifetime_days: int | None = Field(default=None, ge=1, le=3650)
    activation_days: Days = 0
    redeem_cap_percent: Percent | None = None
    tiers: list[str] = Field(default_factory=list)


class ReactivationBonus(Bonus):
    """For a customer who has not bought for `after_days`: once per such pause."""

    after_days: int = Field(ge=1, le=3650)


class WelcomeBonus(Bonus):
    on: Literal["registration", "first_purchase"] = "registration"


class BirthdayBonus(Bonus):
    days_before: Days = 0


class DatesBonus(Bonus):
    """Points `days_before` the customer's important dates (relatives' birthdays...)."""

    days_before: Days = 0
    kinds: list[str] = Field(default_factory=list)  # empty: every kind


class ReviewBonus(Bonus):
    once: bool = True


class ReferralLevel(Model):
    percent: Percent = Decimal(0)
    per_amount: Amount | None = None
    points: PointsAmount = Decimal(0)


class Referral(Model):
    """Rewards to the referrer chain for a friend's purchases, and a gift to the friend."""

    levels: list[ReferralLevel] = Field(default_factory=list, max_length=5)
    rate_from: Literal["buyer", "referrer"] = "buyer"
    on: Literal["first_purchase", "every_purchase"] = "every_purchase"
    friend_bonus: Bonus | None = None
    lifetime_days: int | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _one_kind_per_level(self) -> Referral:
        for i, level in enumerate(self.levels):
            if level.per_amount is not None and level.percent:
                raise ValueError(f"levels[{i}]: give percent or per_amount with points, not both")
        return self


class Present(Model):
    """Something the till hands over when a mechanic applies (not bought with points)."""

    id: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=120)


class Gift(Model):
    id: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=120)
    points: PointsAmount


class Bonuses(Model):
    welcome: WelcomeBonus | None = None
    birthday: BirthdayBonus | None = None
    review: ReviewBonus | None = None
    referral: Referral | None = None
    reactivation: list[ReactivationBonus] = Field(default_factory=list, max_length=10)
    important_dates: DatesBonus | None = None
