"""The `kartochka` command. Heavy adapters are imported inside each command, not at start."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

Command = Callable[[argparse.Namespace], Awaitable[int]]


def _settings() -> Any:
    from core.config import Settings

    return Settings()


async def _until_stopped() -> None:
    """Until SIGINT or SIGTERM (a service manager's stop): then the caller cleans up in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def _core(migrate: bool = True) -> Any:
    from app.container import build_core

    return await build_core(_settings(), migrate=migrate)


async def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from app.heap import freeze_startup_heap
    from app.logs import setup_logging
    from app.web import create_app

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    if not settings.is_sqlite and settings.secret_key is None:
        raise SystemExit("error: KARTOCHKA_SECRET_KEY is required with PostgreSQL")
    core = await _core()
    app = create_app(core)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = args.host or settings.host, args.port or settings.port
    site = web.TCPSite(runner, host, port)
    await site.start()
    freeze_startup_heap()
    print(f"Kartochka is listening on http://{host}:{port}", flush=True)
    try:
        await _until_stopped()
    finally:
        await runner.cleanup()
    return 0


async def cmd_worker(_args: argparse.Namespace) -> int:
    from app.heap import freeze_startup_heap
    from app.logs import setup_logging

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    core = await _core()
    from bots.telegram.runtime import TelegramRuntime

    # The worker sends what is queued for every bot; updates arrive at `serve`.
    telegram = TelegramRuntime(core.ctx, settings, core.messengers, receive=False)
    await core.start_background()
    await telegram.start()
    freeze_startup_heap()
    try:
        await _until_stopped()
    finally:  # as app/web.py: the sends in flight end while their senders still work
        await telegram.stop_receiving()
        await core.stop_background()
        await telegram.stop()
        await core.close()
    return 0


async def cmd_migrate(_args: argparse.Namespace) -> int:
    core = await _core(migrate=True)
    await core.close()
    print("migrations applied")
    return 0


async def cmd_db_check(_args: argparse.Namespace) -> int:
    from core.db.migrate import check

    core = await _core(migrate=True)
    try:
        await check(core.ctx.db.engine)
    finally:
        await core.close()
    print("models and migrations agree")
    return 0


async def cmd_merchant_create(args: argparse.Namespace) -> int:
    from core.services.merchants import NewMerchant, create_merchant

    core = await _core()
    try:
        merchant = await create_merchant(core.ctx, NewMerchant(
            name=args.name, slug=args.slug, timezone=args.timezone, currency=args.currency,
            country=args.country, legal_name=args.legal_name, privacy_policy_url=args.privacy_url))
    finally:
        await core.close()
    print(f"merchant {merchant.slug} created with the default program")
    if merchant.legal_name is None or merchant.privacy_policy_url is None:
        print("note: set --legal-name and --privacy-url (kartochka merchant update): the consent "
              "screen names them (152-FZ)")
    print(merchant.id)
    return 0


async def cmd_merchant_update(args: argparse.Namespace) -> int:
    from core.services.merchants import update_merchant

    core = await _core()
    try:
        merchant = await update_merchant(core.ctx, args.merchant, name=args.name,
                                         legal_name=args.legal_name,
                                         privacy_policy_url=args.privacy_url)
    finally:
        await core.close()
    print(f"merchant {merchant.slug} updated")
    return 0


async def cmd_apikey_create(args: argparse.Namespace) -> int:
    from core.services.apikeys import create_key
    from core.services.merchants import get_merchant

    core = await _core()
    try:
        merchant = await get_merchant(core.ctx, args.merchant)
        key, token = await create_key(core.ctx, merchant.id, args.scope, args.name)
    finally:
        await core.close()
    print(f"key {key.id} ({key.scope}) for {merchant.slug}; shown once, keep it safe:")
    print(token)
    return 0


async def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    from core.services.apikeys import revoke_key
    from core.services.merchants import get_merchant

    core = await _core()
    try:
        merchant = await get_merchant(core.ctx, args.merchant)
        await revoke_key(core.ctx, merchant.id, args.key_id)
    finally:
        await core.close()
    print(f"key {args.key_id} revoked")
    return 0


async def cmd_program_load(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import yaml

    from core.services.merchants import get_merchant
    from core.services.programs import put_program

    text = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8")
    document = json.loads(text) if args.file.endswith(".json") else yaml.safe_load(text)
    core = await _core()
    try:
        merchant = await get_merchant(core.ctx, args.merchant)
        version, _ = await put_program(core.ctx, merchant.id, document)
    finally:
        await core.close()
    print(f"program version {version} is now in force for {merchant.slug}")
    return 0


async def cmd_jobs_run(args: argparse.Namespace) -> int:
    from core.services.jobs import run_due

    until = _parse_time(args.until) if args.until else datetime.now(UTC)
    core = await _core()
    try:
        count = await run_due(core.ctx, until)
        await core.outbox.drain()
    finally:
        await core.close()
    print(f"{count} jobs run up to {until.isoformat()}")
    return 0


async def cmd_check_figures(args: argparse.Namespace) -> int:
    from core.services.figures import check_figures
    from core.services.merchants import get_merchant

    core = await _core()
    try:
        merchant = await get_merchant(core.ctx, args.merchant)
        mismatches = await check_figures(core.ctx, merchant.id)
    finally:
        await core.close()
    for m in mismatches:
        print(f"{m.customer_id} {m.figure}: cached {m.cached}, ledger {m.from_ledger}")
    print(f"{len(mismatches)} mismatches")
    return 1 if mismatches else 0


def _parse_time(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kartochka", description="Kartochka loyalty platform")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="web server, bots, dispatchers and scheduler in one process")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(run=cmd_serve)
    sub.add_parser("worker", help="outbox drain, scheduler and message senders").set_defaults(run=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(run=cmd_migrate)
    db = sub.add_parser("db", help="database checks").add_subparsers(dest="sub", required=True)
    db.add_parser("check", help="fail when models and migrations differ").set_defaults(
        run=cmd_db_check)

    merchant = sub.add_parser("merchant", help="merchants").add_subparsers(dest="sub", required=True)
    p = merchant.add_parser("create", help="create a merchant with the default program")
    p.add_argument("--name", required=True)
    p.add_argument("--slug", required=True)
    p.add_argument("--timezone", default="Europe/Moscow")
    p.add_argument("--currency", default="RUB")
    p.add_argument("--country", default="RU")
    p.add_argument("--legal-name", help="the legal entity named on the consent screen")
    p.add_argument("--privacy-url", help="the personal-data policy linked on the consent screen")
    p.set_defaults(run=cmd_merchant_create)
    p = merchant.add_parser("update", help="change the name, legal entity or policy link")
    p.add_argument("--merchant", required=True)
    p.add_argument("--name")
    p.add_argument("--legal-name")
    p.add_argument("--privacy-url")
    p.set_defaults(run=cmd_merchant_update)

    apikey = sub.add_parser("apikey", help="REST API keys").add_subparsers(dest="sub", required=True)
    p = apikey.add_parser("create", help="create a key; prints it alone on the last line")
    p.add_argument("--merchant", required=True)
    p.add_argument("--scope", default="integration", choices=["till", "integration", "admin"])
    p.add_argument("--name")
    p.set_defaults(run=cmd_apikey_create)
    p = apikey.add_parser("revoke", help="revoke a key by its id")
    p.add_argument("--merchant", required=True)
    p.add_argument("key_id")
    p.set_defaults(run=cmd_apikey_revoke)

    program = sub.add_parser("program", help="programs").add_subparsers(dest="sub", required=True)
    p = program.add_parser("load", help="load a program document (YAML or JSON)")
    p.add_argument("--merchant", required=True)
    p.add_argument("file")
    p.set_defaults(run=cmd_program_load)

    jobs = sub.add_parser("jobs", help="scheduled jobs").add_subparsers(dest="sub", required=True)
    p = jobs.add_parser("run", help="run every job due up to a time")
    p.add_argument("--until", help="ISO time (default: now)")
    p.set_defaults(run=cmd_jobs_run)

    check = sub.add_parser("check", help="consistency checks").add_subparsers(dest="sub",
                                                                               required=True)
    p = check.add_parser("figures", help="recompute running figures from the ledger")
    p.add_argument("--merchant", required=True)
    p.set_defaults(run=cmd_check_figures)

    from app.cli_bots import add_bot_commands
    from app.cli_customer import add_customer_commands
    from app.cli_data import add_import_commands, add_secret_commands

    add_import_commands(sub)
    add_secret_commands(sub)
    add_customer_commands(sub)
    add_bot_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = asyncio.run(args.run(args))
        return code
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except Exception as exc:
        from core.errors import KartochkaError

        message = exc.message if isinstance(exc, KartochkaError) else f"{type(exc).__name__}: {exc}"
        print(f"error: {message}".splitlines()[0], file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
