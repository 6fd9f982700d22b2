"""Flow: the points history, a page at a time; paging edits the message in place.

The core's cursor (a base64 of the last entry's time and id) is longer than a button's
64 bytes, so the button carries a short form of the same two values:
"history:<microseconds since 1970 in base 36>.<entry id>".
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bots.dialog.dialog import Router, Turn
from bots.dialog.flows.menu import back_row, local_date
from bots.dialog.screens import Button
from bots.dialog.texts import catalogue
from core.errors import ValidationFailed
from core.services.history import ledger_page

router = Router("history")
PAGE = 5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    out = ""
    while True:
        n, rest = divmod(n, 36)
        out = DIGITS[rest] + out
        if n == 0:
            return out


def short_cursor(cursor: str) -> str:
    """The core's cursor in a form that fits a button."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    at, entry_id = json.loads(raw)
    delta = datetime.fromisoformat(at) - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{_base36(micros)}.{entry_id}"


def long_cursor(short: str) -> str:
    """Back to the core's cursor; ValidationFailed for anything that is not one of ours."""
    try:
        micros, entry_id = short.split(".", 1)
        at = EPOCH + timedelta(microseconds=int(micros, 36))
    except (ValueError, OverflowError) as exc:
        raise ValidationFailed("not a history cursor") from exc
    raw = json.dumps([at.isoformat(), entry_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def _line(turn: Turn, item: dict[str, Any]) -> str:
    kind = item["kind"]
    key = f"history.kind_{kind}" if f"history.kind_{kind}" in catalogue(turn.texts.locale) \
        else "history.kind_other"
    label = turn.texts(key, mechanic=item["mechanic"] or "", reason=item["reason"] or "",
                       level=item["referral_level"])
    return turn.texts("history.line", day=await local_date(turn, item["occurred_at"]),
                      amount=Decimal(item["points"]), label=label)


@router.action("history")
async def show_history(turn: Turn) -> None:
    """The first page (from the menu), or, in place, the page after a cursor ("0": the first)."""
    assert turn.account.customer_id is not None
    turn.account.go(None)
    paging = bool(turn.arg)
    try:
        cursor = long_cursor(turn.arg) if paging and turn.arg != "0" else None
        page = await ledger_page(turn.ctx, turn.account.merchant_id, turn.account.customer_id,
                                 cursor, PAGE)
    except ValidationFailed:
        turn.toast("common.outdated_button")
        return
    lines = [await _line(turn, item) for item in page["items"]]
    nav: list[Button] = []
    if cursor is not None:
        nav.append(turn.button("history.newest", "history:0"))
    if page["next_cursor"]:
        nav.append(turn.button("history.older", "history:" + short_cursor(page["next_cursor"])))
    rows = [nav, back_row(turn)] if nav else [back_row(turn)]
    turn.say("history.page" if lines else "history.empty", lines=lines, buttons=rows, edit=paging)
