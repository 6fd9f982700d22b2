"""The ledger: every movement of points, tagged with its source; credits are lots."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db.base import Base, UTCDateTime

if TYPE_CHECKING:
    from core.db.models.purchase import Purchase, Refund


class LedgerEntry(Base):
    """One movement. `amount_cp` changes the balance, `debt_cp` the debt.

    A credit with `remaining_cp` set is a lot: spendable from `available_at`
    until `expires_at`. Debits point at the lots they took from through
    LotAllocation, so the balance at any past time can be recomputed.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_customer_time", "customer_id", "occurred_at", "id"),
        Index("ix_ledger_customer_lots", "customer_id", "remaining_cp"),
        Index("ix_ledger_merchant_expiry", "merchant_id", "expires_at"),
        UniqueConstraint("merchant_id", "idempotency_key"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(24))
    amount_cp: Mapped[int] = mapped_column(BigInteger)
    debt_cp: Mapped[int] = mapped_column(BigInteger, default=0)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    available_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    remaining_cp: Mapped[int | None] = mapped_column(BigInteger)
    # A lot that may pay only this share of a receipt (thousandths of a percent).
    redeem_cap_milli: Mapped[int | None] = mapped_column(Integer)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    idempotency_key: Mapped[str | None] = mapped_column(String(160))
    # Source tags: which mechanic, purchase, refund, referral level, campaign, who.
    mechanic: Mapped[str | None] = mapped_column(String(32))
    purchase_id: Mapped[str | None] = mapped_column(ForeignKey("purchases.id"), index=True)
    refund_id: Mapped[str | None] = mapped_column(ForeignKey("refunds.id"))
    # Declared so one flush inserts purchases and refunds before the entries naming them.
    purchase: Mapped[Purchase | None] = relationship(lazy="raise", viewonly=False,
                                                     foreign_keys=[purchase_id])
    refund: Mapped[Refund | None] = relationship(lazy="raise", foreign_keys=[refund_id])
    referral_level: Mapped[int | None] = mapped_column(Integer)
    campaign_id: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(500))


class LotAllocation(Base):
    """Points taken from a lot (positive) or given back to it (negative) by an entry."""

    __tablename__ = "lot_allocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("ledger_entries.id"), index=True)
    lot_id: Mapped[str] = mapped_column(ForeignKey("ledger_entries.id"), index=True)
    amount_cp: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Relationships only so the unit of work inserts entries before their allocations.
    entry: Mapped[LedgerEntry] = relationship(foreign_keys=[entry_id], lazy="raise")
    lot: Mapped[LedgerEntry] = relationship(foreign_keys=[lot_id], lazy="raise")
