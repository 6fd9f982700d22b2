"""The program document: a merchant's rules, versioned and validated with errors naming the field.

Step 1 carries tiers by lifetime spend, accrual and redemption caps, activation
delay and lifetime; the rules engine of step 2 extends this document.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=6, decimal_places=3)]
Amount = Annotated[Decimal, Field(ge=0, le=Decimal("1e12"), decimal_places=2)]


class Tier(BaseModel):
    """One level of the program: its rates and what it takes to reach it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=64)
    accrual_percent: Percent = Decimal(5)
    redeem_cap_percent: Percent = Decimal(30)
    threshold_lifetime_spend: Amount = Decimal(0)
    lifetime_days: int | None = Field(default=None, ge=1, le=3650)


class Program(BaseModel):
    """A merchant's loyalty rules (one version)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["bonus"] = "bonus"
    points_name: str = Field(default="бонусы", max_length=32)
    point_value: Annotated[Decimal, Field(gt=0, le=1000, decimal_places=4)] = Decimal(1)
    precision: int = Field(default=0, ge=0, le=2)
    rounding: Literal["down", "half_up", "up"] = "down"
    activation_delay_days: int = Field(default=0, ge=0, le=365)
    lifetime_days: int | None = Field(default=365, ge=1, le=3650)
    accrue_on: Literal["money_part", "nothing_when_redeeming"] = "money_part"
    spend_basis: Literal["net", "gross"] = "net"
    tiers: list[Tier] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _tiers_ordered(self) -> Program:
        ids = [t.id for t in self.tiers]
        if len(set(ids)) != len(ids):
            raise ValueError("tiers: ids must be unique")
        thresholds = [t.threshold_lifetime_spend for t in self.tiers]
        if thresholds[0] != 0:
            raise ValueError("tiers[0].threshold_lifetime_spend: the first tier starts at 0")
        if thresholds != sorted(thresholds) or len(set(thresholds)) != len(thresholds):
            raise ValueError("tiers: thresholds must strictly increase")
        return self

    def tier(self, tier_id: str | None) -> Tier:
        """The tier with this id, or the first one (a tier removed from the program)."""
        for tier in self.tiers:
            if tier.id == tier_id:
                return tier
        return self.tiers[0]

    def tier_for_spend(self, lifetime_spend_minor: int) -> Tier:
        """The highest tier whose threshold the lifetime spend reaches."""
        reached = self.tiers[0]
        for tier in self.tiers:
            if tier.threshold_lifetime_spend * 100 <= lifetime_spend_minor:
                reached = tier
        return reached

    def next_tier(self, tier: Tier) -> Tier | None:
        index = self.tiers.index(tier)
        return self.tiers[index + 1] if index + 1 < len(self.tiers) else None

    def lifetime_for(self, tier: Tier) -> int | None:
        return tier.lifetime_days if tier.lifetime_days is not None else self.lifetime_days


def default_program() -> Program:
    """A new merchant's program: one tier, 5% back, up to 30% payable, 365 days, whole points."""
    return Program(tiers=[Tier(id="base", name="Базовый")])


def parse_program(document: dict[str, Any]) -> Program:
    """Validate a program document; pydantic's ValidationError names the failing field."""
    return Program.model_validate(document)


def program_json_schema() -> dict[str, Any]:
    """The published JSON Schema of the program document."""
    return Program.model_json_schema()
