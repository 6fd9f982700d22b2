"""The peer of bench/pos_api.py: a bare aiohttp + asyncpg sale handler, no framework.

It answers POST /purchases with the writes Kartochka's sale makes, in one
transaction, on its own tables (prefixed ``peer_``): the bearer key looked up
by its SHA-256 digest (cached in-process for 5 s, like the product), the
customer locked with SELECT ... FOR UPDATE, the receipt checked to be new, the
store and cashier looked up by code, the customer's open lots read, 5 % accrual
and the redemption computed in Python, then INSERTs of the purchase, its line,
the ledger rows (accrual lot, redemption entry and its lot allocations), the
outbox events, and the UPDATE of the lots and of the customer's figures.

What it leaves out is what a framework adds: request validation with pydantic,
an ORM unit of work, phone parsing with ``phonenumbers``, metrics, access logs
and the outbox drain. It is the bar the product is measured against, not a
product: the default program (5 % back, redeem up to 30 %, whole points, 365
days) is hard-coded.

    python bench/peer_pos.py init --dsn postgresql://postgres@127.0.0.1:5432/bench_peer --token kk_...
    python bench/peer_pos.py serve --dsn postgresql://postgres@127.0.0.1:5432/bench_peer --port 8090
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web
from peer_http import (
    ACCRUAL_PERCENT,
    EXPIRING_SHOWN,
    KEYS,
    LIFETIME,
    MERCHANT_ID,
    POOL,
    REDEEM_CAP_PERCENT,
    Refused,
    body_of,
    create_customer,
    errors,
    health,
    json_answer,
    merchant_of,
    money,
    new_id,
    phone_of,
    to_hundredths,
)
from peer_schema import SCHEMA


@dataclass(frozen=True)
class Sale:
    receipt_id: str
    phone: str
    total_minor: int
    redeem_cp: int
    store: str | None
    cashier: str | None


def sale_of(data: dict[str, Any]) -> Sale:
    receipt_id = data.get("receipt_id")
    if not isinstance(receipt_id, str) or not 1 <= len(receipt_id) <= 128:
        raise Refused(422, "validation_failed", "receipt_id: 1 to 128 characters")
    customer = data.get("customer")
    if not isinstance(customer, dict) or "phone" not in customer:
        raise Refused(422, "validation_failed", "customer.phone is required here")
    total = to_hundredths(data.get("total"), "total")
    if total <= 0:
        raise Refused(422, "validation_failed", "total: must be positive")
    store, cashier = data.get("store_id"), data.get("cashier_id")
    return Sale(receipt_id, phone_of(customer["phone"]), total,
                to_hundredths(data.get("redeem", "0"), "redeem"),
                str(store) if store else None, str(cashier) if cashier else None)


def spendable_at(lot: dict[str, Any], now: datetime) -> bool:
    return bool(lot["available_at"] <= now and (lot["expires_at"] is None or now < lot["expires_at"]))


async def code_id(conn: asyncpg.Connection, merchant_id: str, kind: str, code: str | None) -> str | None:
    """The id of a store or cashier code, created on first use."""
    if code is None:
        return None
    found: str | None = await conn.fetchval(
        "SELECT id FROM peer_codes WHERE merchant_id = $1 AND kind = $2 AND code = $3",
        merchant_id, kind, code)
    if found is None:
        # A concurrent first use wins the insert; its row is committed once ours returns.
        found = await conn.fetchval(
            "INSERT INTO peer_codes (id, merchant_id, kind, code) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (merchant_id, kind, code) DO NOTHING RETURNING id",
            new_id(kind), merchant_id, kind, code)
    if found is None:
        found = await conn.fetchval(
            "SELECT id FROM peer_codes WHERE merchant_id = $1 AND kind = $2 AND code = $3",
            merchant_id, kind, code)
    return found


async def register_sale(request: web.Request) -> web.Response:
    merchant_id = await merchant_of(request)
    data, raw = await body_of(request)
    sale = sale_of(data)
    digest = hashlib.sha256(raw).hexdigest()
    now = datetime.now(UTC)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        customer = await conn.fetchrow(
            "SELECT id, lifetime_spend_minor FROM peer_customers"
            " WHERE merchant_id = $1 AND phone = $2 FOR UPDATE", merchant_id, sale.phone)
        if customer is None:
            raise Refused(404, "customer_not_found", "no customer with this phone")
        previous = await conn.fetchrow(
            "SELECT request_digest, response FROM peer_purchases"
            " WHERE merchant_id = $1 AND receipt_id = $2", merchant_id, sale.receipt_id)
        if previous is not None:
            if previous["request_digest"] != digest:
                raise Refused(409, "receipt_conflict", "this receipt_id was registered with another body")
            return json_answer(json.loads(previous["response"]), 200)
        lots = [dict(row) for row in await conn.fetch(
            "SELECT id, available_at, expires_at, remaining_cp FROM peer_ledger"
            " WHERE customer_id = $1 AND remaining_cp > 0", customer["id"])]
        spendable = sorted((lot for lot in lots if spendable_at(lot, now)),
                           key=lambda lot: (lot["expires_at"] is None, lot["expires_at"] or now, lot["id"]))
        available = sum(lot["remaining_cp"] for lot in spendable)
        limit = min(sale.total_minor * REDEEM_CAP_PERCENT // 100, available) // 100 * 100
        if sale.redeem_cp % 100 or sale.redeem_cp > limit:
            raise Refused(422, "redeem_exceeds_limit", f"redeem is over {money(limit)}")
        discount = sale.redeem_cp
        accrual = (sale.total_minor - discount) * ACCRUAL_PERCENT // 100 // 100 * 100
        store_id = await code_id(conn, merchant_id, "sto", sale.store)
        cashier_id = await code_id(conn, merchant_id, "csh", sale.cashier)

        purchase_id, lot_id = new_id("pur"), new_id("led")
        ledger: list[tuple[Any, ...]] = []
        allocations: list[tuple[Any, ...]] = []
        lot_updates: list[tuple[int, str]] = []
        events = [("PurchaseRegistered", {"purchase_id": purchase_id, "receipt_id": sale.receipt_id,
                                          "customer_id": customer["id"], "total": money(sale.total_minor),
                                          "redeemed": money(sale.redeem_cp), "accrued": money(accrual),
                                          "store_id": store_id})]
        if sale.redeem_cp:
            entry_id, need = new_id("led"), sale.redeem_cp
            ledger.append((entry_id, "redemption", -sale.redeem_cp, None, None, None))
            for lot in spendable:
                take = min(lot["remaining_cp"], need)
                lot["remaining_cp"] -= take
                allocations.append((customer["id"], entry_id, lot["id"], take, now))
                lot_updates.append((take, lot["id"]))
                need -= take
                if need == 0:
                    break
            events.append(("PointsRedeemed", {"customer_id": customer["id"], "purchase_id": purchase_id,
                                              "points": money(sale.redeem_cp)}))
        if accrual:
            ledger.append((lot_id, "accrual", accrual, now, now + LIFETIME, accrual))
            lots.append({"id": lot_id, "available_at": now, "expires_at": now + LIFETIME,
                         "remaining_cp": accrual})
            events.append(("PointsAccrued", {"customer_id": customer["id"], "purchase_id": purchase_id,
                                             "points": money(accrual), "available_at": now.isoformat()}))
        balance = sum(lot["remaining_cp"] for lot in lots if spendable_at(lot, now))
        expiring = sorted((lot["expires_at"], lot["remaining_cp"]) for lot in lots
                          if lot["remaining_cp"] > 0 and lot["expires_at"] is not None)
        spend = sale.total_minor - discount
        body = {
            "purchase_id": purchase_id,
            "receipt_id": sale.receipt_id,
            "customer_id": customer["id"],
            "total": money(sale.total_minor),
            "redeemed": money(sale.redeem_cp),
            "discount": money(discount),
            "accrued": money(accrual),
            "lines": [{"line_id": "1", "discount": money(discount), "redeemed": money(sale.redeem_cp),
                       "accrued": money(accrual)}],
            "breakdown": {"base": money(accrual)} if accrual else {},
            "balance": {
                "available": money(balance), "pending": "0.00", "pending_lots": [],
                "expiring": [{"amount": money(amount), "expires_at": at.isoformat().replace("+00:00", "Z")}
                             for at, amount in expiring[:EXPIRING_SHOWN]],
                "debt": "0.00",
            },
            "tier": {"id": "base", "name": "Базовый", "accrual_percent": str(ACCRUAL_PERCENT),
                     "next": None},
        }
        await conn.execute(
            "INSERT INTO peer_purchases (id, merchant_id, receipt_id, customer_id, store_id, cashier_id,"
            " occurred_at, total_minor, discount_minor, redeemed_cp, accrued_cp, request_digest, response)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            purchase_id, merchant_id, sale.receipt_id, customer["id"], store_id, cashier_id, now,
            sale.total_minor, discount, sale.redeem_cp, accrual, digest,
            json.dumps(body, ensure_ascii=False, separators=(",", ":")))
        await conn.execute(
            "INSERT INTO peer_purchase_lines (id, purchase_id, line_id, amount_minor, discount_minor,"
            " redeemed_cp, accrued_cp) VALUES ($1, $2, '1', $3, $4, $5, $6)",
            new_id("pln"), purchase_id, sale.total_minor, discount, sale.redeem_cp, accrual)
        if ledger:
            await conn.executemany(
                "INSERT INTO peer_ledger (id, merchant_id, customer_id, kind, amount_cp, occurred_at,"
                " available_at, expires_at, remaining_cp, purchase_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                [(entry_id, merchant_id, customer["id"], kind, amount, now, available_at, expires_at,
                  remaining, purchase_id)
                 for entry_id, kind, amount, available_at, expires_at, remaining in ledger])
        if allocations:
            await conn.executemany(
                "INSERT INTO peer_lot_allocations (customer_id, entry_id, lot_id, amount_cp, occurred_at)"
                " VALUES ($1, $2, $3, $4, $5)", allocations)
            await conn.executemany(
                "UPDATE peer_ledger SET remaining_cp = remaining_cp - $1 WHERE id = $2", lot_updates)
        await conn.executemany(
            "INSERT INTO peer_outbox (merchant_id, customer_id, type, payload, occurred_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(merchant_id, customer["id"], kind, json.dumps(payload, separators=(",", ":")), now)
             for kind, payload in events])
        await conn.execute(
            "UPDATE peer_customers SET available_cp = $1, lifetime_spend_minor = lifetime_spend_minor + $2,"
            " purchase_count = purchase_count + 1, last_purchase_at = $3 WHERE id = $4",
            balance, spend, now, customer["id"])
    return json_answer(body, 201)


def create_app(dsn: str, pool_size: int) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=1024 * 1024)
    app[KEYS] = {}

    async def lifetime(app: web.Application) -> Any:
        app[POOL] = await asyncpg.create_pool(dsn, min_size=2, max_size=pool_size)
        yield
        await app[POOL].close()

    app.cleanup_ctx.append(lifetime)
    app.router.add_get("/health", health)
    app.router.add_post("/customers", create_customer)
    app.router.add_post("/purchases", register_sale)
    return app


async def init_db(dsn: str, token: str) -> None:
    """Create the peer's tables and register `token` as a till key of the peer merchant."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        await conn.execute(
            "INSERT INTO peer_api_keys (digest, merchant_id, scope) VALUES ($1, $2, 'till')"
            " ON CONFLICT (digest) DO NOTHING", hashlib.sha256(token.encode()).hexdigest(), MERCHANT_ID)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create the tables and register a till key")
    init.add_argument("--dsn", required=True)
    init.add_argument("--token", required=True)
    serve = sub.add_parser("serve", help="serve /health, POST /customers, POST /purchases")
    serve.add_argument("--dsn", required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--pool-size", type=int, default=20,
                       help="connections at most (the product: pool 10 + overflow 10)")
    args = parser.parse_args(argv)
    if args.command == "init":
        asyncio.run(init_db(args.dsn, args.token))
        return 0
    web.run_app(create_app(args.dsn, args.pool_size), host=args.host, port=args.port,
                access_log=None, print=lambda text: print(text, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

