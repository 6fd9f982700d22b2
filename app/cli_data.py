"""CLI: `kartochka import customers` (the import service's command line)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any


async def cmd_import_customers(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.container import build_core
    from core.config import Settings
    from core.services.imports import import_customers
    from core.services.merchants import get_merchant

    path = Path(args.file)
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    core = await build_core(Settings())
    try:
        merchant = await get_merchant(core.ctx, args.merchant)
        result = await import_customers(core.ctx, merchant.id, data, filename=path.name,
                                        dry_run=args.dry_run, actor="cli")
    finally:
        await core.close()
    for error in result.errors:
        print(error)
    counts = (f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged, "
              f"{result.balances_credited} opening balances credited")
    if result.errors:
        lines = len({error.line for error in result.errors})
        print(f"error: {path.name}: {len(result.errors)} errors on {lines} lines; nothing was imported",
              file=sys.stderr)
        return 1
    if args.dry_run:
        print(f"dry run of {path.name} for {merchant.slug}: {result.rows} valid rows would give "
              f"{counts}; nothing was written")
    else:
        print(f"imported {path.name} for {merchant.slug}: {result.rows} rows; {counts}")
    return 0


def add_import_commands(sub: Any) -> None:
    """Register `import customers --merchant S FILE.csv [--dry-run]`."""
    group = sub.add_parser("import", help="import data from files").add_subparsers(
        dest="sub", required=True)
    p = group.add_parser(
        "customers",
        help="import customers from CSV (UTF-8 or cp1251, ',' or ';'); all or nothing",
        description="Columns: phone (required), card, name, birth_date, gender, tier, balance, "
                    "balance_expires_at. Idempotent by phone: running a file again changes nothing. "
                    "If any row is wrong, nothing is imported and every error is listed.",
    )
    p.add_argument("--merchant", required=True, help="the merchant's slug")
    p.add_argument("--dry-run", action="store_true", help="check the file and report; write nothing")
    p.add_argument("file", help="the CSV file")
    p.set_defaults(run=cmd_import_customers)


# Secrets a merchant may set by hand; bot tokens are set by `bot add`, which checks them.
SETTABLE_SECRETS = ("sms.ru:api_id", "sms.ru:from")


async def cmd_secret_set(args: argparse.Namespace) -> int:
    """Read the value from stdin (never from the command line: shell history keeps it)."""
    from app.container import build_core
    from core.config import Settings
    from core.services.merchants import get_merchant, set_secret

    value = sys.stdin.readline().strip()
    if not value:
        print("error: give the value on stdin, e.g. `read -s V; echo \"$V\" | kartochka ...`",
              file=sys.stderr)
        return 1
    core = await build_core(Settings())
    try:
        merchant = await get_merchant(core.ctx, args.merchant)
        await set_secret(core.ctx, merchant.id, args.name, value)
    finally:
        await core.close()
    print(f"secret {args.name} of {merchant.slug} stored (encrypted)")
    return 0


def add_secret_commands(sub: Any) -> None:
    """Register `secret set --merchant S NAME` (the value on stdin)."""
    group = sub.add_parser("secret", help="a merchant's secrets (encrypted at rest)").add_subparsers(
        dest="sub", required=True)
    p = group.add_parser("set", help="store a secret read from stdin: " + ", ".join(SETTABLE_SECRETS))
    p.add_argument("--merchant", required=True)
    p.add_argument("name", choices=SETTABLE_SECRETS)
    p.set_defaults(run=cmd_secret_set)
