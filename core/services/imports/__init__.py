"""Customer import from CSV: one service for the CLI now and the merchant console later.

A merchant moving to Kartochka brings their base as a spreadsheet: UTF-8 or cp1251
(what Excel saves in Russia), `,` or `;` between values, one customer a line with
the columns phone, card, name, birth_date, gender, tier, balance and
balance_expires_at (only phone is required; header names are case-insensitive).

The import is idempotent by phone: a customer already in the base is updated with
the values the file gives (an empty cell changes nothing), and an opening balance
is credited once per customer, so running the same file twice changes nothing the
second time.

The steps live in the modules of this package: `reading` (bytes to rows), `validation`
(rows to values or errors), `existing` (what the base holds), `planning` (what a row
changes) and `writing` (the batched write).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from core.db.models import Merchant
from core.domain.program import Program
from core.errors import MerchantNotFound
from core.services.context import CoreContext
from core.services.imports.batches import BATCH_ROWS
from core.services.imports.existing import (
    OPENING_BALANCE,
    Existing,
    card_owners,
    check_against_base,
    load_existing,
)
from core.services.imports.planning import count_plan, plan_row
from core.services.imports.reading import COLUMNS, CsvRows, decode_csv, detect_delimiter, read_csv
from core.services.imports.results import ImportResult, RowError
from core.services.imports.validation import (
    EARLIEST_BIRTH_DATE,
    GENDERS,
    MAX_BALANCE,
    CustomerRow,
    RowRules,
    check_repeats,
    parse_balance,
    parse_birth_date,
    parse_card,
    parse_date,
    parse_expiry,
    parse_gender,
    parse_name,
    parse_phone,
    parse_tier,
    validate_row,
)
from core.services.imports.writing import new_imported_customer, write_rows
from core.services.programs import current_program

log = logging.getLogger("kartochka.imports")
REFRESH_STATISTICS_AFTER = 500  # rows written; fewer: autovacuum's next round is soon enough
IMPORTED_TABLES = ("customers", "cards", "ledger_entries")

__all__ = [
    "BATCH_ROWS",
    "COLUMNS",
    "EARLIEST_BIRTH_DATE",
    "GENDERS",
    "MAX_BALANCE",
    "OPENING_BALANCE",
    "CsvRows",
    "CustomerRow",
    "ImportResult",
    "RowError",
    "RowRules",
    "decode_csv",
    "detect_delimiter",
    "import_customers",
    "new_imported_customer",
    "parse_balance",
    "parse_birth_date",
    "parse_card",
    "parse_date",
    "parse_expiry",
    "parse_gender",
    "parse_name",
    "parse_phone",
    "parse_tier",
    "read_csv",
    "validate_row",
]


async def import_customers(
    ctx: CoreContext,
    merchant_id: str,
    data: bytes,
    *,
    filename: str,
    dry_run: bool = False,
    actor: str | None = None,
) -> ImportResult:
    """Import customers from the bytes of a CSV file.

    All or nothing: the whole file is validated first, and if any row has an error
    nothing is written and every error is reported (with its line number), so a
    merchant migrating their base fixes the file and runs it again rather than
    hunting for which half went in. A dry run validates and counts the same way
    and never writes.

    A valid file is written in transactions of BATCH_ROWS rows, so tills are not
    held up behind one long write. Should a batch fail after validation (someone
    took a card in between), the batches before it stay; running the file again
    completes the import, since it is idempotent by phone.
    """
    now = ctx.now()
    parsed = read_csv(data)
    checked = await _check_file(ctx, merchant_id, parsed, now)
    result = ImportResult(dry_run=dry_run, rows=parsed.count,
                          errors=sorted(checked.errors, key=lambda e: e.line))
    if result.errors or dry_run:
        for row in checked.rows:
            count_plan(result, plan_row(row, checked.states.get(row.phone)))
        return result
    await write_rows(ctx, merchant_id, checked.program, checked.rows, result,
                     now=now, filename=filename, actor=actor)
    if result.created + result.updated >= REFRESH_STATISTICS_AFTER:
        # Tills look these customers up at once: plans made for the tables as they were
        # (empty, at a first import) would read every customer of the merchant per lookup.
        try:
            await ctx.db.refresh_statistics(*IMPORTED_TABLES)
        except Exception:  # the import is written; autovacuum gathers them a little later
            log.exception("gathering statistics after an import failed",
                          extra={"merchant_id": merchant_id})
    return result


@dataclass(frozen=True)
class _Checked:
    """The file checked against the merchant's program and base: its valid rows and all errors."""

    program: Program
    rows: list[CustomerRow]
    states: dict[str, Existing]
    errors: list[RowError]


async def _check_file(ctx: CoreContext, merchant_id: str, parsed: CsvRows, now: datetime) -> _Checked:
    """Validate every row, then the file as a whole: repeats within it, conflicts with the base."""
    errors = parsed.errors
    async with ctx.db.read() as session:
        merchant = await session.get(Merchant, merchant_id)
        if merchant is None:
            raise MerchantNotFound("no such merchant")
        program = await current_program(session, merchant)
        rules = RowRules(merchant.country, ZoneInfo(merchant.timezone),
                         tuple(t.id for t in program.tiers), now)
        rows: list[CustomerRow] = []
        for line, cells in parsed.rows:
            row, row_errors = validate_row(line, cells, rules)
            errors.extend(row_errors)
            rows.append(row)
        check_repeats(rows, errors)
        found = await load_existing(session, merchant_id, [r.phone for r in rows if r.phone])
        owners = await card_owners(session, merchant_id, [r.card for r in rows if r.card])
    states = {phone: state for phone, (state, _) in found.items()}
    check_against_base(rows, states, owners, errors)
    bad_lines = {error.line for error in errors}
    return _Checked(program, [row for row in rows if row.line not in bad_lines], states, errors)
