"""What the outgoing-queue tests share: a scripted sender, a clock for the limiter, bots and rows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.db.models import Bot, ChannelAccount, OutgoingMessage
from core.ids import new_id
from core.ports import OutgoingEnvelope, SendResult
from core.services.dispatcher import Dispatcher
from core.services.outgoing import REPLY, NewOutgoing
from tests.conftest import START


class FakeTime:
    """Monotonic seconds that move only when the dispatcher sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class FakeSender:
    """A hand-written ChannelSender: answers from a script and records what it was given."""

    script: list[SendResult] = field(default_factory=list)
    clock: FakeTime | None = None
    sent: list[tuple[str, str, float]] = field(default_factory=list)  # (chat, text, fake time)
    envelopes: list[OutgoingEnvelope] = field(default_factory=list)

    async def send(self, message: OutgoingEnvelope) -> SendResult:
        self.envelopes.append(message)
        self.sent.append((message.chat_id, message.body["text"],
                          self.clock() if self.clock else 0.0))
        await asyncio.sleep(0)  # let other chats run meanwhile
        if self.script:
            return self.script.pop(0)
        return SendResult.sent(f"m{len(self.sent)}")


async def make_bot(core: Any, merchant_id: str, chats: int = 1) -> tuple[str, list[ChannelAccount]]:
    bot_id = new_id("bot")
    accounts = [ChannelAccount(id=new_id("acc"), merchant_id=merchant_id, channel="telegram",
                               bot_id=bot_id, external_user_id=str(100 + i), chat_id=str(100 + i),
                               created_at=START) for i in range(chats)]
    async with core.ctx.uow() as uow:
        uow.session.add(Bot(id=bot_id, merchant_id=merchant_id, channel="telegram",
                            created_at=START))
        uow.session.add_all(accounts)
        await uow.commit()
    return bot_id, accounts


def message(account: ChannelAccount, text: str, priority: int = REPLY,
            not_before: datetime | None = None) -> NewOutgoing:
    return NewOutgoing(merchant_id=account.merchant_id, bot_id=account.bot_id,
                       channel_account_id=account.id, chat_id=account.chat_id or "",
                       body={"text": text}, priority=priority, kind="test", not_before=not_before)


def dispatcher(core: Any, sender: FakeSender, bot_id: str, **kwargs: Any) -> Dispatcher:
    found = Dispatcher(core.ctx, core.messengers.media, **kwargs)
    found.register(bot_id, sender)
    return found


async def rows(core: Any) -> dict[str, OutgoingMessage]:
    async with core.ctx.db.read() as session:
        return {row.body["text"]: row for row in await session.scalars(select(OutgoingMessage))}
