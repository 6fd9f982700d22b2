"""Platform send limits in this process: a token bucket per bot and one per chat.

`InProcessLimiter` is right for one process (SQLite, or one worker per bot). Past
one process the buckets must be shared: a `RedisLimiter` with the same
`delay`/`take` interface (a Lua script over the same two buckets) is for later and
is not written yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class _Bucket:
    tokens: float
    last: float


@dataclass(frozen=True)
class Limits:
    """Messages per second per bot; per chat a burst, then a steady rate (None: no chat limit)."""

    per_bot: float
    per_bot_burst: float | None = None
    per_chat_burst: float | None = None
    per_chat: float | None = None


# Telegram: about 30 messages a second per bot; per chat a burst of about 3, then 1 a second.
# A bot's messages are spaced evenly (burst 1): no second ever carries more than the
# platform's rate, even when a backlog starts draining (a full bucket would allow twice).
TELEGRAM = Limits(per_bot=30, per_bot_burst=1, per_chat_burst=3, per_chat=1)
VK = Limits(per_bot=20, per_bot_burst=1)
MAX = Limits(per_bot=30, per_bot_burst=1)
CHANNEL_LIMITS = {"telegram": TELEGRAM, "vk": VK, "max": MAX}  # the web chat has none
_PRUNE_AT = 50_000


class InProcessLimiter:
    """Token buckets keyed by bot and by (bot, chat); `now` is monotonic seconds."""

    def __init__(self, limits: Limits = TELEGRAM) -> None:
        self.limits = limits
        self._bots: dict[str, _Bucket] = {}
        self._chats: dict[tuple[str, str], _Bucket] = {}

    def delay(self, bot: str, chat: str, now: float) -> float:
        """Seconds to wait before one more message to `chat` on `bot` may go (0: now)."""
        wait = self._wait(self._bots.get(bot), self._bot_capacity, self.limits.per_bot, now)
        if self.limits.per_chat is not None:
            wait = max(wait, self._wait(self._chats.get((bot, chat)), self._chat_capacity,
                                        self.limits.per_chat, now))
        return wait

    def take(self, bot: str, chat: str, now: float) -> None:
        """Count one message as sent at `now`."""
        self._take(self._bots, bot, self._bot_capacity, self.limits.per_bot, now)
        if self.limits.per_chat is not None:
            if len(self._chats) > _PRUNE_AT:
                self._prune(now)
            self._take(self._chats, (bot, chat), self._chat_capacity, self.limits.per_chat, now)

    @property
    def _bot_capacity(self) -> float:
        return self.limits.per_bot_burst or self.limits.per_bot

    @property
    def _chat_capacity(self) -> float:
        return self.limits.per_chat_burst or self.limits.per_chat or 1.0

    @staticmethod
    def _level(bucket: _Bucket | None, capacity: float, rate: float, now: float) -> float:
        if bucket is None:
            return capacity
        return min(capacity, bucket.tokens + max(0.0, now - bucket.last) * rate)

    def _wait(self, bucket: _Bucket | None, capacity: float, rate: float, now: float) -> float:
        tokens = self._level(bucket, capacity, rate, now)
        return 0.0 if tokens >= 1 else (1 - tokens) / rate

    def _take(self, buckets: dict[Any, _Bucket], key: Any, capacity: float, rate: float,
              now: float) -> None:
        tokens = self._level(buckets.get(key), capacity, rate, now)
        buckets[key] = _Bucket(tokens=tokens - 1, last=now)

    def _prune(self, now: float) -> None:
        """Forget chats whose bucket has refilled: they are as good as new."""
        rate = self.limits.per_chat or 1.0
        full = [key for key, b in self._chats.items()
                if b.tokens + (now - b.last) * rate >= self._chat_capacity]
        for key in full:
            del self._chats[key]
