"""The peer's HTTP side (bench/peer_pos.py): keys, bodies, errors, answers, customers."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
from aiohttp import web

MERCHANT_ID = "mer_peer"
ACCRUAL_PERCENT = 5
REDEEM_CAP_PERCENT = 30
LIFETIME = timedelta(days=365)
KEY_CACHE_SECONDS = 5.0
EXPIRING_SHOWN = 5
CENT = Decimal("0.01")

POOL = web.AppKey("peer_pool", asyncpg.Pool)
KEYS = web.AppKey("peer_keys", dict)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refused(Exception):
    """A request answered with an error status and a JSON error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def money(value: int) -> str:
    """Hundredths as a two-decimal string (non-negative amounts only)."""
    return f"{value // 100}.{value % 100:02d}"


def to_hundredths(raw: Any, field: str) -> int:
    try:
        value = Decimal(str(raw))
    except InvalidOperation as exc:
        raise Refused(422, "validation_failed", f"{field}: not a decimal") from exc
    if not value.is_finite() or value < 0 or value != value.quantize(CENT):
        raise Refused(422, "validation_failed", f"{field}: a non-negative amount with 2 decimals")
    return int(value * 100)


def phone_of(raw: Any) -> str:
    """The E.164 form of a Russian number, by hand (the product uses phonenumbers)."""
    digits = "".join(ch for ch in str(raw) if ch.isdigit())
    if len(digits) == 11 and digits[0] in "78":
        return "+7" + digits[1:]
    raise Refused(422, "invalid_phone", "customer.phone: not a Russian phone number")


def json_answer(body: Any, status: int) -> web.Response:
    return web.Response(text=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                        status=status, content_type="application/json")


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refused as exc:
        return json_answer({"error": {"code": exc.code, "message": exc.message}}, exc.status)


async def merchant_of(request: web.Request) -> str:
    """The merchant of the bearer key: SHA-256 digest looked up, cached for a few seconds."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, "unauthorized", "send Authorization: Bearer <api key>")
    digest = hashlib.sha256(token.encode()).hexdigest()
    cache: dict[str, tuple[float, str | None]] = request.app[KEYS]
    now = time.monotonic()
    hit = cache.get(digest)
    if hit is None or now - hit[0] >= KEY_CACHE_SECONDS:
        merchant = await request.app[POOL].fetchval(
            "SELECT merchant_id FROM peer_api_keys WHERE digest = $1 AND revoked_at IS NULL", digest)
        hit = (now, merchant)
        cache[digest] = hit
    if hit[1] is None:
        raise Refused(401, "unauthorized", "this API key is unknown or revoked")
    return hit[1]


async def body_of(request: web.Request) -> tuple[dict[str, Any], bytes]:
    raw = await request.read()
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(400, "malformed_json", "request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise Refused(400, "malformed_json", "request body must be a JSON object")
    return data, raw


async def health(request: web.Request) -> web.Response:
    await request.app[POOL].fetchval("SELECT 1")
    return json_answer({"status": "ok"}, 200)


async def create_customer(request: web.Request) -> web.Response:
    merchant_id = await merchant_of(request)
    data, _ = await body_of(request)
    phone = phone_of(data.get("phone", ""))
    row = await request.app[POOL].fetchrow(
        "INSERT INTO peer_customers (id, merchant_id, phone, created_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (merchant_id, phone) DO NOTHING RETURNING id",
        new_id("cus"), merchant_id, phone, datetime.now(UTC))
    if row is None:
        found = await request.app[POOL].fetchval(
            "SELECT id FROM peer_customers WHERE merchant_id = $1 AND phone = $2", merchant_id, phone)
        return json_answer({"id": found, "phone": phone}, 200)
    return json_answer({"id": row["id"], "phone": phone}, 201)


