"""Ports: what the outside world implements for the core."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


class Clock(Protocol):
    """Where the core reads "now"; tests and `jobs run --until` control it."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that says what it is told; for tests and replays."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance_to(self, at: datetime) -> None:
        self.at = at


@dataclass(frozen=True)
class SendResult:
    """What a channel sender says about one outgoing message.

    Exactly one outcome: `sent` (with the platform's message id), `blocked` (the
    person blocked the bot or left), `failed` (a reason; never retried), or
    `retry_at` (a time: the platform asked us to wait, or answered 5xx).
    """

    status: str  # "sent" | "blocked" | "failed" | "retry"
    platform_message_id: str | None = None
    reason: str | None = None
    retry_at: datetime | None = None

    @classmethod
    def sent(cls, platform_message_id: str | None) -> SendResult:
        return cls("sent", platform_message_id=platform_message_id)

    @classmethod
    def blocked(cls, reason: str = "blocked") -> SendResult:
        return cls("blocked", reason=reason)

    @classmethod
    def failed(cls, reason: str) -> SendResult:
        return cls("failed", reason=reason)

    @classmethod
    def retry(cls, at: datetime, reason: str) -> SendResult:
        return cls("retry", reason=reason, retry_at=at)


@dataclass(frozen=True)
class OutgoingEnvelope:
    """One saved outgoing message as a sender receives it (the body is the channel-neutral screen)."""

    id: str
    merchant_id: str
    bot_id: str
    chat_id: str
    body: dict[str, Any]
    media: dict[str, bytes]  # media id -> bytes, for the images the body names
    attempts: int


class ChannelSender(Protocol):
    """Sends one saved message on one bot's platform; never raises for platform errors."""

    async def send(self, message: OutgoingEnvelope) -> SendResult: ...


class RateLimiter(Protocol):
    """Platform limits: how long to wait before one more message to `chat` on `bot` may go."""

    def delay(self, bot: str, chat: str, now: float) -> float: ...

    def take(self, bot: str, chat: str, now: float) -> None: ...


class SmsGateway(Protocol):
    """Sends a text message to a phone; raises `SmsFailed` when the gateway refuses."""

    async def send(self, merchant_id: str, phone: str, text: str) -> str: ...


class SmsFailed(Exception):
    """The SMS gateway did not accept the message (its status and text)."""


@dataclass(frozen=True)
class NewMedia:
    """Bytes to be saved with the outgoing message that shows them (outgoing.enqueue's `media`)."""

    id: str
    merchant_id: str
    content_type: str
    data: bytes


class MediaStore(Protocol):
    """Bytes of photos and images, by our own id (never a platform's file id)."""

    async def put(self, merchant_id: str, content_type: str, data: bytes) -> str: ...

    def stage(self, merchant_id: str, content_type: str, data: bytes) -> NewMedia:
        """An id for bytes that the message carrying them will save (all or none): the
        outgoing rows write them to the `media` table `get` reads (core/db/outgoing_rows.py);
        until then only `get` in this process finds them."""
        ...

    async def get(self, merchant_id: str, media_id: str) -> tuple[str, bytes] | None: ...
