"""What the engine needs to know about the moment and the customer, gathered by the service."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta


@dataclass(frozen=True)
class CappedPoints:
    """Available points of lots that may pay only `cap_percent` of a receipt (welcome bonus)."""

    cap_percent: int  # thousandths of a percent, as stored on the lots
    available_cp: int


@dataclass(frozen=True)
class SaleFacts:
    """The customer's situation at the sale's time (an anonymous sale has no customer)."""

    local_time: datetime  # the sale's time in the merchant's time zone
    has_customer: bool = False
    tier_id: str | None = None  # the tier the sale is rated at
    available_cp: int = 0  # spendable without a cap of their own
    capped: list[CappedPoints] = field(default_factory=list)
    birth_date: date | None = None
    purchase_count: int = 0  # purchases before this one (fully refunded ones do not count)
    last_purchase_at: datetime | None = None  # never cleared, refunds or not
    last_month_spend_minor: int = 0
    nth_counts: dict[str, int] = field(default_factory=dict)  # mechanic id -> earlier purchases

    @property
    def first_purchase(self) -> bool:
        """The customer's first purchase ever: a refunded first purchase still was one."""
        return self.has_customer and self.purchase_count == 0 and self.last_purchase_at is None


def in_birthday_window(birth: date | None, today: date, before: int, after: int) -> bool:
    """Is `today` within [birthday - before, birthday + after], across a year boundary too?"""
    if birth is None:
        return False
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            day = birth.replace(year=year)
        except ValueError:  # 29 February in a common year: the 28th
            day = date(year, 2, 28)
        if day - timedelta(days=before) <= today <= day + timedelta(days=after):
            return True
    return False
