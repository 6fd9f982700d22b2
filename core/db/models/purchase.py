"""Purchases (receipts), their lines with per-line allocation, and refunds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db.base import Base, UTCDateTime


class Purchase(Base):
    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("merchant_id", "receipt_id"),
        Index("ix_purchases_customer", "customer_id", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    receipt_id: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    store_id: Mapped[str | None] = mapped_column(ForeignKey("stores.id"))
    cashier_id: Mapped[str | None] = mapped_column(ForeignKey("cashiers.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    total_minor: Mapped[int] = mapped_column(BigInteger)
    discount_minor: Mapped[int] = mapped_column(BigInteger)
    promo_discount_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    redeemed_cp: Mapped[int] = mapped_column(BigInteger)
    accrued_cp: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # What the sale counts for tiers (gross or net, as its program said), and what refunds
    # have taken off that, line by line.
    spend_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    refunded_spend_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    program_version: Mapped[int] = mapped_column(Integer)
    tier_id: Mapped[str | None] = mapped_column(String(32))
    breakdown: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_digest: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)


class PurchaseLine(Base):
    __tablename__ = "purchase_lines"
    __table_args__ = (UniqueConstraint("purchase_id", "line_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    purchase_id: Mapped[str] = mapped_column(ForeignKey("purchases.id"))
    purchase: Mapped[Purchase] = relationship(lazy="raise")
    position: Mapped[int] = mapped_column(Integer)
    line_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(64))
    price_minor: Mapped[int | None] = mapped_column(BigInteger)
    quantity: Mapped[str | None] = mapped_column(String(24))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    discount_minor: Mapped[int] = mapped_column(BigInteger)
    redeemed_cp: Mapped[int] = mapped_column(BigInteger)
    accrued_cp: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("merchant_id", "refund_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    purchase_id: Mapped[str] = mapped_column(ForeignKey("purchases.id"), index=True)
    refund_key: Mapped[str] = mapped_column(String(128))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    request_digest: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
