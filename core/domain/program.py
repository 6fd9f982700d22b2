"""The program document: a merchant's rules, versioned, validated with errors naming the field.

Evaluation order (the engine, core.domain.engine, follows it):
1. Line promotions ("1+1", "second item −50%", "every Nth purchase free") and the
   tier's discount (discount programs) lower what each line costs.
2. Points may pay for each line up to its cap: the tier's cap, or the category's
   cap (the tier's own category caps first, then the program's), nothing for
   excluded categories; the first purchase may have a lower cap; lots with a
   cap of their own (a welcome bonus "at most 15% of a receipt") add only up to
   that share. Points are spent from the lots that expire first.
3. Accrual is computed per line on what is paid in money (or nothing at all when
   points are used, if the program says so), never on excluded categories:
   the tier's percent plus every extra percent that applies (line bonuses,
   receipt brackets, happy hours, event dates, birthday window, quick return,
   last month's target) add up; the combined cap limits that sum per line.
   "1 point per N" tiers give points per complete N of the receipt's base.
4. Fixed points (baskets, quantity bonuses, fixed boosts) are added after the cap.
5. Rounding happens once, on the receipt's total accrual, with the program's
   precision and mode; the breakdown lists each mechanic rounded the same way
   and a "rounding" line for the difference, so it always adds up.
6. Referral rewards go to the referrer chain on what the friend paid in money.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from core.domain.mechanics import (
    Amount,
    Bonuses,
    Gift,
    Mechanic,
    Model,
    Percent,
    PointsAmount,
    Present,
)


class PointsPer(Model):
    """"1 point per N": `points` for every complete `amount` of money."""

    amount: Annotated[Decimal, Field(gt=0, le=Decimal("1e9"), decimal_places=2)]
    points: PointsAmount = Decimal(1)


class Tier(Model):
    """One level of the program: its rates and what it takes to reach it."""

    id: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=64)
    accrual_percent: Percent = Decimal(5)
    points_per: PointsPer | None = None
    discount_percent: Percent = Decimal(0)
    redeem_cap_percent: Percent = Decimal(30)
    redeem_cap_by_category: dict[str, Percent] = Field(default_factory=dict)
    threshold: Amount = Decimal(0)
    lifetime_days: int | None = Field(default=None, ge=1, le=3650)
    referral_percents: list[Percent] | None = Field(default=None, max_length=5)


class TierRules(Model):
    """How customers move between tiers."""

    basis: Literal["lifetime_spend", "period_spend", "single_receipt", "purchase_count"] = (
        "lifetime_spend")
    period_months: int = Field(default=12, ge=1, le=60)
    spend: Literal["net", "gross"] = "net"
    start_tier: str | None = None
    # on_purchase: a sale raises the tier at once; on_review: only the monthly review
    # (the night of the 1st) moves it, up or down; before_each_sale: every sale is
    # rated by the spend of the period just before it (up or down).
    changes: Literal["on_purchase", "on_review", "before_each_sale"] = "on_purchase"
    # period_spend over whole calendar months before the review, or rolling back from now.
    window: Literal["calendar_months", "rolling"] = "calendar_months"


class Accrual(Model):
    on: Literal["money_part", "nothing_when_redeeming"] = "money_part"
    excluded_categories: list[str] = Field(default_factory=list)
    combined_cap_percent: Percent | None = None


class Redemption(Model):
    mode: Literal["points", "gifts_only"] = "points"
    excluded_categories: list[str] = Field(default_factory=list)
    cap_by_category: dict[str, Percent] = Field(default_factory=dict)
    first_purchase_cap_percent: Percent | None = None
    confirm: bool = False


class CurrencyName(Model):
    """Plural forms: Russian one/few/many (бонус, бонуса, бонусов), English one/other."""

    ru: list[str] = Field(default_factory=lambda: ["бонус", "бонуса", "бонусов"],
                          min_length=3, max_length=3)
    en: list[str] = Field(default_factory=lambda: ["point", "points"], min_length=2, max_length=2)


class Program(Model):
    """A merchant's loyalty rules (one version)."""

    kind: Literal["bonus", "discount", "both"] = "bonus"
    title: str | None = Field(default=None, max_length=120)
    currency: CurrencyName = Field(default_factory=CurrencyName)
    point_value: Annotated[Decimal, Field(gt=0, le=1000, decimal_places=4)] = Decimal(1)
    precision: int = Field(default=0, ge=0, le=2)
    rounding: Literal["down", "half_up", "up"] = "down"
    activation_delay_days: int = Field(default=0, ge=0, le=365)
    # True: points activate at the start of a local day ("the next day" = next midnight).
    activation_at_day_start: bool = False
    lifetime_days: int | None = Field(default=365, ge=1, le=3650)
    lifetime_from: Literal["accrual", "last_purchase"] = "accrual"
    expiry_reminder_days: int = Field(default=7, ge=0, le=90)
    tier_rules: TierRules = Field(default_factory=TierRules)
    tiers: list[Tier] = Field(min_length=1, max_length=20)
    accrual: Accrual = Field(default_factory=Accrual)
    redemption: Redemption = Field(default_factory=Redemption)
    mechanics: list[Mechanic] = Field(default_factory=list, max_length=50)
    bonuses: Bonuses = Field(default_factory=Bonuses)
    gifts: list[Gift] = Field(default_factory=list, max_length=200)
    presents: list[Present] = Field(default_factory=list, max_length=50)
    category_names: dict[str, str] = Field(default_factory=dict)  # what customers read

    @model_validator(mode="after")
    def _consistent(self) -> Program:
        ids = [t.id for t in self.tiers]
        if len(set(ids)) != len(ids):
            raise ValueError("tiers: ids must be unique")
        thresholds = [t.threshold for t in self.tiers]
        if thresholds[0] != 0:
            raise ValueError("tiers[0].threshold: the first tier starts at 0")
        if thresholds != sorted(thresholds) or len(set(thresholds)) != len(thresholds):
            raise ValueError("tiers: thresholds must strictly increase")
        if self.tier_rules.start_tier is not None and self.tier_rules.start_tier not in ids:
            raise ValueError("tier_rules.start_tier: not one of the tiers")
        mechanic_ids = [m.id for m in self.mechanics]
        if len(set(mechanic_ids)) != len(mechanic_ids):
            raise ValueError("mechanics: give each mechanic of the same type its own id")
        gift_ids = [g.id for g in self.gifts]
        if len(set(gift_ids)) != len(gift_ids):
            raise ValueError("gifts: ids must be unique")
        present_ids = {p.id for p in self.presents}
        for m in self.mechanics:
            named = getattr(m, "present", None)
            if named is not None and named not in present_ids:
                raise ValueError(f"mechanics: present {named!r} is not in presents")
        if self.redemption.mode == "gifts_only" and not self.gifts:
            raise ValueError("gifts: a gifts-only program needs a gifts catalog")
        return self

    @property
    def accrues(self) -> bool:
        return self.kind in ("bonus", "both")

    def tier(self, tier_id: str | None) -> Tier:
        """The tier with this id, or the starting tier (a tier removed from the program)."""
        for tier in self.tiers:
            if tier.id == tier_id:
                return tier
        return self.start_tier()

    def start_tier(self) -> Tier:
        start = self.tier_rules.start_tier
        return next((t for t in self.tiers if t.id == start), self.tiers[0])

    def tier_for(self, measure: Decimal) -> Tier:
        """The highest tier whose threshold `measure` reaches (money in currency, or a count)."""
        reached = self.tiers[0]
        for tier in self.tiers:
            if tier.threshold <= measure:
                reached = tier
        return reached

    def tier_for_spend(self, lifetime_spend_minor: int) -> Tier:
        return self.tier_for(Decimal(lifetime_spend_minor) / 100)

    def next_tier(self, tier: Tier) -> Tier | None:
        index = self.tiers.index(tier)
        return self.tiers[index + 1] if index + 1 < len(self.tiers) else None

    def lifetime_for(self, tier: Tier) -> int | None:
        return tier.lifetime_days if tier.lifetime_days is not None else self.lifetime_days

    def gift(self, gift_id: str) -> Gift | None:
        return next((g for g in self.gifts if g.id == gift_id), None)


def default_program() -> Program:
    """A new merchant's program: one tier, 5% back, up to 30% payable, 365 days, whole points."""
    return Program(tiers=[Tier(id="base", name="Базовый")])


def parse_program(document: dict[str, Any]) -> Program:
    """Validate a program document; pydantic's ValidationError names the failing field."""
    return Program.model_validate(document)


def program_json_schema() -> dict[str, Any]:
    """The published JSON Schema of the program document, its evaluation order as description."""
    schema = Program.model_json_schema()
    schema["description"] = (__doc__ or "").strip()
    return schema
