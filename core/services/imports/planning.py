"""Planning a row against the base (what it would change) and counting the plans in the result."""

from __future__ import annotations

from dataclasses import dataclass

from core.services.imports.existing import Existing
from core.services.imports.results import ImportResult
from core.services.imports.validation import CustomerRow


@dataclass(frozen=True)
class Plan:
    create: bool
    changes: dict[str, object]
    card: str | None
    credit: bool

    @property
    def changed(self) -> bool:
        return self.create or bool(self.changes) or self.card is not None or self.credit


def plan_row(row: CustomerRow, state: Existing | None) -> Plan:
    """What the row changes: given values that differ, a new card, a first opening balance."""
    given: dict[str, object] = {
        key: value
        for key, value in (("name", row.name), ("birth_date", row.birth_date), ("gender", row.gender))
        if value is not None
    }
    if row.tier is not None:
        given.update(tier_id=row.tier, tier_manual=True)
    credit = bool(row.balance_cp)
    if state is None:
        return Plan(create=True, changes=given, card=row.card, credit=credit)
    return Plan(
        create=False,
        changes={key: value for key, value in given.items() if state.fields[key] != value},
        card=row.card if row.card and row.card not in state.cards else None,
        credit=credit and not state.has_opening_balance,
    )


def count_plan(result: ImportResult, plan: Plan) -> None:
    """Add the row to the result's counts: created, updated or unchanged; balance credited."""
    if plan.create:
        result.created += 1
    elif plan.changed:
        result.updated += 1
    else:
        result.unchanged += 1
    if plan.credit:
        result.balances_credited += 1
