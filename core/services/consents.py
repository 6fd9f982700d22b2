"""The consent log: grants and withdrawals, personal data (152-FZ) and advertising (38-FZ) apart.

Each row says which text version was shown, when, through which channel and which
messenger account. People consent before they are customers, so rows start with the
account only and get the customer when the account is linked.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Consent
from core.errors import ValidationFailed
from core.ids import new_id
from core.services.context import CoreContext

PERSONAL_DATA = "personal_data"  # 152-FZ: processing of personal data
ADVERTISING = "advertising"  # 38-FZ art. 18: advertising messages
KINDS = (PERSONAL_DATA, ADVERTISING)


async def record_consent(
    ctx: CoreContext, merchant_id: str, kind: str, granted: bool, *, text_version: str,
    channel: str, account_id: str | None = None, customer_id: str | None = None,
) -> str:
    """Write one grant (or withdrawal) to the log; its id."""
    if kind not in KINDS:
        raise ValidationFailed(f"consent kind must be one of {', '.join(KINDS)}", field="kind")
    async with ctx.uow() as uow:
        row = Consent(id=new_id("cns"), merchant_id=merchant_id, customer_id=customer_id,
                      channel_account_id=account_id, kind=kind, granted=granted,
                      text_version=text_version[:32], channel=channel, occurred_at=ctx.now())
        uow.session.add(row)
        await uow.commit()
    return row.id


async def attach_account_consents(session: AsyncSession, account_id: str, customer_id: str) -> None:
    """The account's consents given before it was linked now name the customer (same transaction)."""
    await session.execute(
        update(Consent)
        .where(Consent.channel_account_id == account_id, Consent.customer_id.is_(None))
        .values(customer_id=customer_id))


async def current_consents(ctx: CoreContext, merchant_id: str, customer_id: str) -> dict[str, bool]:
    """The latest word of the customer on each kind (absent: never asked, counts as no)."""
    async with ctx.db.read() as session:
        rows = await session.execute(
            select(Consent.kind, Consent.granted)
            .where(Consent.merchant_id == merchant_id, Consent.customer_id == customer_id)
            .order_by(Consent.occurred_at, Consent.id))
        state = {kind: False for kind in KINDS}
        for kind, granted in rows:
            state[kind] = granted
        return state


async def has_consent(ctx: CoreContext, merchant_id: str, customer_id: str, kind: str) -> bool:
    """Whether the customer's latest word on `kind` is a grant (marketing needs ADVERTISING)."""
    return (await current_consents(ctx, merchant_id, customer_id)).get(kind, False)
