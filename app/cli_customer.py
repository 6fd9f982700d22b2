"""CLI: `kartochka customer merge` and `kartochka customer change-phone`."""

from __future__ import annotations

import argparse
from typing import Any


async def cmd_customer_merge(args: argparse.Namespace) -> int:
    from app.container import build_core
    from core.config import Settings
    from core.services.identity import merge_customers
    from core.services.merchants import get_merchant

    core = await build_core(Settings())
    try:
        merchant = await get_merchant(core.ctx, args.merchant)
        answer = await merge_customers(core.ctx, merchant.id, args.source, args.target)
    finally:
        await core.close()
    rows = sum(answer.moved.values())
    print(f"customer {args.source} merged into {args.target}: {rows} rows moved, "
          f"balance {answer.customer['balance']['available']}")
    return 0


async def cmd_customer_change_phone(args: argparse.Namespace) -> int:
    from app.container import build_core
    from core.config import Settings
    from core.phones import mask_phone
    from core.services.identity import change_phone
    from core.services.merchants import get_merchant

    core = await build_core(Settings())
    try:
        merchant = await get_merchant(core.ctx, args.merchant)
        answer = await change_phone(core.ctx, merchant.id, args.customer, args.phone)
    finally:
        await core.close()
    print(f"customer {answer['id']} now has phone {mask_phone(answer['phone'])}")
    return 0


def add_customer_commands(sub: Any) -> None:
    """Register the `customer` command group."""
    customer = sub.add_parser("customer", help="customers: merge duplicates, change a phone")
    group = customer.add_subparsers(dest="sub", required=True)

    p = group.add_parser("merge", help="move everything of one customer to another; the first is gone")
    p.add_argument("--merchant", required=True, help="the merchant's slug")
    p.add_argument("--from", dest="source", required=True, metavar="ID",
                   help="the customer to merge away")
    p.add_argument("--into", dest="target", required=True, metavar="ID",
                   help="the customer who keeps everything")
    p.set_defaults(run=cmd_customer_merge)

    p = group.add_parser("change-phone", help="give a customer another phone number")
    p.add_argument("--merchant", required=True, help="the merchant's slug")
    p.add_argument("--customer", required=True, metavar="ID")
    p.add_argument("--phone", required=True)
    p.set_defaults(run=cmd_customer_change_phone)
