"""The REST API for cash registers and CRMs: thin handlers, one service call each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel

from core.domain.money import to_minor
from core.errors import ValidationFailed
from core.services import customers, dates, history, programs, purchases, refunds, rewards
from core.services.customers import CustomerRef
from merchant.api import schemas as s
from merchant.api.convert import customer_ref, refund_input, register_command, sale_input
from merchant.api.http import Handler as HandlerT
from merchant.api.http import core, identity, json_response, parse_body


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str
    handler: HandlerT
    scope: str
    summary: str
    body: type[BaseModel] | None = None
    answers: dict[int, type[BaseModel]] = field(default_factory=dict)
    query: tuple[str, ...] = ()


def _at(request: web.Request) -> datetime | None:
    raw = request.query.get("at")
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed("at must be an ISO time, e.g. 2027-01-01T00:00:00Z",
                               field="at") from exc
    if value.tzinfo is None:
        raise ValidationFailed("at must include a time zone", field="at")
    if not s.EARLIEST <= value <= s.LATEST:
        raise ValidationFailed("at must be between 2000 and 2100", field="at")
    return value


async def create_customer(request: web.Request) -> web.Response:
    body = await parse_body(request, s.CustomerCreate)
    created, answer = await customers.register_customer(
        core(request), identity(request).merchant_id, register_command(body)
    )
    return json_response(answer, 201 if created else 200)


async def lookup_customer(request: web.Request) -> web.Response:
    given = {k: request.query[k] for k in ("phone", "card", "qr") if request.query.get(k)}
    if len(given) != 1:
        raise ValidationFailed("give exactly one of phone, card, qr")
    answer = await customers.lookup_answer(
        core(request), identity(request).merchant_id, CustomerRef(**given)
    )
    return json_response(answer)


async def get_customer(request: web.Request) -> web.Response:
    answer = await customers.customer_answer(
        core(request), identity(request).merchant_id, request.match_info["id"], _at(request)
    )
    return json_response(answer)


async def adjust(request: web.Request) -> web.Response:
    body = await parse_body(request, s.AdjustmentIn)
    ident = identity(request)
    answer = await customers.adjust_points(
        core(request), ident.merchant_id, request.match_info["id"], to_minor(body.points),
        body.reason, body.lifetime_days, actor=f"api_key:{ident.key_id}",
    )
    return json_response(answer, 201)


async def ledger(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError as exc:
        raise ValidationFailed("limit must be a number", field="limit") from exc
    if not 1 <= limit <= 200:
        raise ValidationFailed("limit must be between 1 and 200", field="limit")
    answer = await history.ledger_page(
        core(request), identity(request).merchant_id, request.match_info["id"],
        request.query.get("cursor"), limit,
    )
    return json_response(answer)


async def preview(request: web.Request) -> web.Response:
    body = await parse_body(request, s.SaleIn)
    answer = await purchases.preview_sale(core(request), identity(request).merchant_id,
                                          sale_input(body))
    return json_response(answer)


async def register_sale(request: web.Request) -> web.Response:
    body = await parse_body(request, s.SaleIn)
    answer = await purchases.register_sale(core(request), identity(request).merchant_id,
                                           sale_input(body))
    return json_response(answer.body, 201 if answer.created else 200)


async def refund(request: web.Request) -> web.Response:
    body = await parse_body(request, s.RefundIn)
    answer = await refunds.register_refund(
        core(request), identity(request).merchant_id, request.match_info["receipt_id"],
        refund_input(body),
    )
    return json_response(answer.body, 201 if answer.created else 200)


async def put_dates(request: web.Request) -> web.Response:
    body = await parse_body(request, s.DatesIn)
    saved = await dates.set_dates(
        core(request), identity(request).merchant_id, request.match_info["id"],
        [dates.ImportantDate(d.kind, d.date, d.label) for d in body.dates])
    return json_response({"dates": saved})


async def redeem_gift(request: web.Request) -> web.Response:
    body = await parse_body(request, s.GiftRedeemIn)
    created, answer = await rewards.redeem_gift(
        core(request), identity(request).merchant_id, customer_ref(body.customer), body.gift_id,
        body.redemption_id, body.confirmation_code)
    return json_response(answer, 201 if created else 200)


async def get_program(request: web.Request) -> web.Response:
    version, document = await programs.program_document(core(request),
                                                         identity(request).merchant_id)
    return json_response({"version": version, "document": document})


async def put_program(request: web.Request) -> web.Response:
    raw = await parse_body(request, s.ProgramIn)
    version, program = await programs.put_program(
        core(request), identity(request).merchant_id, raw.model_dump()
    )
    return json_response({"version": version, "document": program.model_dump(mode="json")})


E = s.ErrorOut
ROUTES = [
    Route("POST", "/customers", "customers.create", create_customer, "till",
          "Register a customer by phone (200 when the phone is already a customer)",
          s.CustomerCreate, {201: s.CustomerOut, 200: s.CustomerOut, 404: E, 409: E, 422: E}),
    Route("GET", "/customers/lookup", "customers.lookup", lookup_customer, "till",
          "Find a customer by phone, card or QR", None, {200: s.CustomerOut, 404: E, 422: E},
          ("phone", "card", "qr")),
    Route("GET", "/customers/{id}", "customers.get", get_customer, "till",
          "A customer with balance and tier, optionally as of a time", None,
          {200: s.CustomerOut, 404: E, 422: E}, ("at",)),
    Route("POST", "/customers/{id}/adjustments", "customers.adjust", adjust, "integration",
          "Credit or debit points by hand", s.AdjustmentIn, {201: s.LedgerEntryOut, 404: E, 422: E}),
    Route("GET", "/customers/{id}/ledger", "customers.ledger", ledger, "integration",
          "Every movement of points, newest first", None, {200: s.LedgerPageOut, 404: E, 422: E},
          ("cursor", "limit")),
    Route("POST", "/purchases/preview", "purchases.preview", preview, "till",
          "What a sale would do; writes nothing", s.SaleIn, {200: s.PreviewOut, 404: E, 422: E}),
    Route("POST", "/purchases", "purchases.register", register_sale, "till",
          "Register a sale; idempotent by receipt_id", s.SaleIn,
          {201: s.SaleOut, 200: s.SaleOut, 404: E, 409: E, 422: E, 428: E, 429: E}),
    Route("POST", "/purchases/{receipt_id}/refunds", "purchases.refund", refund, "till",
          "Refund a sale in full, by amount or by lines; idempotent by refund_id", s.RefundIn,
          {201: s.RefundOut, 200: s.RefundOut, 404: E, 409: E, 422: E}),
    Route("PUT", "/customers/{id}/dates", "customers.dates", put_dates, "integration",
          "Replace the customer's important dates (relatives' birthdays, anniversaries)",
          s.DatesIn, {200: s.DatesOut, 404: E, 422: E}),
    Route("POST", "/rewards/redeem", "rewards.redeem", redeem_gift, "till",
          "Spend points on a gift from the catalog; idempotent by redemption_id", s.GiftRedeemIn,
          {201: s.GiftOut, 200: s.GiftOut, 404: E, 409: E, 422: E, 428: E, 429: E}),
    Route("GET", "/program", "program.get", get_program, "admin",
          "The current program document", None, {200: s.ProgramOut}),
    Route("PUT", "/program", "program.put", put_program, "admin",
          "Load a new program version", s.ProgramIn, {200: s.ProgramOut, 422: E}),
]
