"""Messenger side of the core: bots, stored updates, dialog state, conversation, outgoing queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, UTCDateTime


class Bot(Base):
    """A connected bot (or the merchant's web chat); its token lives in merchant_secrets."""

    __tablename__ = "bots"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    username: Mapped[str | None] = mapped_column(String(64))
    platform_bot_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class InboundUpdate(Base):
    """A platform update saved before we answer 200; processed from here, so nothing is lost.

    (bot_id, key) is unique while the row lives: a redelivered update is dropped. Rows
    are kept for a time to live after processing, not forever, and never "highest id
    seen" (Telegram's update ids can jump).
    """

    __tablename__ = "inbound_updates"
    __table_args__ = (
        UniqueConstraint("bot_id", "key"),
        Index("ix_inbound_updates_pending", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bot_id: Mapped[str] = mapped_column(ForeignKey("bots.id"))
    key: Mapped[str] = mapped_column(String(96))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="new")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(2000))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class DialogState(Base):
    """Which step of which flow a channel account is in, and what it has collected so far."""

    __tablename__ = "dialog_states"

    channel_account_id: Mapped[str] = mapped_column(ForeignKey("channel_accounts.id"), primary_key=True)
    flow: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Media(Base):
    """Bytes of a photo or an image, stored once by our own id."""

    __tablename__ = "media"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChatMessage(Base):
    """One message of a conversation: the account's first, the customer's thread once linked."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        Index("ix_chat_messages_account", "channel_account_id", "id"),
        Index("ix_chat_messages_customer", "customer_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    channel_account_id: Mapped[str] = mapped_column(ForeignKey("channel_accounts.id"))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    direction: Mapped[str] = mapped_column(String(8))  # "in" | "out"
    author: Mapped[str] = mapped_column(String(16))  # "customer" | "operator" | "bot"
    text: Mapped[str | None] = mapped_column(String(4096))
    media_id: Mapped[str | None] = mapped_column(ForeignKey("media.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutgoingMessage(Base):
    """Every message we send is first this row; the bot's sender marks it with the outcome."""

    __tablename__ = "outgoing_messages"
    __table_args__ = (
        Index("ix_outgoing_due", "status", "priority", "not_before"),
        Index("ix_outgoing_account", "channel_account_id", "id"),
        Index("ix_outgoing_chat", "bot_id", "chat_id", "status"),  # what a chat has waiting
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    bot_id: Mapped[str] = mapped_column(ForeignKey("bots.id"))
    channel_account_id: Mapped[str] = mapped_column(ForeignKey("channel_accounts.id"))
    chat_id: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer)  # 0 reply, 1 service, 2 marketing
    kind: Mapped[str] = mapped_column(String(32))  # what caused it: reply, points.accrued, ...
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    platform_message_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PhoneCode(Base):
    """A one-time code sent by SMS: only its HMAC is kept, bound to the phone and the purpose."""

    __tablename__ = "phone_codes"
    __table_args__ = (
        Index("ix_phone_codes_phone", "merchant_id", "phone", "created_at"),
        Index("ix_phone_codes_account", "channel_account_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    channel_account_id: Mapped[str | None] = mapped_column(ForeignKey("channel_accounts.id"))
    phone: Mapped[str] = mapped_column(String(20))
    purpose: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(64))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    client_ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Review(Base):
    """An NPS score (0-10) with an optional comment."""

    __tablename__ = "reviews"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(String(4000))
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RedemptionConfirmation(Base):
    """A code the customer confirms a redemption with, bound to (receipt, customer, points)."""

    __tablename__ = "redemption_confirmations"
    # One row per code issued (the latest for a receipt counts): the customer's daily
    # caps are counted from these rows.
    __table_args__ = (Index("ix_redemption_confirmations_receipt", "merchant_id", "receipt_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    receipt_id: Mapped[str] = mapped_column(String(160))  # a receipt, or "gift:<redemption_id>"
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    redeem_cp: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
