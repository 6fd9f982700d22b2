"""Customers, their cards, messenger accounts and consents."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, UTCDateTime


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("merchant_id", "phone"),
        UniqueConstraint("merchant_id", "referral_code"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    phone: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(1))
    tier_id: Mapped[str] = mapped_column(String(32))
    tier_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    referrer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    referral_code: Mapped[str] = mapped_column(String(16))
    registration_channel: Mapped[str] = mapped_column(String(16), default="api")
    source: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    merged_into_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    # Running figures, kept in the same transaction as the ledger; a check recomputes them.
    available_cp: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_cp: Mapped[int] = mapped_column(BigInteger, default=0)
    debt_cp: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_spend_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    purchase_count: Mapped[int] = mapped_column(Integer, default=0)
    last_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Card(Base):
    """A number the customer shows: virtual, or pre-printed and imported (customer_id empty)."""

    __tablename__ = "cards"
    __table_args__ = (UniqueConstraint("merchant_id", "number"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    number: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16), default="virtual")
    status: Mapped[str] = mapped_column(String(16), default="active")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class QrToken(Base):
    """A short-lived rotating QR code standing for a customer (digest only)."""

    __tablename__ = "qr_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChannelAccount(Base):
    """One messenger identity; linked to a customer by a confirmed phone."""

    __tablename__ = "channel_accounts"
    __table_args__ = (UniqueConstraint("merchant_id", "channel", "bot_id", "external_user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    bot_id: Mapped[str] = mapped_column(String(32))
    external_user_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(8), default="ru")
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Consent(Base):
    """A grant or withdrawal of consent (152-FZ personal data; 38-FZ advertising)."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_customer_kind", "customer_id", "kind"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    channel_account_id: Mapped[str | None] = mapped_column(ForeignKey("channel_accounts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column(Boolean)
    text_version: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CustomerDate(Base):
    """A date that matters to the customer (a relative's birthday, an anniversary)."""

    __tablename__ = "customer_dates"
    __table_args__ = (Index("ix_customer_dates_day", "merchant_id", "month", "day"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    label: Mapped[str | None] = mapped_column(String(100))
    month: Mapped[int] = mapped_column(Integer)
    day: Mapped[int] = mapped_column(Integer)
    year: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
