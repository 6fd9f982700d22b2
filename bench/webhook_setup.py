"""Customers of webhook.py, made through the product's own services (run as `webhook.py _setup ...`).

Runs in the product's environment (its database URL and secret key), before
`kartochka serve` starts. Customer *i* is a Telegram user ``user_id(i)`` chatting in
a private chat of the same id with the bot: the channel account is opened as the
first update would open it (`accounts.open_account`), the customer registered as a
till would (`customers.register_customer`), and the account linked by its confirmed
phone (`registration.confirm_phone`) — what a finished registration leaves behind.

With ``--backlog N`` it also queues N text messages (`outgoing.enqueue`, priority reply)
to the first chats, and ``--hot-messages K`` to each of the last ``--hot-chats`` chats:
the dispatcher of the serve started next finds them due at once, so its send limit is
exercised at full speed (what the presses alone cannot do when the product sends fewer
than 30 a second).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

USER_BASE = 900_000_000
SQLITE_WORKERS, PG_WORKERS = 1, 16


def user_id(i: int) -> int:
    return USER_BASE + i


def phone(i: int) -> str:
    return f"+7916{2_000_000 + i:07d}"


async def register(args: argparse.Namespace) -> None:
    from app.container import build_core
    from core.config import Settings
    from core.services.accounts import open_account
    from core.services.customers import RegisterCustomer, register_customer
    from core.services.merchants import get_merchant
    from core.services.registration import confirm_phone

    settings = Settings()
    core = await build_core(settings)
    ctx = core.ctx
    try:
        merchant = await get_merchant(ctx, args.merchant)
        gate = asyncio.Semaphore(SQLITE_WORKERS if settings.is_sqlite else PG_WORKERS)

        async def one(i: int) -> str:
            async with gate:
                user = str(user_id(i))
                account = await open_account(ctx, merchant.id, "telegram", args.bot_id, user, user, "ru")
                await register_customer(ctx, merchant.id, RegisterCustomer(phone=phone(i)))
                linked = await confirm_phone(ctx, account.id, phone(i))
                if linked.created:
                    raise RuntimeError(f"customer {i} was registered twice")
                return account.id

        started = time.monotonic()
        accounts = await asyncio.gather(*(one(i) for i in range(args.customers)))
        print(f"{args.customers} customers with linked Telegram accounts in"
              f" {time.monotonic() - started:.1f} s", flush=True)
        if args.backlog or args.hot_messages:
            await queue_backlog(ctx, merchant.id, args, accounts)
        if not settings.is_sqlite:
            await analyze(ctx)
    finally:
        await core.close()


async def analyze(ctx: Any) -> None:
    """The planner's statistics of the tables just filled, as a live database has them
    (autovacuum gathers them within a minute or so of a change this size). Without them the
    first minutes measure plans made for empty tables: a customer looked up by id through
    the merchant's index, every customer of the merchant read and filtered (see README)."""
    from sqlalchemy import text

    async with ctx.db.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))


async def queue_backlog(ctx: Any, merchant_id: str, args: argparse.Namespace, accounts: list[str]) -> None:
    from bots.dialog.screens import Screen
    from core.services.outgoing import REPLY, NewOutgoing, enqueue

    def item(i: int, n: int) -> Any:
        return NewOutgoing(merchant_id=merchant_id, bot_id=args.bot_id, channel_account_id=accounts[i],
                           chat_id=str(user_id(i)), body=Screen(text=f"Сообщение {n + 1}").to_body(),
                           priority=REPLY, kind="reply")

    plain = args.customers - args.hot_chats
    items = [item(n % plain, n) for n in range(args.backlog)]
    items += [item(i, n) for i in range(plain, args.customers) for n in range(args.hot_messages)]
    for start in range(0, len(items), 500):
        await enqueue(ctx, items[start:start + 500])
    print(f"{len(items)} messages queued ({args.hot_messages} to each of {args.hot_chats} chats)", flush=True)


def setup_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="webhook.py _setup")
    parser.add_argument("--merchant", required=True, help="the merchant's slug")
    parser.add_argument("--bot-id", required=True, help="our bot id (`kartochka bot add` printed it)")
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--backlog", type=int, default=0, help="messages queued to the first chats")
    parser.add_argument("--hot-chats", type=int, default=0)
    parser.add_argument("--hot-messages", type=int, default=0, help="messages queued to each hot chat")
    args = parser.parse_args(argv)
    asyncio.run(register(args))
    return 0
