"""The tenant and what belongs to it directly: program versions, secrets, keys, stores."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, UTCDateTime


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    country: Mapped[str] = mapped_column(String(2), default="RU")
    program_version: Mapped[int] = mapped_column(Integer, default=0)
    # Named on the consent screen (152-FZ): who processes the data, and the policy.
    legal_name: Mapped[str | None] = mapped_column(String(300))
    privacy_policy_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProgramVersion(Base):
    __tablename__ = "program_versions"
    __table_args__ = (UniqueConstraint("merchant_id", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MerchantSecret(Base):
    """A merchant's secret (bot token, gateway password), encrypted with the SECRET_KEY."""

    __tablename__ = "merchant_secrets"
    __table_args__ = (UniqueConstraint("merchant_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(100))
    ciphertext: Mapped[str] = mapped_column(String(4000))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """A REST API key: only the SHA-256 digest of the token is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Store(Base):
    __tablename__ = "stores"
    __table_args__ = (UniqueConstraint("merchant_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Cashier(Base):
    __tablename__ = "cashiers"
    __table_args__ = (UniqueConstraint("merchant_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
