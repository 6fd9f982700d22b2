"""A customer's points history: the ledger, newest first, keyset-paged."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from core.db.models import LedgerEntry
from core.errors import ValidationFailed
from core.services.context import CoreContext
from core.services.customers import get_customer
from core.services.views import entry_json


def _encode_cursor(entry: LedgerEntry) -> str:
    raw = json.dumps([entry.occurred_at.isoformat(), entry.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, entry_id = json.loads(raw)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive time")
        return when, str(entry_id)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed("cursor is not valid", field="cursor") from exc


async def ledger_page(
    ctx: CoreContext, merchant_id: str, customer_id: str, cursor: str | None, limit: int
) -> dict[str, Any]:
    """Newest first, keyset-paged so pages never shift under new entries."""
    async with ctx.db.read() as session:
        await get_customer(session, merchant_id, customer_id)
        query = select(LedgerEntry).where(
            LedgerEntry.customer_id == customer_id, LedgerEntry.merchant_id == merchant_id
        )
        if cursor:
            at, entry_id = _decode_cursor(cursor)
            query = query.where(
                or_(LedgerEntry.occurred_at < at,
                    and_(LedgerEntry.occurred_at == at, LedgerEntry.id < entry_id))
            )
        rows = list(await session.scalars(
            query.order_by(LedgerEntry.occurred_at.desc(), LedgerEntry.id.desc()).limit(limit + 1)
        ))
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [entry_json(e) for e in rows],
        "next_cursor": _encode_cursor(rows[-1]) if more and rows else None,
    }
