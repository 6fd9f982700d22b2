"""CPU of one sale in-process, no HTTP: `register_sale` in a loop, optionally under cProfile.

    /work/venv/bin/python bench/profile_sale.py                    # PostgreSQL, 2000 sales
    /work/venv/bin/python bench/profile_sale.py --sqlite --profile # SQLite, top functions

With --drain, the outbox events the sales wrote are then handed on to their consumers
(notifications, metrics), timed per sale and per delivery.

Prints the process CPU per sale (the service, SQLAlchemy and the driver; PostgreSQL's own
CPU is not counted) and, with --profile, the 30 costliest functions by cumulative time.
Sales go to --customers customers round robin, one in --redeem-every redeeming 10 points,
--concurrency at a time (the lock queue shows with more than one).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from app.container import build_core  # noqa: E402
from core.config import Settings  # noqa: E402
from core.services.customers import CustomerRef, RegisterCustomer, register_customer  # noqa: E402
from core.services.merchants import NewMerchant, create_merchant  # noqa: E402
from core.services.purchases import register_sale  # noqa: E402
from core.services.sales_input import SaleInput  # noqa: E402

PG = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def run(args: argparse.Namespace) -> None:
    admin = None
    if args.sqlite:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/p.db"
    else:
        base = PG.replace("postgresql://", "postgresql+asyncpg://", 1)
        name = "bench_prof_" + secrets.token_hex(4)
        admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.rpartition("/")[0] + "/" + name
    settings = Settings(database_url=url, secret_key="bench-" + "x" * 40,
                        _env_file=None)  # type: ignore[call-arg]
    core = await build_core(settings)
    try:
        merchant = await create_merchant(core.ctx, NewMerchant(name="Bench", slug="bench"))
        phones = [f"+7916{i:07d}" for i in range(args.customers)]
        for phone in phones:
            await register_customer(core.ctx, merchant.id, RegisterCustomer(phone=phone))
        # statistics, as a live database has them (bench/README.md, "Planner statistics")
        await core.ctx.db.refresh_statistics("customers", "cards", "ledger_entries", "purchases")
        count = 0

        def sale(i: int, warm: bool) -> SaleInput:
            redeem = (not warm and args.redeem_every and i % args.redeem_every == 0)
            return SaleInput(receipt_id=f"{'w' if warm else 'r'}{i}",
                             total_minor=34990 + (i * 7919) % 175060,
                             customer=CustomerRef(phone=phones[i % len(phones)]),
                             redeem_cp=1000 if redeem else 0,
                             store_code=f"s{i % 4}", cashier_code=f"c{i % 8}")

        for i in range(len(phones)):
            await register_sale(core.ctx, merchant.id, sale(i, True))

        async def worker(k: int) -> None:
            nonlocal count
            for i in range(k, args.sales, args.concurrency):
                await register_sale(core.ctx, merchant.id, sale(i, False))
                count += 1

        profiler = cProfile.Profile() if args.profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        await asyncio.gather(*(worker(k) for k in range(args.concurrency)))
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{count} sales  {count / wall:.0f}/s  cpu {cpu * 1000 / count:.2f} ms/sale")
        if profiler:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
        if args.drain:  # what the sales left in the outbox, handed on (nothing drained it meanwhile)
            profiler = cProfile.Profile() if args.profile else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            delivered = await core.outbox.drain()
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"outbox: {delivered} deliveries in {wall:.2f} s  cpu {cpu * 1000 / count:.2f} ms/sale"
                  f"  {cpu * 1e6 / max(delivered, 1):.0f} us/delivery")
            if profiler:
                pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    finally:
        await core.close()
        if admin is not None:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            await admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sales", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--redeem-every", type=int, default=5)
    parser.add_argument("--drain", action="store_true",
                        help="then hand on the outbox events the sales wrote, timed (and profiled)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
