"""Customers' important dates (relatives' birthdays, anniversaries) and their bonus."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, or_, select

from core.db.models import CustomerDate, Merchant
from core.errors import ValidationFailed
from core.ids import new_id
from core.services import bonuses
from core.services.context import CoreContext
from core.services.customers import get_customer
from core.services.daily import celebrated_days
from core.services.programs import current_program

KINDS = ("relative_birthday", "anniversary", "other")
DATE = re.compile(r"^(?:(\d{4})-)?(\d{2})-(\d{2})$")
MAX_DATES = 10


@dataclass(frozen=True)
class ImportantDate:
    kind: str
    date: str  # "MM-DD" or "YYYY-MM-DD"
    label: str | None = None


def _parse(item: ImportantDate) -> tuple[int | None, int, int]:
    found = DATE.match(item.date)
    if item.kind not in KINDS or found is None:
        raise ValidationFailed(f"dates: kind is one of {', '.join(KINDS)}; date MM-DD or "
                               "YYYY-MM-DD", field="dates")
    year, month, day = (int(found.group(1)) if found.group(1) else None, int(found.group(2)),
                        int(found.group(3)))
    try:
        date(year or 2000, month, day)  # 2000 is a leap year: 29 February is a date
    except ValueError as exc:
        raise ValidationFailed(f"dates: {item.date} is not a date", field="dates") from exc
    return year, month, day


async def set_dates(ctx: CoreContext, merchant_id: str, customer_id: str,
                    items: list[ImportantDate]) -> list[dict[str, str | None]]:
    """Replace the customer's important dates."""
    if len(items) > MAX_DATES:
        raise ValidationFailed(f"dates: at most {MAX_DATES}", field="dates")
    parsed = [(item, _parse(item)) for item in items]
    async with ctx.uow() as uow:
        await get_customer(uow.session, merchant_id, customer_id, lock=True)
        await uow.session.execute(delete(CustomerDate).where(
            CustomerDate.customer_id == customer_id))
        for item, (year, month, day) in parsed:
            uow.session.add(CustomerDate(
                id=new_id("cdt"), merchant_id=merchant_id, customer_id=customer_id,
                kind=item.kind, label=(item.label or "").strip() or None, month=month, day=day,
                year=year, created_at=ctx.now()))
        await uow.commit()
    return [{"kind": i.kind, "date": i.date, "label": i.label} for i in items]


async def date_bonuses(ctx: CoreContext, merchant: Merchant, at: datetime) -> int:
    """The program's important-dates bonus, `days_before` each date, once a year per date."""
    async with ctx.db.read() as session:
        program = await current_program(session, merchant)
        rule = program.bonuses.important_dates
        if rule is None:
            return 0
        target = at.astimezone(ZoneInfo(merchant.timezone)).date() + timedelta(
            days=rule.days_before)
        same_day = [(CustomerDate.month == month) & (CustomerDate.day == day)
                    for month, day in celebrated_days(target)]
        query = select(CustomerDate.id, CustomerDate.customer_id).where(
            CustomerDate.merchant_id == merchant.id, or_(*same_day))
        if rule.kinds:
            query = query.where(CustomerDate.kind.in_(rule.kinds))
        due = list((await session.execute(query)).all())
    credited = 0
    for date_id, customer_id in due:
        credited += await bonuses.credit_once(
            ctx, program, customer_id, "important_date", rule, at,
            lambda c, date_id=date_id: f"date:{date_id}:{target.year}")  # type: ignore[misc]
    return credited
