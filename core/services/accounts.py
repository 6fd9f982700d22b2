"""Channel accounts and their dialog state: who is writing, in which step of which flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from core.db.base import table_of
from core.db.models import ChannelAccount, DialogState
from core.ids import new_id
from core.services.context import CoreContext


@dataclass
class AccountState:
    """An account as the dialog sees it, with its state (changed in place, saved by `save_turn`)."""

    id: str
    merchant_id: str
    channel: str
    bot_id: str
    chat_id: str
    customer_id: str | None
    locale: str
    blocked: bool
    flow: str | None = None
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    created: bool = False

    def go(self, flow: str | None, step: str | None = None, **data: Any) -> None:
        """Enter a step of a flow (None: no flow, the menu); `data` replaces what was collected."""
        self.flow, self.step, self.data = flow, step, dict(data)


LAST_SEEN_STEP = timedelta(minutes=1)  # `last_seen_at` is rewritten at most this often


# Built once: every message and button press runs them (straight, no session: read-only).
_A, _S = ChannelAccount, DialogState
_ACCOUNT = (select(_A.id, _A.merchant_id, _A.channel, _A.bot_id, _A.chat_id, _A.customer_id,
                   _A.locale, _A.blocked_at, _A.last_seen_at, _S.flow, _S.step, _S.data,
                   _S.channel_account_id)
            .outerjoin(_S, _S.channel_account_id == _A.id)
            .where(ChannelAccount.merchant_id == bindparam("merchant_id"),
                   ChannelAccount.channel == bindparam("channel"),
                   ChannelAccount.bot_id == bindparam("bot_id"),
                   ChannelAccount.external_user_id == bindparam("user_id")))
_SEEN = (update(table_of(ChannelAccount))
         .where(table_of(ChannelAccount).c.id == bindparam("_id"))
         .values(chat_id=bindparam("chat_id"), last_seen_at=bindparam("last_seen_at")))


async def open_account(
    ctx: CoreContext, merchant_id: str, channel: str, bot_id: str, user_id: str, chat_id: str,
    locale: str,
) -> AccountState:
    """The account writing now, created on first contact; last seen and chat id kept fresh.

    Most events come from a known account: one read, and a write only when the chat moved
    or `last_seen_at` is older than LAST_SEEN_STEP (it picks the account notices go to;
    a minute is fine for that, and a write per message is not).
    """
    now = ctx.now()
    async with ctx.db.direct() as db:
        found = await db.rows(_ACCOUNT, {"merchant_id": merchant_id, "channel": channel,
                                         "bot_id": bot_id, "user_id": user_id})
    if found:
        (account_id, merchant_id, channel, bot_id, old_chat, customer_id, locale, blocked_at,
         seen, flow, step, data, has_state) = found[0]
        if old_chat != chat_id or seen is None or now - seen >= LAST_SEEN_STEP:
            async with ctx.db.direct(write=True) as db:
                await db.run(_SEEN, {"_id": account_id, "chat_id": chat_id, "last_seen_at": now})
        return AccountState(
            id=account_id, merchant_id=merchant_id, channel=channel, bot_id=bot_id,
            chat_id=chat_id, customer_id=customer_id, locale=locale,
            blocked=blocked_at is not None, flow=flow, step=step,
            data=dict(data) if has_state is not None else {}, created=False)
    for attempt in (1, 2):
        try:
            async with ctx.uow() as uow:
                s = uow.session
                row = await s.scalar(select(ChannelAccount).where(
                    ChannelAccount.merchant_id == merchant_id, ChannelAccount.channel == channel,
                    ChannelAccount.bot_id == bot_id, ChannelAccount.external_user_id == user_id))
                created = row is None
                account = row if row is not None else ChannelAccount(
                    id=new_id("acc"), merchant_id=merchant_id, channel=channel, bot_id=bot_id,
                    external_user_id=user_id, chat_id=chat_id, locale=locale, created_at=now)
                if created:
                    s.add(account)
                account.chat_id = chat_id
                account.last_seen_at = now
                saved = await s.get(DialogState, account.id) if not created else None
                await uow.commit()
                return _state(account, saved, chat_id=chat_id, created=created)
        except IntegrityError:
            if attempt == 2:  # two first messages raced; the second now finds the account
                raise
    raise AssertionError("unreachable")


def _state(account: ChannelAccount, state: DialogState | None, *, chat_id: str,
           created: bool) -> AccountState:
    return AccountState(
        id=account.id, merchant_id=account.merchant_id, channel=account.channel,
        bot_id=account.bot_id, chat_id=chat_id, customer_id=account.customer_id,
        locale=account.locale, blocked=account.blocked_at is not None,
        flow=state.flow if state else None, step=state.step if state else None,
        data=dict(state.data) if state else {}, created=created)


async def save_state(ctx: CoreContext, account: AccountState) -> None:
    """Keep the flow, step and collected data for the next event of this account."""
    async with ctx.uow() as uow:
        state = await uow.session.get(DialogState, account.id)
        if state is None:
            state = DialogState(channel_account_id=account.id)
            uow.session.add(state)
        state.flow, state.step, state.data = account.flow, account.step, dict(account.data)
        state.updated_at = ctx.now()
        await uow.commit()


async def set_locale(ctx: CoreContext, account_id: str, locale: str) -> None:
    async with ctx.uow() as uow:
        account = await uow.session.get(ChannelAccount, account_id)
        if account is not None:
            account.locale = locale
        await uow.commit()


async def set_blocked(ctx: CoreContext, account_id: str, at: datetime | None) -> None:
    """The person blocked the bot (`at`) or came back (None); senders skip blocked accounts."""
    async with ctx.uow() as uow:
        account = await uow.session.get(ChannelAccount, account_id)
        if account is not None:
            account.blocked_at = at
        await uow.commit()
